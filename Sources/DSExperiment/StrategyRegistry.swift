import DSSparsity

/// The sparsity strategies by config name: a plain dictionary, so every name can be
/// listed. `dense` means no masks at all.
public enum StrategyRegistry {
    public static let builders: [String: (SparsityConfig) -> any SparsityScheduler] = [
        "static": { StaticStrategy(constantFanIn: $0.constantFanIn) },
        "set": { _ in SETStrategy() },
        "rigl": { _ in RigLStrategy() },
        "srigl": { SRigLStrategy(salienceThreshold: $0.gammaSal, ablation: $0.ablation) },
    ]

    /// Every valid `sparsity.strategy`, `dense` included.
    public static var names: [String] { (["dense"] + builders.keys).sorted() }
}
