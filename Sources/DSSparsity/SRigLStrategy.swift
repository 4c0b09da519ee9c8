import DSCore

/// SRigL (Lasby et al. 2024): RigL under a constant fan-in constraint, with neuron
/// ablation. Every active neuron keeps exactly `k` incoming weights; neurons with too
/// few salient weights are ablated and their budget goes to the rest (docs/algorithms.md §3).
public struct SRigLStrategy: SparsityScheduler {
    /// `γ_sal`: a neuron needs `max(1, floor(γ_sal · k0))` salient weights to stay
    /// active (`γ_sal ≥ 1` is an absolute count).
    public var salienceThreshold: Double
    /// Neuron ablation on or off.
    public var ablation: Bool

    public init(salienceThreshold: Double = 0.3, ablation: Bool = true) {
        self.salienceThreshold = salienceThreshold
        self.ablation = ablation
    }

    public var name: String { "srigl" }
    public var usesDenseGradient: Bool { true }
    public var isDynamic: Bool { true }

    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        try InitialMask.constantFanIn(name: name, rows: rows, columns: columns, budget: budget, rng: &rng)
    }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        let rows = layer.mask.rows, columns = layer.mask.columns, budget = layer.budget
        let (keep, drop) = layer.keepAndDrop
        let magnitude = { (i: Int) in abs(layer.weights[i]) }
        let gradient = { (i: Int) in abs(layer.denseGradient[i]) }

        // 1. Salience: the nKeep largest |w| and the nDrop largest |g| over the layer.
        var salient = [Bool](repeating: false, count: rows * columns)
        for i in layer.keptByMagnitude(keep) { salient[i] = true }
        for i in Selection.largestSet(drop, of: 0..<(rows * columns), score: gradient) { salient[i] = true }
        var salientPerRow = [Int](repeating: 0, count: rows)
        for i in salient.indices where salient[i] { salientPerRow[i / columns] += 1 }

        // 2. Ablation: rows with fewer than `thr` salient weights.
        var isAblated = [Bool](repeating: false, count: rows)
        if ablation && layer.mayAblate {
            let k0 = budget / rows
            var threshold = salienceThreshold >= 1
                ? max(1, Int(salienceThreshold))
                : max(1, Int((salienceThreshold * Double(k0)).rounded(.down)))
            let fewestRows = budget / columns
            if fewestRows < rows {
                let descending = salientPerRow.sorted(by: >)
                threshold = min(threshold, descending[fewestRows])
            }
            for r in 0..<rows where salientPerRow[r] < threshold { isAblated[r] = true }
        }
        let ablated = (0..<rows).filter { isAblated[$0] }

        // 3. The new fan-in keeps the layer's density.
        let fanIn = budget / (rows - ablated.count)

        // 4. Drop: ablated rows lose everything; elsewhere keep the nKeep largest
        //    nonzero |w|, then cut any row above the new fan-in to its largest |w|.
        let candidates = layer.mask.activeIndices.filter { !isAblated[$0 / columns] && layer.weights[$0] != 0 }
        var keptByRow = [[Int]](repeating: [], count: rows)
        for i in Selection.largestSet(keep, of: candidates, score: magnitude) { keptByRow[i / columns].append(i) }

        // 5. Grow: fill every active row to exactly the new fan-in by |g|.
        var next = SparseMask(rows: rows, columns: columns, active: [Bool](repeating: false, count: rows * columns))
        var free: [Int] = []
        free.reserveCapacity(columns)
        for r in 0..<rows where !isAblated[r] {
            let kept = keptByRow[r].count > fanIn ? Selection.largestSet(fanIn, of: keptByRow[r], score: magnitude)
                                                  : keptByRow[r]
            for i in kept { next.active[i] = true }
            free.removeAll(keepingCapacity: true)
            for i in r * columns..<(r + 1) * columns where !next.active[i] { free.append(i) }
            for i in Selection.largestSet(fanIn - kept.count, of: free, score: gradient) { next.active[i] = true }
        }
        return LayerUpdateResult(mask: next, ablatedRows: ablated)
    }
}
