import DSCore
import Foundation

/// Multi-head self-attention (Vaswani et al. 2017) over token sequences `[N, T, D]`:
/// `q`, `k`, `v` and `out` are separate `D → D` Linear layers (each its own sparse
/// layer), `h` heads of width `d = D / h`. Per sample and head, with `Q`, `K`, `V`
/// the head's `[T, d]` slices,
///
///     S = Q·Kᵀ / sqrt(d),   A = softmax(S) row-wise,   O = dropout(A)·V,
///
/// and the heads' `O` side by side go through `out`.
public final class MultiHeadAttention: Layer {
    public let width: Int
    public let heads: Int
    public let q: Linear, k: Linear, v: Linear, out: Linear
    /// Dropout on the attention weights `A` (training only).
    public let attentionDropout: Float
    /// Draws the attention-dropout masks; part of the layer's state.
    public var rng: Xoshiro256
    /// The last forward's projections `[N, T, D]`, attention weights `[N, h, T, T]` and
    /// dropout multipliers (same shape; empty without dropout).
    private var queries = Tensor(shape: [0]), keys = Tensor(shape: [0]), values = Tensor(shape: [0])
    private var weights: [Float] = []
    private var dropMask: [Float] = []
    private var tokens = 0

    public init(width: Int, heads: Int, attentionDropout: Float = 0, rng: inout Xoshiro256) {
        precondition(heads > 0 && width % heads == 0, "MultiHeadAttention: width \(width) not divisible by \(heads) heads")
        precondition(attentionDropout >= 0 && attentionDropout < 1, "MultiHeadAttention: dropout \(attentionDropout)")
        self.width = width; self.heads = heads; self.attentionDropout = attentionDropout
        q = Linear(inputFeatures: width, outputFeatures: width, rng: &rng)
        k = Linear(inputFeatures: width, outputFeatures: width, rng: &rng)
        v = Linear(inputFeatures: width, outputFeatures: width, rng: &rng)
        out = Linear(inputFeatures: width, outputFeatures: width, rng: &rng)
        self.rng = rng.split()
    }

    public var children: [(name: String, layer: Layer)] { [("q", q), ("k", k), ("v", v), ("out", out)] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == width, "MultiHeadAttention(\(width)) got input \(x.shape)")
        let n = x.shape[0], t = x.shape[1], d = width / heads, dm = width, h = heads
        let qs = q.forward(x, training: training), ks = k.forward(x, training: training), vs = v.forward(x, training: training)
        var attention = [Float](repeating: 0, count: n * h * t * t)
        var mask: [Float] = []
        if training && attentionDropout > 0 {
            let keep = 1 / (1 - attentionDropout)
            mask = (0..<attention.count).map { _ in rng.uniformFloat() < attentionDropout ? 0 : keep }
        }
        var o = Tensor(uninitializedShape: [n, t, dm])
        let scale = 1 / Float(d).squareRoot()
        qs.storage.withUnsafeBufferPointer { pq in
            ks.storage.withUnsafeBufferPointer { pk in
                vs.storage.withUnsafeBufferPointer { pv in
                    attention.withUnsafeMutableBufferPointer { pa in
                        mask.withUnsafeBufferPointer { pm in
                            o.storage.withUnsafeMutableBufferPointer { po in
                                Parallel.forEach(n * h, work: n * h * t * t * d * 4) { item in
                                    let b = item / h, head = item % h
                                    let base = b * t * dm + head * d
                                    let a = pa.baseAddress! + item * t * t
                                    BLAS.gemm(transposeB: true, m: t, n: t, k: d, alpha: scale,
                                              a: pq.baseAddress! + base, lda: dm, b: pk.baseAddress! + base, ldb: dm,
                                              c: a, ldc: t, parallel: false)
                                    for r in 0..<t { Self.softmax(a + r * t, t) }
                                    let values = pv.baseAddress! + base, output = po.baseAddress! + base
                                    if pm.isEmpty {
                                        BLAS.gemm(m: t, n: d, k: t, a: a, lda: t, b: values, ldb: dm, c: output, ldc: dm,
                                                  parallel: false)
                                    } else {
                                        let dropped = (0..<(t * t)).map { a[$0] * pm[item * t * t + $0] }
                                        dropped.withUnsafeBufferPointer { pd in
                                            BLAS.gemm(m: t, n: d, k: t, a: pd.baseAddress!, lda: t, b: values, ldb: dm,
                                                      c: output, ldc: dm, parallel: false)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training {
            queries = qs; keys = ks; values = vs; weights = attention; dropMask = mask; tokens = t
        }
        return out.forward(o, training: training)
    }

    /// Row softmax in place, max-subtracted.
    @inline(__always)
    static func softmax(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, p[i]) }
        var s: Float = 0
        for i in 0..<count { p[i] = expf(p[i] - m); s += p[i] }
        let inv = 1 / s
        for i in 0..<count { p[i] *= inv }
    }

    /// Per sample and head, with `A'` the dropped-out weights and `G = dO`:
    /// `dV = A'ᵀ·G`, `dA = (G·Vᵀ) ⊙ mask`, `dS = A ⊙ (dA − rowsum(dA ⊙ A)) / sqrt(d)`,
    /// `dQ = dS·K`, `dK = dSᵀ·Q`; then through `q`, `k`, `v`, summed.
    public func backward(_ dy: Tensor) -> Tensor {
        let g = out.backward(dy)
        let n = g.shape[0], t = tokens, d = width / heads, dm = width, h = heads
        precondition(g.shape == [n, t, dm] && weights.count == n * h * t * t, "MultiHeadAttention.backward without a forward")
        var dq = Tensor(shape: [n, t, dm]), dk = Tensor(shape: [n, t, dm]), dv = Tensor(shape: [n, t, dm])
        let scale = 1 / Float(d).squareRoot()
        g.storage.withUnsafeBufferPointer { pg in
            queries.storage.withUnsafeBufferPointer { pq in
                keys.storage.withUnsafeBufferPointer { pk in
                    values.storage.withUnsafeBufferPointer { pv in
                        weights.withUnsafeBufferPointer { pa in
                            dropMask.withUnsafeBufferPointer { pm in
                                dq.storage.withUnsafeMutableBufferPointer { pdq in
                                    dk.storage.withUnsafeMutableBufferPointer { pdk in
                                        dv.storage.withUnsafeMutableBufferPointer { pdv in
                                            Parallel.forEach(n * h, work: n * h * t * t * d * 8) { item in
                                                let b = item / h, head = item % h
                                                let base = b * t * dm + head * d
                                                let a = pa.baseAddress! + item * t * t
                                                let used = [Float](unsafeUninitializedCapacity: t * t) { buf, count in
                                                    for i in 0..<(t * t) { buf[i] = pm.isEmpty ? a[i] : a[i] * pm[item * t * t + i] }
                                                    count = t * t
                                                }
                                                var da = [Float](repeating: 0, count: t * t)
                                                used.withUnsafeBufferPointer { pu in
                                                    BLAS.gemm(transposeA: true, m: t, n: d, k: t, a: pu.baseAddress!, lda: t,
                                                              b: pg.baseAddress! + base, ldb: dm,
                                                              c: pdv.baseAddress! + base, ldc: dm, parallel: false)
                                                }
                                                da.withUnsafeMutableBufferPointer { pda in
                                                    BLAS.gemm(transposeB: true, m: t, n: t, k: d, a: pg.baseAddress! + base, lda: dm,
                                                              b: pv.baseAddress! + base, ldb: dm, c: pda.baseAddress!, ldc: t,
                                                              parallel: false)
                                                    for r in 0..<t {
                                                        var dot: Float = 0
                                                        for c in 0..<t {
                                                            if !pm.isEmpty { pda[r * t + c] *= pm[item * t * t + r * t + c] }
                                                            dot += pda[r * t + c] * a[r * t + c]
                                                        }
                                                        for c in 0..<t { pda[r * t + c] = a[r * t + c] * (pda[r * t + c] - dot) * scale }
                                                    }
                                                    BLAS.gemm(m: t, n: d, k: t, a: pda.baseAddress!, lda: t,
                                                              b: pk.baseAddress! + base, ldb: dm,
                                                              c: pdq.baseAddress! + base, ldc: dm, parallel: false)
                                                    BLAS.gemm(transposeA: true, m: t, n: d, k: t, a: pda.baseAddress!, lda: t,
                                                              b: pq.baseAddress! + base, ldb: dm,
                                                              c: pdk.baseAddress! + base, ldc: dm, parallel: false)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dx = q.backward(dq)
        dx.add(k.backward(dk))
        dx.add(v.backward(dv))
        return dx
    }
}

/// A pre-norm transformer block: `h = x + drop(attn(norm1(x)))`, then
/// `y = h + drop(fc2(drop(gelu(fc1(norm2(h))))))` with `fc1: D → r·D`, `fc2: r·D → D`.
public final class TransformerBlock: Layer {
    public let norm1: LayerNorm, attention: MultiHeadAttention
    public let norm2: LayerNorm, fc1: Linear, activation: GELU, fc2: Linear
    let attentionOutputDropout: Dropout?, hiddenDropout: Dropout?, outputDropout: Dropout?

    public init(width: Int, heads: Int, mlpRatio: Double, dropout: Float = 0, attentionDropout: Float = 0,
                approximateGELU: Bool = false, rng: inout Xoshiro256) {
        let hidden = max(1, Int((Double(width) * mlpRatio).rounded()))
        norm1 = LayerNorm(features: width)
        attention = MultiHeadAttention(width: width, heads: heads, attentionDropout: attentionDropout, rng: &rng)
        norm2 = LayerNorm(features: width)
        fc1 = Linear(inputFeatures: width, outputFeatures: hidden, rng: &rng)
        activation = GELU(approximate: approximateGELU)
        fc2 = Linear(inputFeatures: hidden, outputFeatures: width, rng: &rng)
        attentionOutputDropout = dropout > 0 ? Dropout(probability: dropout, rng: &rng) : nil
        hiddenDropout = dropout > 0 ? Dropout(probability: dropout, rng: &rng) : nil
        outputDropout = dropout > 0 ? Dropout(probability: dropout, rng: &rng) : nil
    }

    public var children: [(name: String, layer: Layer)] {
        var c: [(name: String, layer: Layer)] = [("norm1", norm1), ("attn", attention), ("norm2", norm2),
                                                 ("mlp.fc1", fc1), ("mlp.fc2", fc2)]
        for (name, layer) in [("drop_attn", attentionOutputDropout), ("mlp.drop1", hiddenDropout), ("mlp.drop2", outputDropout)] {
            if let layer { c.append((name, layer)) }
        }
        return c
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var a = attention.forward(norm1.forward(x, training: training), training: training)
        if let attentionOutputDropout { a = attentionOutputDropout.forward(a, training: training) }
        var h = x
        h.add(a)
        var m = activation.forward(fc1.forward(norm2.forward(h, training: training), training: training), training: training)
        if let hiddenDropout { m = hiddenDropout.forward(m, training: training) }
        m = fc2.forward(m, training: training)
        if let outputDropout { m = outputDropout.forward(m, training: training) }
        h.add(m)
        return h
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var g = outputDropout?.backward(dy) ?? dy
        g = fc2.backward(g)
        if let hiddenDropout { g = hiddenDropout.backward(g) }
        var dh = norm2.backward(fc1.backward(activation.backward(g)))
        dh.add(dy)
        var ga = attentionOutputDropout?.backward(dh) ?? dh
        ga = norm1.backward(attention.backward(ga))
        ga.add(dh)
        return ga
    }
}
