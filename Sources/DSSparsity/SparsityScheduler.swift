import DSCore

/// One sparse layer at a mask update: its mask, its weights after the optimizer step
/// and the dense gradient (`[nOut, fanIn]` row-major), and its budget `D`.
public struct LayerUpdateInput {
    public var name: String
    public var mask: SparseMask
    public var weights: [Float]
    public var denseGradient: [Float]
    /// `D`, the most active weights the layer may hold.
    public var budget: Int
    /// `f(t)` of the update schedule.
    public var dropFraction: Double
    /// SRigL only: the layer may ablate neurons (ablation on, layer not protected).
    public var mayAblate: Bool
    /// Gradual pruning: how far the schedule is from `T_start` (0) to its last update (1).
    public var pruningProgress: Double

    public init(name: String, mask: SparseMask, weights: [Float], denseGradient: [Float], budget: Int,
                dropFraction: Double, mayAblate: Bool = false, pruningProgress: Double = 1) {
        self.name = name; self.mask = mask; self.weights = weights; self.denseGradient = denseGradient
        self.budget = budget; self.dropFraction = dropFraction; self.mayAblate = mayAblate
        self.pruningProgress = pruningProgress
    }

    /// `(nKeep, nDrop)` for this update (docs/algorithms.md §3): `nDrop = floor(f·n)`, and `nKeep`
    /// is lowered to the number of nonzero active weights when fewer remain.
    public var keepAndDrop: (keep: Int, drop: Int) {
        var n = 0, nonzero = 0
        mask.active.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                for i in 0..<a.count where a[i] {
                    n += 1
                    if w[i] != 0 { nonzero += 1 }
                }
            }
        }
        let keep = min(n - Int((dropFraction * Double(n)).rounded(.down)), nonzero)
        return (keep, n - keep)
    }

    /// The drop-and-grow of SET, RigL and SRigL under `structure` (docs/algorithms.md §3.2):
    /// keep the `nKeep` largest nonzero `|w|` over the layer's active positions (in
    /// groups whose count is not 0), cut any group holding more than its count back to
    /// its largest `|w|`, then fill every group up to its count with the positions
    /// `grow(free, count)` picks among the group's positions not kept. `counts` defaults
    /// to the structure's counts for the layer's current number of active weights,
    /// `keep` to `keepAndDrop.keep`. With `concurrent`, `grow` must be safe to call from
    /// several threads at once (a pure score ranking; not a shared random generator),
    /// and groups are filled in parallel (the result does not depend on the split).
    public func dropAndGrow(in structure: any MaskStructure, counts: [Int]? = nil, keep: Int? = nil,
                            concurrent: Bool = false,
                            grow: (_ free: [Int], _ count: Int) -> [Int]) -> LayerUpdateResult {
        let rows = mask.rows, columns = mask.columns
        let (keepCount, dropCount) = keep.map { ($0, 0) } ?? keepAndDrop
        let active = keepCount + dropCount
        let groups = structure.groups(rows: rows, columns: columns)
        let counts = counts ?? structure.groupCounts(rows: rows, columns: columns, total: keep == nil ? active : mask.count)
        precondition(counts.count == groups.count, "dropAndGrow: \(counts.count) counts for \(groups.count) groups")
        var candidates: [Int] = []
        candidates.reserveCapacity(active)
        mask.active.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                for (range, count) in zip(groups, counts) where count > 0 {
                    for i in range where a[i] && w[i] != 0 { candidates.append(i) }
                }
            }
        }
        var next = [Bool](repeating: false, count: rows * columns)
        next.withUnsafeMutableBufferPointer { flags in
            weights.withUnsafeBufferPointer { w in
                for i in Selection.largestSet(keepCount, of: candidates, score: { abs(w[$0]) }) { flags[i] = true }
                // Groups own disjoint positions, so a range of groups can be filled on its own.
                let flags = flags
                func fill(_ part: Range<Int>) {
                    var kept: [Int] = [], free: [Int] = []
                    for g in part {
                        let range = groups[g], count = counts[g]
                        kept.removeAll(keepingCapacity: true)
                        for i in range where flags[i] { kept.append(i) }
                        if kept.count > count {
                            for i in kept { flags[i] = false }
                            for i in Selection.largestSet(count, of: kept, score: { abs(w[$0]) }) { flags[i] = true }
                        }
                        let missing = count - min(kept.count, count)
                        guard missing > 0 else { continue }
                        free.removeAll(keepingCapacity: true)
                        for i in range where !flags[i] { free.append(i) }
                        for i in grow(free, missing) { flags[i] = true }
                    }
                }
                if concurrent && groups.count > 1 {
                    Parallel.forRanges(groups.count, work: rows * columns * 4) { fill($0) }
                } else {
                    fill(0..<groups.count)
                }
            }
        }
        return LayerUpdateResult(mask: SparseMask(rows: rows, columns: columns, active: next))
    }
}

/// The new mask an update produced and the neurons it ablated.
public struct LayerUpdateResult: Equatable {
    public var mask: SparseMask
    public var ablatedRows: [Int]
    public init(mask: SparseMask, ablatedRows: [Int] = []) { self.mask = mask; self.ablatedRows = ablatedRows }
}

/// A sparse-training strategy: how masks start and how they change (docs/algorithms.md §3). The
/// schedule ("when"), the density distribution ("how much per layer") and the mask
/// structure ("which patterns") are separate pieces; a strategy supplies the scores.
public protocol SparsityScheduler {
    /// The registry name (`static`, `set`, `rigl`, `srigl`, `gmp`).
    var name: String { get }
    /// The pattern every mask keeps.
    var structure: any MaskStructure { get }
    /// Whether updates read the dense gradient (so training keeps it at update steps).
    var usesDenseGradient: Bool { get }
    /// Whether masks ever change.
    var isDynamic: Bool { get }
    /// Whether updates drop the cosine-decayed fraction `f(t)` (drop-and-grow methods).
    var usesDropFraction: Bool { get }
    /// Training batches whose gradients score the initial mask (SNIP); 0 when the
    /// initial mask is drawn without data.
    var initialScoringBatches: Int { get }
    /// The initial mask of a `rows × columns` layer with budget `budget`.
    func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                     rng: inout Xoshiro256) throws -> SparseMask
    /// One mask update of one layer.
    func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult
}

extension SparsityScheduler {
    public var usesDropFraction: Bool { isDynamic }
    public var initialScoringBatches: Int { 0 }

    /// A random mask with the structure's pattern.
    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        try structure.randomMask(name: name, rows: rows, columns: columns, budget: budget, rng: &rng)
    }
}

/// A mask that cannot be built as asked.
public struct SparsityError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
