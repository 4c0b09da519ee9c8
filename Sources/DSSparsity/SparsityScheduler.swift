import CSparseKernels
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
    /// The mask's active positions (ascending) and the weights at them, when the layer
    /// trains on a sparse kernel, which keeps both: counts and selections over the
    /// active weights then read these instead of scanning the whole mask.
    public var active: (positions: [Int32], values: [Float])? {
        didSet {
            if let active {
                precondition(active.positions.count == active.values.count,
                             "LayerUpdateInput \(name): \(active.positions.count) active positions, \(active.values.count) values")
            }
        }
    }

    public init(name: String, mask: SparseMask, weights: [Float], denseGradient: [Float], budget: Int,
                dropFraction: Double, mayAblate: Bool = false, pruningProgress: Double = 1) {
        self.name = name; self.mask = mask; self.weights = weights; self.denseGradient = denseGradient
        self.budget = budget; self.dropFraction = dropFraction; self.mayAblate = mayAblate
        self.pruningProgress = pruningProgress
    }

    /// `(nKeep, nDrop)` for this update (docs/algorithms.md §3): `nDrop = floor(f·n)`, and `nKeep`
    /// is lowered to the number of nonzero active weights when fewer remain.
    public var keepAndDrop: (keep: Int, drop: Int) {
        // Counted in locals of the closures (a captured counter is stored every
        // iteration, which keeps the loop from vectorising); from the active weights
        // when the kernel lists them, else over the whole mask.
        let (n, nonzero) = active.map { active in
            active.values.withUnsafeBufferPointer { v in
                var nonzero = 0
                for x in v { nonzero &+= (x != 0).bit }
                return (v.count, nonzero)
            }
        } ?? mask.active.withFlagBytes { a in
            weights.withUnsafeBufferPointer { w in
                var n = 0, nonzero = 0
                for i in 0..<a.count {
                    n &+= Int(a[i])
                    nonzero &+= (w[i] != 0).bit & Int(a[i])
                }
                return (n, nonzero)
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
    /// `keep` to `keepAndDrop.keep`. Groups are filled one after another (`grow` may draw
    /// from a shared random generator).
    public func dropAndGrow(in structure: any MaskStructure, counts: [Int]? = nil, keep: Int? = nil,
                            grow: (_ free: [Int], _ count: Int) -> [Int]) -> LayerUpdateResult {
        var kept: [Bool]? = nil
        return withoutActuallyEscaping(grow) { dropAndGrow(structure, counts, keep, kept: &kept, scores: nil, grow: $0) }
    }

    /// The same drop-and-grow, growing in every group the free positions with the
    /// largest `|scores[i]|` (ties to the lower index): RigL's and SRigL's rule. Groups
    /// own disjoint positions and the ranking is pure, so they are filled in parallel;
    /// the result does not depend on the split.
    public func dropAndGrow(in structure: any MaskStructure, counts: [Int]? = nil, keep: Int? = nil,
                            growingLargest scores: [Float]) -> LayerUpdateResult {
        dropAndGrow(in: structure, counts: counts, keep: keep, kept: nil, growingLargest: scores)
    }

    /// The same, with the kept weights given: `kept` must be
    /// `largestNonzero(keep, in: the groups whose count is not 0).flags` (SRigL has that
    /// selection already), or nil to select them here. Passed consumed, they become the
    /// new mask's flags without a copy.
    func dropAndGrow(in structure: any MaskStructure, counts: [Int]?, keep: Int?, kept: consuming [Bool]?,
                     growingLargest scores: [Float]) -> LayerUpdateResult {
        precondition(scores.count == mask.active.count, "dropAndGrow: \(scores.count) scores for \(mask.active.count) positions")
        var kept = kept
        return scores.withUnsafeBufferPointer {
            dropAndGrow(structure, counts, keep, kept: &kept, scores: $0.baseAddress, grow: nil)
        }
    }

    /// Flags of the `keep` largest nonzero `|w|` at active positions inside `groups`
    /// (ties to the lower index), and whether a NaN weight is among them (NaN ranks below
    /// every number): a selection among the active weights' keys, found by one scan of
    /// the mask unless `active` lists them.
    func largestNonzero(_ keep: Int, in groups: [Range<Int>]) -> (flags: [Bool], keptNaN: Bool) {
        let n = mask.active.count
        var flags = [Bool](clearedInParts: n)
        guard n > 0, keep > 0 else { return (flags, false) }
        // Groups are disjoint: when they cover the layer, its active flags are the
        // candidates' (the common case), else the flags inside the groups.
        let coversLayer = groups.reduce(0, { $0 + $1.count }) == n
        if let active, coversLayer {
            let outcome = active.positions.withUnsafeBufferPointer { p in
                active.values.withUnsafeBufferPointer { v in
                    flags.withMutableFlagBytes { f in
                        p.isEmpty ? 0 : ds_select_largest_nonzero_at(p.baseAddress!, v.baseAddress!, Int64(p.count),
                                                                     Int64(keep), f.baseAddress!)
                    }
                }
            }
            precondition(outcome >= 0, "largestNonzero: no memory for the selection among \(active.positions.count) weights")
            return (flags, outcome == 1)
        }
        var eligible = mask.active
        if !coversLayer {
            eligible = [Bool](repeating: false, count: n)
            for range in groups { eligible.replaceSubrange(range, with: mask.active[range]) }
        }
        let outcome = eligible.withFlagBytes { e in
            weights.withUnsafeBufferPointer { w in
                flags.withMutableFlagBytes { f in
                    ds_select_largest_nonzero(e.baseAddress!, w.baseAddress!, Int64(n), Int64(keep), f.baseAddress!)
                }
            }
        }
        precondition(outcome >= 0, "largestNonzero: no memory for the selection among \(mask.count) weights")
        return (flags, outcome == 1)
    }

    private func dropAndGrow(_ structure: any MaskStructure, _ counts: [Int]?, _ keep: Int?, kept: inout [Bool]?,
                             scores: UnsafePointer<Float>?,
                             grow: ((_ free: [Int], _ count: Int) -> [Int])?) -> LayerUpdateResult {
        let rows = mask.rows, columns = mask.columns
        let (keepCount, dropCount) = keep.map { ($0, 0) } ?? keepAndDrop
        let active = keepCount + dropCount
        let groups = structure.groups(rows: rows, columns: columns)
        let counts = counts ?? structure.groupCounts(rows: rows, columns: columns, total: keep == nil ? active : mask.count)
        precondition(counts.count == groups.count, "dropAndGrow: \(counts.count) counts for \(groups.count) groups")
        // The nKeep largest nonzero |w| in groups whose count is not 0.
        var next = kept.take() ?? largestNonzero(keepCount, in: zip(groups, counts).filter { $0.1 > 0 }.map { $0.0 }).flags
        precondition(next.count == rows * columns, "dropAndGrow: \(next.count) kept flags for \(rows * columns) positions")
        weights.withUnsafeBufferPointer { wb in
            next.withMutableFlagBytes { flags in
                let w = wb.baseAddress!
                // (Not `groups.map(\.count).max()`: the key path is not specialised, and
                // took 14 µs over a 300-row layer's groups.)
                let largestGroup = groups.reduce(0) { max($0, $1.upperBound - $1.lowerBound) }
                let flags = flags
                func fill(_ part: Range<Int>) {
                    let scratch = UnsafeMutablePointer<Int>.allocate(capacity: max(largestGroup, 1))
                    let keys = UnsafeMutablePointer<UInt32>.allocate(capacity: max(3 * largestGroup, 1))
                    defer { scratch.deallocate(); keys.deallocate() }
                    for g in part {
                        let range = groups[g], count = counts[g]
                        let first = flags.baseAddress! + range.lowerBound
                        var kept = Int(ds_flag_count(first, Int64(range.count)))
                        if kept > count {
                            kept = 0
                            for i in range { scratch[kept] = i; kept &+= Int(flags[i]) }   // branch-free compaction
                            for j in 0..<kept { flags[scratch[j]] = 0 }
                            Selection.largestMagnitudes(count, of: UnsafeBufferPointer(start: scratch, count: kept), in: w) {
                                flags[$0] = 1
                            }
                            kept = count
                        }
                        let missing = count - kept
                        guard missing > 0 else { continue }
                        if let scores {
                            // The free positions' keys in place, a selection among them.
                            ds_grow_largest(first, scores + range.lowerBound, Int64(range.count), Int64(missing), keys,
                                            keys + range.count)
                            continue
                        }
                        var free = 0
                        for i in range { scratch[free] = i; free &+= 1 &- Int(flags[i]) }
                        let pool = UnsafeBufferPointer(start: scratch, count: free)
                        if let grow {
                            for i in grow(Array(pool), missing) { flags[i] = 1 }
                        }
                    }
                }
                if scores != nil && groups.count > 1 {
                    // About 1 ns per position (the C growth): a 100×300 layer's 30 µs is
                    // not worth waking a thread for. One range per thread, the halves the
                    // salient count read before (SRigL), rather than 8 per thread taken in
                    // turn: a whole update step of the 300×784 layer's model 4% (99%) and
                    // 6% (90%) shorter, its growth 37 against 41 µs (75 against 97).
                    Parallel.forRanges(groups.count, work: rows * columns * 2) { fill($0) }
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
