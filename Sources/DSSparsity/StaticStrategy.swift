import DSCore

/// Static sparsity: the initial mask never changes. It is drawn at random with the
/// structure's pattern, or, with `init_mask: snip`, scored by SNIP (Lee et al. 2019):
/// within each group the positions of largest `|w · g|`, `g` the gradient summed over
/// the first `snip_batches` training batches at initialisation (docs/algorithms.md §3.5).
public struct StaticStrategy: SparsityScheduler {
    /// `sparsity.static`.
    public struct Options: StrategyOptions {
        /// `random` or `snip`.
        public var initMask = "random"
        /// Batches SNIP sums the gradient over.
        public var snipBatches = 1
        public init() {}
        public static let initMasks = ["random", "snip"]
        enum CodingKeys: String, CodingKey { case initMask = "init_mask", snipBatches = "snip_batches" }
        public init(from decoder: Decoder) throws {
            let f = Fields(decoder, CodingKeys.self), d = Options()
            initMask = f(.initMask, d.initMask); snipBatches = f(.snipBatches, d.snipBatches)
        }
        public func problems() -> [String] {
            var p: [String] = []
            if !Self.initMasks.contains(initMask) {
                p.append("init_mask: unknown initial mask '\(initMask)'; valid: \(Self.initMasks.joined(separator: ", "))")
            }
            if snipBatches < 1 { p.append("snip_batches: must be ≥ 1, got \(snipBatches)") }
            return p
        }
    }

    public let structure: any MaskStructure
    public let options: Options
    public init(structure: any MaskStructure = Unstructured(), options: Options = Options()) {
        self.structure = structure; self.options = options
    }

    public var name: String { "static" }
    public var usesDenseGradient: Bool { false }
    public var isDynamic: Bool { false }
    public var initialScoringBatches: Int { options.initMask == "snip" ? options.snipBatches : 0 }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        LayerUpdateResult(mask: layer.mask)
    }
}
