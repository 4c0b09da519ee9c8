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

    /// `y [B, rows]` from `x [B, columns]`.
    public func forward(batch: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let nOut = rows, features = columns
        values.withUnsafeBufferPointer { pv in
            columnIndex.withUnsafeBufferPointer { pc in
                rowStart.withUnsafeBufferPointer { ps in
                    bias.withUnsafeBufferPointer { pb in
                        let v = pv.baseAddress!, idx = pc.baseAddress!
                        for b in 0..<batch { (y + b * nOut).update(from: pb.baseAddress!, count: nOut) }
                        if batch == 1 {
                            Parallel.forRanges(nOut, work: values.count * 4) { range in
                                for r in range {
                                    let s = Int(ps[r]), n = Int(ps[r + 1]) - s
                                    y[r] += SparseKernels.gatherDot(v + s, idx + s, x, n)
                                }
                            }
                            return
                        }
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: features * 64 + nOut * 64)
                        defer { scratch.deallocate() }
                        var b0 = 0
                        while b0 < batch {
                            let width = batch - b0 >= 64 ? 64 : 16
                            let n = min(width, batch - b0)
                            let xT = scratch, yT = scratch + features * 64
                            SparseKernels.transposeTile(x, features: features, rows: b0, count: n, width: width, into: xT)
                            Parallel.forRanges(nOut, work: values.count * width) { range in
                                for r in range {
                                    let s = Int(ps[r]), count = Int(ps[r + 1]) - s
                                    SparseKernels.tileAccumulate(v + s, idx + s, count, xT, width: width,
                                                                 into: yT + r &* width)
                                }
                            }
                            for r in 0..<nOut {
                                for b in 0..<n { y[(b0 &+ b) &* nOut &+ r] += yT[r &* width &+ b] }
                            }
                            b0 += n
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
