import DSCore

/// A sparse `[rows, columns]` weight in compressed sparse row form: the general
/// baseline the condensed form is measured against, run by the same kernels.
public struct CSRMatrix {
    public let rows: Int
    public let columns: Int
    /// `rowStart[r]..<rowStart[r + 1]` indexes row `r`'s entries.
    public let rowStart: [Int32]
    public let columnIndex: [Int32]
    public let values: [Float]
    public let bias: [Float]

    /// The active entries of `weight` under `mask`.
    public init(weight: [Float], mask: SparseMask, bias: [Float]?) {
        var start: [Int32] = [0], cols: [Int32] = [], vals: [Float] = []
        for r in 0..<mask.rows {
            for c in 0..<mask.columns where mask.active[r * mask.columns + c] {
                cols.append(Int32(c)); vals.append(weight[r * mask.columns + c])
            }
            start.append(Int32(cols.count))
        }
        rows = mask.rows; columns = mask.columns; rowStart = start; columnIndex = cols; values = vals
        self.bias = bias ?? [Float](repeating: 0, count: mask.rows)
    }

    /// `y [B, rows]` from `x [B, columns]` (batch-major): a gather-dot per row at batch 1;
    /// larger batches transpose to feature-major, run `forwardColumns` and transpose back.
    public func forward(batch: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        if batch > 1 {
            SparseKernels.featureMajor(batch: batch, inputs: columns, outputs: rows, x, y) {
                forwardColumns($0, ldX: batch, columns: batch, into: $1, ldY: batch)
            }
            return
        }
        values.withUnsafeBufferPointer { pv in
            columnIndex.withUnsafeBufferPointer { pc in
                rowStart.withUnsafeBufferPointer { ps in
                    Parallel.forRanges(rows, work: SparseKernels.batchOneWork(weights: values.count)) { range in
                        for r in range {
                            let s = Int(ps[r]), n = Int(ps[r + 1]) - s
                            y[r] = bias[r] + SparseKernels.gatherDot(pv.baseAddress! + s, pc.baseAddress! + s, x, n)
                        }
                    }
                }
            }
        }
    }

    /// Feature-major: `y[r][c] = bias[r] + Σ W[r, f] · x[f][c]` for `c < columns`
    /// (`x [columns of W, ldX]`, `y [rows, ldY]`).
    public func forwardColumns(_ x: UnsafePointer<Float>, ldX: Int, columns count: Int,
                               into y: UnsafeMutablePointer<Float>, ldY: Int) {
        values.withUnsafeBufferPointer { pv in
            columnIndex.withUnsafeBufferPointer { pc in
                rowStart.withUnsafeBufferPointer { ps in
                    bias.withUnsafeBufferPointer { pb in
                        let v = pv.baseAddress!, idx = pc.baseAddress!, b = pb.baseAddress!
                        SparseKernels.columns(rows: rows, columns: count, features: columns, work: values.count * count,
                                              x: x, ldX: ldX) { r, c in
                            let s = Int(ps[r])
                            return SparseKernels.Row(values: v + s, indices: idx + s, count: Int(ps[r + 1]) - s,
                                                     bias: b[r], out: y + (r &* ldY &+ c))
                        }
                    }
                }
            }
        }
    }

    /// Convenience over arrays.
    public func forward(_ x: [Float], batch: Int) -> [Float] {
        var y = [Float](repeating: 0, count: batch * rows)
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { forward(batch: batch, px.baseAddress!, into: $0.baseAddress!) } }
        return y
    }
}
