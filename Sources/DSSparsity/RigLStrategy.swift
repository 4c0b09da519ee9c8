import DSCore

/// RigL (Evci et al. 2020): drop like SET, grow the `nDrop` positions of largest
/// dense-gradient magnitude among those not kept.
public struct RigLStrategy: SparsityScheduler {
    public init() {}
    public var name: String { "rigl" }
    public var usesDenseGradient: Bool { true }
    public var isDynamic: Bool { true }

    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        InitialMask.random(rows: rows, columns: columns, budget: budget, rng: &rng)
    }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        layer.dropAndGrow { free, count in
            Selection.largestSet(count, of: free) { abs(layer.denseGradient[$0]) }
        }
    }
}
