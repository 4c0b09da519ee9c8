import DSCore

/// A constant fan-in sparse layer in condensed form (docs/algorithms.md §4): every active output
/// neuron keeps exactly `k` weights, stored as `values [m, k]` and the input
/// positions they read, `indices [m, k]`.
///
/// `y[b, j] = bias[j] + Σ_i values[r, i] · x[b, indices[r, i]]` for the active neuron
/// `j = activeRows[r]`; an ablated neuron outputs its bias.
public struct CondensedLinear: Equatable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// `k`, the fan-in of every active neuron.
    public let fanIn: Int
    /// The active output neurons, ascending (`m` of them).
    public let activeRows: [Int32]
    /// `[m, k]`, row-major.
    public let values: [Float]
    /// `[m, k]` input positions (UInt16 when `inputFeatures ≤ 65536`).
    public let indices: CondensedIndices
    /// `[outputFeatures]` (zeros when the layer has none).
    public let bias: [Float]
    /// The batch-1 layout of `values`/`indices`, on CPUs that run its kernel.
    public let laneBlockPlan: LaneBlockPlan?

    public init(inputFeatures: Int, outputFeatures: Int, fanIn: Int, activeRows: [Int32], values: [Float],
                indices: CondensedIndices, bias: [Float]) {
        precondition(values.count == activeRows.count * fanIn && indices.count == values.count,
                     "CondensedLinear: \(values.count) values / \(indices.count) indices for \(activeRows.count)×\(fanIn)")
        precondition(bias.count == outputFeatures, "CondensedLinear: bias of \(bias.count) for \(outputFeatures) outputs")
        self.inputFeatures = inputFeatures; self.outputFeatures = outputFeatures; self.fanIn = fanIn
        self.activeRows = activeRows; self.values = values; self.indices = indices; self.bias = bias
        laneBlockPlan = LaneBlockPlan.isSupported
            ? LaneBlockPlan(inputFeatures: inputFeatures, rows: activeRows.count, fanIn: fanIn, values: values, indices: indices)
            : nil
    }

    /// Condenses a `[nOut, fanIn]` weight under `mask`; every non-empty row must hold
    /// the same number of weights, else the error names the layer and the rows.
    public init(name: String, weight: [Float], mask: SparseMask, bias: [Float]?) throws {
        let counts = mask.rowCounts
        let active = counts.indices.filter { counts[$0] > 0 }
        let k = active.first.map { counts[$0] } ?? 0
        let offending = active.filter { counts[$0] != k }
        guard offending.isEmpty else {
            let list = offending.prefix(8).map { "row \($0) has \(counts[$0])" }.joined(separator: ", ")
            throw SparsityError("layer \(name): not constant fan-in (\(active.count) active rows; row \(active[0]) has \(k) weights, "
                                + "\(list)\(offending.count > 8 ? ", …" : "")); only SRigL or static constant_fan_in masks condense")
        }
        var values: [Float] = [], positions: [Int] = []
        values.reserveCapacity(active.count * k)
        for r in active {
            for c in 0..<mask.columns where mask.active[r * mask.columns + c] {
                values.append(weight[r * mask.columns + c])
                positions.append(c)
            }
        }
        self.init(inputFeatures: mask.columns, outputFeatures: mask.rows, fanIn: k,
                  activeRows: active.map { Int32($0) }, values: values,
                  indices: CondensedIndices(positions, inputFeatures: mask.columns),
                  bias: bias ?? [Float](repeating: 0, count: mask.rows))
    }

    /// The dense `[nOut, fanIn]` weight this layer represents.
    public var denseWeight: [Float] {
        var w = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        for (r, row) in activeRows.enumerated() {
            for i in 0..<fanIn { w[Int(row) * inputFeatures + indices[r * fanIn + i]] = values[r * fanIn + i] }
        }
        return w
    }
}

/// Input positions of a condensed layer: 16-bit when they fit, else 32-bit.
public enum CondensedIndices: Equatable {
    case narrow([UInt16])
    case wide([Int32])

    public init(_ positions: [Int], inputFeatures: Int) {
        if inputFeatures <= Int(UInt16.max) + 1 {
            self = .narrow(positions.map { UInt16($0) })
        } else {
            self = .wide(positions.map { Int32($0) })
        }
    }

    public var count: Int {
        switch self { case .narrow(let a): return a.count; case .wide(let a): return a.count }
    }

    public subscript(i: Int) -> Int {
        switch self { case .narrow(let a): return Int(a[i]); case .wide(let a): return Int(a[i]) }
    }
}
