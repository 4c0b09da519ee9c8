import CCoreKernels
import COpenBLAS
import Dispatch

/// Thin wrappers over OpenBLAS. Every GEMM in the library goes through `gemm`, which
/// splits large products over `Parallel.threads` (OpenBLAS itself runs one thread).
public enum BLAS {
    /// `C[M,N] = alpha · op(A) · op(B) + beta · C`, row-major.
    ///
    /// `op(A)` is `[M, K]` (`A` stored `[M, K]`, or `[K, M]` when `transposeA`);
    /// `op(B)` is `[K, N]` (`B` stored `[K, N]`, or `[N, K]` when `transposeB`).
    /// `parallel: false` keeps the product on the calling thread (for callers that
    /// parallelise over their own work items).
    @inlinable
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        parallel: Bool = true
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta == 0 { c.update(repeating: 0, count: m * ldc) }
            return
        }
        let flops = m * n * k
        let threads = Parallel.threads
        if !parallel || threads <= 1 || flops < 4_000_000 {
            sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else if n >= 64 * threads && n >= m {
            // Columns of C: op(B)[:, n0..<n1].
            Parallel.forRanges(n, work: flops) { r in
                let bOffset = transposeB ? r.lowerBound * ldb : r.lowerBound
                sgemm(transposeA, transposeB, m, r.count, k, alpha, a, lda, b + bOffset, ldb, beta,
                      c + r.lowerBound, ldc)
            }
        } else if m >= 16 * threads {
            // Rows of C: op(A)[m0..<m1, :].
            Parallel.forRanges(m, work: flops) { r in
                let aOffset = transposeA ? r.lowerBound : r.lowerBound * lda
                sgemm(transposeA, transposeB, r.count, n, k, alpha, a + aOffset, lda, b, ldb, beta,
                      c + r.lowerBound * ldc, ldc)
            }
        } else {
            // Small C, long K (weight gradients): partial products over K, summed in a
            // fixed order so the result is the same every run.
            let parts = min(threads, max(k / 256, 1))
            var partial = [Float](repeating: 0, count: (parts - 1) * m * n)
            partial.withUnsafeMutableBufferPointer { tmp in
                Parallel.run(parts) { p in
                    let k0 = k * p / parts, k1 = k * (p + 1) / parts
                    let aOffset = transposeA ? k0 * lda : k0
                    let bOffset = transposeB ? k0 : k0 * ldb
                    if p == 0 {
                        sgemm(transposeA, transposeB, m, n, k1 - k0, alpha, a + aOffset, lda, b + bOffset, ldb,
                              beta, c, ldc)
                    } else {
                        sgemm(transposeA, transposeB, m, n, k1 - k0, alpha, a + aOffset, lda, b + bOffset, ldb,
                              0, tmp.baseAddress! + (p - 1) * m * n, n)
                    }
                }
                for p in 1..<parts {
                    let t = tmp.baseAddress! + (p - 1) * m * n
                    for i in 0..<m {
                        for j in 0..<n { c[i * ldc + j] += t[i * n + j] }
                    }
                }
            }
        }
    }

    @inlinable
    static func sgemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[M] = alpha · op(A) · x + beta · y` with `A` stored `[M, N]` row-major.
    @inlinable
    public static func gemv(
        transpose: Bool = false, m: Int, n: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
        beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// `B = Aᵀ`: `A` is `[rows, columns]` (row stride `lda`), `B` is `[columns, rows]`
    /// (row stride `ldb`). The AVX-512 transpose where the CPU has it (16×16 tiles in
    /// registers: measured 31 µs against OpenBLAS's somatcopy's 74 µs for 128×784),
    /// else OpenBLAS.
    public static func transpose(rows: Int, columns: Int, _ a: UnsafePointer<Float>, lda: Int,
                                 into b: UnsafeMutablePointer<Float>, ldb: Int) {
        guard rows > 0, columns > 0 else { return }
        if nativeTranspose {
            // Bands of source rows (whole 16-row tiles) over the threads.
            let tiles = (rows + 15) / 16
            Parallel.forRanges(tiles, work: rows * columns) { r in
                let r0 = r.lowerBound * 16, r1 = min(r.upperBound * 16, rows)
                ds_transpose(a + r0 * lda, Int64(lda), b + r0, Int64(ldb), Int64(r1 - r0), Int64(columns))
            }
        } else {
            cblas_somatcopy(CblasRowMajor, CblasTrans, Int32(rows), Int32(columns), 1, a, Int32(lda), b, Int32(ldb))
        }
    }

    /// Whether `transpose` runs the AVX-512 kernel.
    public static let nativeTranspose = ds_transpose_supported() != 0
}

/// Matrix products on whole tensors (2-D, row-major).
extension Tensor {
    /// `op(a) · op(b)`, with shapes checked.
    public static func matmul(_ a: Tensor, _ b: Tensor,
                              transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul inner dimensions differ: \(a.shape) · \(b.shape)")
        var c = Tensor(shape: [m, n])
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(transposeA: transposeA, transposeB: transposeB,
                              m: m, n: n, k: k,
                              a: pa.baseAddress!, lda: a.shape[1],
                              b: pb.baseAddress!, ldb: b.shape[1],
                              c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}
