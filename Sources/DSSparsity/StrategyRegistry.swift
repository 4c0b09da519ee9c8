import DSCore

/// A strategy's own options (`sparsity.<strategy>` in a config): decoded with defaults
/// and checked by the strategy's type, one rule for every strategy.
public protocol StrategyOptions: Codable, Equatable, Sendable {
    init()
    /// Every problem, each starting with its key inside the section (`gamma_sal: …`).
    func problems() -> [String]
}

/// The option sections of every strategy that has options. All are decoded and
/// checked whichever strategy runs (so one config can sweep strategies); only the
/// running strategy's section is used.
public struct StrategyOptionSections: Equatable, Sendable {
    public var srigl = SRigLStrategy.Options()
    public var staticMask = StaticStrategy.Options()
    public init() {}

    enum CodingKeys: String, CodingKey {
        case srigl
        case staticMask = "static"
    }

    /// The section keys, in the order a config lists them.
    public static let sectionNames = [CodingKeys.srigl.rawValue, CodingKeys.staticMask.rawValue]

    /// The section of `strategy`, for rendering (nil when it has none).
    public func section(of strategy: String) -> (any StrategyOptions)? {
        switch strategy {
        case CodingKeys.srigl.rawValue: srigl
        case CodingKeys.staticMask.rawValue: staticMask
        default: nil
        }
    }

    /// Every section's problems, as `<prefix><section>.<key>: …`.
    public func problems(prefix: String) -> [String] {
        Self.sectionNames.flatMap { name in
            (section(of: name)?.problems() ?? []).map { prefix + name + "." + $0 }
        }
    }
}

/// One registered strategy: its default structure, which structures it refuses and
/// why, and how it is built.
public struct StrategyEntry: Sendable {
    /// One line for `dst validate` and the README.
    public let summary: String
    public let defaultStructure: MaskStructureKind
    /// Why the strategy cannot run with `structure` and these options (nil: it can).
    public let refusal: @Sendable (MaskStructureKind, StrategyOptionSections) -> String?
    public let make: @Sendable (any MaskStructure, StrategyOptionSections) -> any SparsityScheduler
}

/// The sparsity strategies by config name: a plain dictionary, so every name can be
/// listed and every strategy tested. Adding a strategy is one file and one entry
/// here (plus its options section, if it has options). `dense` means no masks at all.
public enum StrategyRegistry {
    public static let entries: [String: StrategyEntry] = [
        "static": StrategyEntry(
            summary: "the initial mask (random, or SNIP-scored) never changes",
            defaultStructure: .unstructured, refusal: { _, _ in nil },
            make: { StaticStrategy(structure: $0, options: $1.staticMask) }),
        "set": StrategyEntry(
            summary: "drop the smallest |w|, regrow at random",
            defaultStructure: .unstructured, refusal: { _, _ in nil },
            make: { structure, _ in SETStrategy(structure: structure) }),
        "rigl": StrategyEntry(
            summary: "drop the smallest |w|, regrow the largest dense-gradient |g|",
            defaultStructure: .unstructured, refusal: { _, _ in nil },
            make: { structure, _ in RigLStrategy(structure: structure) }),
        "srigl": StrategyEntry(
            summary: "RigL under constant fan-in, with neuron ablation",
            defaultStructure: .constantFanIn,
            refusal: { structure, options in
                switch structure {
                case .constantFanIn: nil
                case .unstructured: "srigl is RigL under constant fan-in; for unstructured masks use strategy rigl"
                case .nOfM: options.srigl.ablation
                    ? "neuron ablation moves a neuron's budget to the others, which N:M's fixed n per group does not allow; set sparsity.srigl.ablation: false (or use strategy rigl)"
                    : nil
                }
            },
            make: { SRigLStrategy(options: $1.srigl, structure: $0) }),
        "gmp": StrategyEntry(
            summary: "gradual magnitude pruning, dense to sparse on a cubic schedule",
            defaultStructure: .unstructured, refusal: { _, _ in nil },
            make: { structure, _ in GMPStrategy(structure: structure) }),
    ]

    /// The strategy `name` with `structure` (the strategy's default when nil; `n`, `m`
    /// for N:M) and `options`; nil for an unknown name or a structure it refuses.
    public static func make(_ name: String, structure: MaskStructureKind? = nil, n: Int = 2, m: Int = 4,
                            options: StrategyOptionSections = StrategyOptionSections()) -> (any SparsityScheduler)? {
        guard let entry = entries[name] else { return nil }
        let kind = structure ?? entry.defaultStructure
        guard entry.refusal(kind, options) == nil else { return nil }
        return entry.make(kind.make(n: n, m: m), options)
    }

    /// Every registered strategy with its default structure and options, by name.
    public static var defaults: [any SparsityScheduler] { entries.keys.sorted().compactMap { make($0) } }

    /// Every valid `sparsity.strategy`, `dense` included.
    public static var names: [String] { (["dense"] + entries.keys).sorted() }
}
