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

    public init(name: String, mask: SparseMask, weights: [Float], denseGradient: [Float], budget: Int,
                dropFraction: Double, mayAblate: Bool = false) {
        self.name = name; self.mask = mask; self.weights = weights; self.denseGradient = denseGradient
        self.budget = budget; self.dropFraction = dropFraction; self.mayAblate = mayAblate
    }

    /// `(nKeep, nDrop)` for this update (docs/algorithms.md §3): `nDrop = floor(f·n)`, and `nKeep`
    /// is lowered to the number of nonzero active weights when fewer remain.
    public var keepAndDrop: (keep: Int, drop: Int) {
        let n = mask.count
        var keep = n - Int((dropFraction * Double(n)).rounded(.down))
        let nonzero = mask.active.indices.reduce(0) { $0 + (mask.active[$1] && weights[$1] != 0 ? 1 : 0) }
        keep = min(keep, nonzero)
        return (keep, n - keep)
    }

    /// The `nKeep` active positions of largest `|w|` over the whole layer.
    public func keptByMagnitude(_ keep: Int) -> [Int] {
        Selection.largestSet(keep, of: mask.activeIndices) { abs(weights[$0]) }
    }

    /// The layer-wide drop-and-grow of SET and RigL: keep the `nKeep` largest `|w|`,
    /// then activate the `nDrop` positions that `grow(free, nDrop)` picks among those
    /// not kept.
    public func dropAndGrow(_ grow: (_ free: [Int], _ count: Int) -> [Int]) -> LayerUpdateResult {
        let (keep, drop) = keepAndDrop
        var next = SparseMask(rows: mask.rows, columns: mask.columns, activeIndices: keptByMagnitude(keep))
        let free = next.active.indices.filter { !next.active[$0] }
        for i in grow(free, drop) { next.active[i] = true }
        return LayerUpdateResult(mask: next)
    }
}

/// The new mask an update produced and the neurons it ablated.
public struct LayerUpdateResult: Equatable {
    public var mask: SparseMask
    public var ablatedRows: [Int]
    public init(mask: SparseMask, ablatedRows: [Int] = []) { self.mask = mask; self.ablatedRows = ablatedRows }
}

/// A sparse-training strategy: how masks start and how they change (docs/algorithms.md §3). The
/// schedule ("when") and the density distribution ("how much per layer") are separate
/// pieces shared by every strategy.
public protocol SparsityScheduler {
    /// The registry name (`static`, `set`, `rigl`, `srigl`).
    var name: String { get }
    /// Whether updates read the dense gradient (so training keeps it at update steps).
    var usesDenseGradient: Bool { get }
    /// Whether masks ever change.
    var isDynamic: Bool { get }
    /// The initial mask of a `rows × columns` layer with budget `budget`.
    func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                     rng: inout Xoshiro256) throws -> SparseMask
    /// One mask update of one layer.
    func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult
}

/// A mask that cannot be built as asked.
public struct SparsityError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Initial masks shared by the strategies.
public enum InitialMask {
    /// `budget` positions drawn uniformly over the whole layer.
    public static func random(rows: Int, columns: Int, budget: Int, rng: inout Xoshiro256) -> SparseMask {
        SparseMask(rows: rows, columns: columns,
                   activeIndices: Selection.random(budget, of: Array(0..<(rows * columns)), using: &rng))
    }

    /// Constant fan-in: `k = floor(D / nOut)` random positions in every row.
    public static func constantFanIn(name: String, rows: Int, columns: Int, budget: Int,
                                     rng: inout Xoshiro256) throws -> SparseMask {
        let k = budget / rows
        guard k > 0 else {
            throw SparsityError("layer \(name): sparsity too high for constant fan-in: a budget of \(budget) weights "
                                + "over \(rows) neurons leaves fan-in 0")
        }
        var indices: [Int] = []
        for r in 0..<rows {
            indices += Selection.random(k, of: Array(0..<columns), using: &rng).map { r * columns + $0 }
        }
        return SparseMask(rows: rows, columns: columns, activeIndices: indices)
    }
}
