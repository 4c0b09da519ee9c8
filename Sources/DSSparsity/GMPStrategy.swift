import Foundation
import DSCore

/// Gradual magnitude pruning (Zhu & Gupta 2017): dense to sparse. Masks start full;
/// every update step from `T_start` on prunes the smallest `|w|` (within each group of
/// the structure) down to the count of the cubic schedule
/// `s_t = s_f + (s_i − s_f)(1 − p)³`, `s_i = 0`, `s_f` the layer's target sparsity and
/// `p` the fraction of the way from `T_start` to the last update step before `T_end`
/// (docs/algorithms.md §3.4). Pruned weights never come back.
public struct GMPStrategy: SparsityScheduler {
    public let structure: any MaskStructure
    public init(structure: any MaskStructure = Unstructured()) { self.structure = structure }
    public var name: String { "gmp" }
    public var usesDenseGradient: Bool { false }
    public var isDynamic: Bool { true }
    public var usesDropFraction: Bool { false }

    /// Every position active; the budget is only checked against the structure.
    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        try structure.check(name: name, rows: rows, columns: columns, budget: budget)
        return .dense(rows: rows, columns: columns)
    }

    /// The active weights the layer keeps at progress `p`: `D + floor((N − D)(1 − p)³)`
    /// (`N` at `p = 0`, the budget `D` at `p = 1`).
    public static func targetCount(total: Int, budget: Int, progress p: Double) -> Int {
        let remaining = pow(1 - min(max(p, 0), 1), 3)
        return budget + Int((Double(total - budget) * remaining + 1e-9).rounded(.down))
    }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        let rows = layer.mask.rows, columns = layer.mask.columns
        let target = Self.targetCount(total: rows * columns, budget: layer.budget, progress: layer.pruningProgress)
        let counts = structure.groupCounts(rows: rows, columns: columns, total: min(target, layer.mask.count))
        let mask = structure.selectLargest(rows: rows, columns: columns, counts: counts, among: layer.mask.active) {
            abs(layer.weights[$0])
        }
        return LayerUpdateResult(mask: mask)
    }
}
