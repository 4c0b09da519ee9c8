import DSCore

/// SET (Mocanu et al. 2018): keep the `nKeep` largest `|w|`, grow `nDrop` positions
/// uniformly at random among those not kept.
public struct SETStrategy: SparsityScheduler {
    public init() {}
    public var name: String { "set" }
    public var usesDenseGradient: Bool { false }
    public var isDynamic: Bool { true }

    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        InitialMask.random(rows: rows, columns: columns, budget: budget, rng: &rng)
    }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        layer.dropAndGrow { free, count in Selection.random(count, of: free, using: &rng) }
    }
}
