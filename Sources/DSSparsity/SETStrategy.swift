import DSCore

/// SET (Mocanu et al. 2018): keep the `nKeep` largest `|w|`, grow `nDrop` positions
/// uniformly at random among those not kept (within each group of the structure).
public struct SETStrategy: SparsityScheduler {
    public let structure: any MaskStructure
    public init(structure: any MaskStructure = Unstructured()) { self.structure = structure }
    public var name: String { "set" }
    public var usesDenseGradient: Bool { false }
    public var isDynamic: Bool { true }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        layer.dropAndGrow(in: structure) { free, count in Selection.random(count, of: free, using: &rng) }
    }
}
