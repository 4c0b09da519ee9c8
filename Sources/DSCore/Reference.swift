/// Slow, obviously-correct kernels: the test oracles for the fast paths.
public enum Reference {
    /// Triple-loop `C = op(A) · op(B)` in Double, row-major.
    public static func gemm(_ a: Tensor, _ b: Tensor,
                            transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        var c = Tensor(shape: [m, n])
        let av = a.storage, bv = b.storage
        let (lda, ldb) = (a.shape[1], b.shape[1])
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for t in 0..<k {
                    let x = transposeA ? av[t * lda + i] : av[i * lda + t]
                    let y = transposeB ? bv[j * ldb + t] : bv[t * ldb + j]
                    s += Double(x) * Double(y)
                }
                c.storage[i * n + j] = Float(s)
            }
        }
        return c
    }

    /// Direct convolution, `x [N, C, H, W]` (batch-major, as in the literature),
    /// `w [Cout, C, kh, kw]`, optional bias `[Cout]` → `y [N, Cout, Ho, Wo]`.
    public static func conv2d(_ x: Tensor, weight w: Tensor, bias: Tensor?,
                              stride: Int, padding: Int) -> Tensor {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (co, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * padding - kh) / stride + 1
        let wo = (wd + 2 * padding - kw) / stride + 1
        var y = Tensor(shape: [n, co, ho, wo])
        for b in 0..<n {
            for o in 0..<co {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        var s = Double(bias?.storage[o] ?? 0)
                        for ci in 0..<c {
                            for i in 0..<kh {
                                for j in 0..<kw {
                                    let ih = oh * stride - padding + i
                                    let iw = ow * stride - padding + j
                                    if ih >= 0 && ih < h && iw >= 0 && iw < wd {
                                        s += Double(x[b, ci, ih, iw]) * Double(w[o, ci, i, j])
                                    }
                                }
                            }
                        }
                        y[b, o, oh, ow] = Float(s)
                    }
                }
            }
        }
        return y
    }
}
