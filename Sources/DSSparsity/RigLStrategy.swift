import DSCore

/// RigL (Evci et al. 2020): drop like SET, grow the `nDrop` positions of largest
/// dense-gradient magnitude among those not kept (within each group of the structure).
public struct RigLStrategy: SparsityScheduler {
    public let structure: any MaskStructure
    public init(structure: any MaskStructure = Unstructured()) { self.structure = structure }
    public var name: String { "rigl" }
    public var usesDenseGradient: Bool { true }
    public var isDynamic: Bool { true }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        layer.dropAndGrow(in: structure, growingLargest: layer.denseGradient)
    }
}
