import DSCore

/// Static sparsity: the initial mask never changes. With `constantFanIn`, every neuron
/// gets `floor(D / nOut)` weights (the structured static baseline).
public struct StaticStrategy: SparsityScheduler {
    public let constantFanIn: Bool
    public init(constantFanIn: Bool = false) { self.constantFanIn = constantFanIn }

    public var name: String { "static" }
    public var usesDenseGradient: Bool { false }
    public var isDynamic: Bool { false }

    public func initialMask(name: String, rows: Int, columns: Int, budget: Int,
                            rng: inout Xoshiro256) throws -> SparseMask {
        constantFanIn
            ? try InitialMask.constantFanIn(name: name, rows: rows, columns: columns, budget: budget, rng: &rng)
            : InitialMask.random(rows: rows, columns: columns, budget: budget, rng: &rng)
    }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        LayerUpdateResult(mask: layer.mask)
    }
}
