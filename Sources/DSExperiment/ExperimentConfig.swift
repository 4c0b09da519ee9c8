import DSCore
import DSLayers
import DSSparsity
import Foundation

/// A whole experiment, as written in a YAML config file. Every key has a default;
/// `ConfigLoader` rejects unknown keys and `validate()` reports every problem.
public struct ExperimentConfig: Codable, Equatable {
    /// Run name: the results folder is `<output.root>/<name>/`.
    public var name = "experiment"
    /// Seeds weights, shuffling, augmentation and dropout.
    public var seed: UInt64 = 0
    public var data = DataConfig()
    public var model = ModelConfig()
    public var optimizer = OptimizerConfig()
    public var schedule = ScheduleConfig()
    public var training = TrainingConfig()
    public var output = OutputConfig()
    public var sparsity = SparsityConfig()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case name, seed, data, model, optimizer, schedule, training, output, sparsity
    }

    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self)
        let d = ExperimentConfig()
        name = f(.name, d.name); seed = f(.seed, d.seed)
        data = f(.data, d.data); model = f(.model, d.model)
        optimizer = f(.optimizer, d.optimizer); schedule = f(.schedule, d.schedule)
        training = f(.training, d.training); output = f(.output, d.output)
        sparsity = f(.sparsity, d.sparsity)
    }

    /// Every key, with the defaults that depend on other keys resolved (the weight
    /// decay of norms and biases per model, the structure per strategy).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        var resolvedOptimizer = optimizer
        resolvedOptimizer.decayNormsAndBiases = decaysNormsAndBiases
        try c.encode(name, forKey: .name); try c.encode(seed, forKey: .seed); try c.encode(data, forKey: .data)
        try c.encode(model, forKey: .model); try c.encode(resolvedOptimizer, forKey: .optimizer)
        try c.encode(schedule, forKey: .schedule); try c.encode(training, forKey: .training)
        try c.encode(output, forKey: .output); try c.encode(sparsity, forKey: .sparsity)
    }

    /// Equal when they run the same (a default left out equals the value it resolves to).
    public static func == (a: ExperimentConfig, b: ExperimentConfig) -> Bool {
        var a = a, b = b
        a.optimizer.decayNormsAndBiases = a.decaysNormsAndBiases
        b.optimizer.decayNormsAndBiases = b.decaysNormsAndBiases
        return a.name == b.name && a.seed == b.seed && a.data == b.data && a.model == b.model
            && a.optimizer == b.optimizer && a.schedule == b.schedule && a.training == b.training
            && a.output == b.output && a.sparsity == b.sparsity
    }

    /// `optimizer.decay_norms_and_biases`, or the model's default when it is left out.
    public var decaysNormsAndBiases: Bool { optimizer.decayNormsAndBiases ?? (model.name != "vit") }
}

public struct AugmentationConfig: Codable, Equatable {
    /// Zero-pad by this many pixels and crop back at a random offset (0: off).
    public var randomCropPadding = 0
    /// Random left–right mirroring.
    public var horizontalFlip = false
    public init() {}
    enum CodingKeys: String, CodingKey {
        case randomCropPadding = "random_crop_padding", horizontalFlip = "horizontal_flip"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = AugmentationConfig()
        randomCropPadding = f(.randomCropPadding, d.randomCropPadding)
        horizontalFlip = f(.horizontalFlip, d.horizontalFlip)
    }
}

public struct DataConfig: Codable, Equatable {
    /// `mnist`, `fashion-mnist` or `cifar10`.
    public var dataset = "fashion-mnist"
    /// Where datasets live (`<root>/<dataset>/`); Debian's system copies are also searched.
    public var root = "data"
    /// Training samples held out (seeded) as a validation split; 0 for none.
    public var validationSize = 0
    public var augmentation = AugmentationConfig()
    public init() {}
    enum CodingKeys: String, CodingKey {
        case dataset, root, augmentation
        case validationSize = "validation_size"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = DataConfig()
        dataset = f(.dataset, d.dataset); root = f(.root, d.root)
        validationSize = f(.validationSize, d.validationSize)
        augmentation = f(.augmentation, d.augmentation)
    }
}

public struct ModelConfig: Codable, Equatable {
    /// A name from the model registry (`dst models` lists them).
    public var name = "mlp"
    /// Hidden layer sizes (`mlp`).
    public var hidden = [300, 100]
    /// Multiplies convolution channel counts.
    public var widthMultiplier = 1.0
    /// Dropout probability (`mlp`, `wrn-22-2`).
    public var dropout = 0.0
    /// `vit` only: the transformer's shape.
    public var vit = VisionTransformerConfig()
    public init() {}
    enum CodingKeys: String, CodingKey {
        case name, hidden, dropout, vit
        case widthMultiplier = "width_multiplier"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = ModelConfig()
        name = f(.name, d.name); hidden = f(.hidden, d.hidden)
        widthMultiplier = f(.widthMultiplier, d.widthMultiplier); dropout = f(.dropout, d.dropout)
        vit = f(.vit, d.vit)
    }
}

/// `model.vit`: a vision transformer's shape (docs/algorithms.md §7).
public struct VisionTransformerConfig: Codable, Equatable {
    /// Side of the square patches; must divide the image size.
    public var patchSize = 7
    /// Transformer blocks.
    public var depth = 4
    /// Token width.
    public var width = 64
    /// Attention heads; must divide `width`.
    public var heads = 4
    /// MLP hidden width as a multiple of `width`.
    public var mlpRatio = 2.0
    /// Dropout after the embedding, the attention output and in the MLP.
    public var dropout = 0.0
    /// Dropout on the attention weights.
    public var attentionDropout = 0.0
    /// GELU's tanh approximation instead of the exact erf form.
    public var approximateGELU = false
    public init() {}
    enum CodingKeys: String, CodingKey {
        case depth, width, heads, dropout
        case patchSize = "patch_size", mlpRatio = "mlp_ratio", attentionDropout = "attention_dropout"
        case approximateGELU = "approximate_gelu"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = VisionTransformerConfig()
        patchSize = f(.patchSize, d.patchSize); depth = f(.depth, d.depth); width = f(.width, d.width)
        heads = f(.heads, d.heads); mlpRatio = f(.mlpRatio, d.mlpRatio); dropout = f(.dropout, d.dropout)
        attentionDropout = f(.attentionDropout, d.attentionDropout); approximateGELU = f(.approximateGELU, d.approximateGELU)
    }

    /// Every problem, keys under `model.vit`.
    func problems() -> [String] {
        var p: [String] = []
        if patchSize < 1 { p.append("model.vit.patch_size: must be positive, got \(patchSize)") }
        if depth < 1 { p.append("model.vit.depth: must be positive, got \(depth)") }
        if width < 1 { p.append("model.vit.width: must be positive, got \(width)") }
        if heads < 1 || (width > 0 && width % max(heads, 1) != 0) {
            p.append("model.vit.heads: must be positive and divide model.vit.width (\(width)), got \(heads)")
        }
        if !(mlpRatio > 0) { p.append("model.vit.mlp_ratio: must be positive, got \(mlpRatio)") }
        if !(dropout >= 0 && dropout < 1) { p.append("model.vit.dropout: must be in [0, 1), got \(dropout)") }
        if !(attentionDropout >= 0 && attentionDropout < 1) {
            p.append("model.vit.attention_dropout: must be in [0, 1), got \(attentionDropout)")
        }
        return p
    }

    var options: VisionTransformerOptions {
        VisionTransformerOptions(patchSize: patchSize, depth: depth, width: width, heads: heads, mlpRatio: mlpRatio,
                                 dropout: Float(dropout), attentionDropout: Float(attentionDropout),
                                 approximateGELU: approximateGELU)
    }
}

public struct OptimizerConfig: Codable, Equatable {
    /// `sgd` or `adamw`.
    public var name = "sgd"
    /// Base learning rate.
    public var lr = 0.1
    /// SGD momentum.
    public var momentum = 0.9
    /// SGD Nesterov momentum.
    public var nesterov = false
    /// L2 (SGD) or decoupled (AdamW) weight decay, on every parameter.
    public var weightDecay = 0.0
    /// AdamW β₁, β₂.
    public var betas = [0.9, 0.999]
    /// AdamW ε.
    public var eps = 1e-8
    /// Whether weight decay applies to biases and norm scales and shifts; nil (left
    /// out) means the model's default: false for `vit` (as ViT recipes do), true for
    /// the others (as their recipes do). Embeddings are never decayed.
    public var decayNormsAndBiases: Bool?
    /// Clip the gradient to this global L2 norm before each step (0: off).
    public var gradClipNorm = 0.0
    public init() {}
    enum CodingKeys: String, CodingKey {
        case name, lr, momentum, nesterov, betas, eps
        case weightDecay = "weight_decay", decayNormsAndBiases = "decay_norms_and_biases"
        case gradClipNorm = "grad_clip_norm"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = OptimizerConfig()
        name = f(.name, d.name); lr = f(.lr, d.lr); momentum = f(.momentum, d.momentum)
        nesterov = f(.nesterov, d.nesterov); weightDecay = f(.weightDecay, d.weightDecay)
        betas = f(.betas, d.betas); eps = f(.eps, d.eps)
        decayNormsAndBiases = f(.decayNormsAndBiases, d.decayNormsAndBiases)
        gradClipNorm = f(.gradClipNorm, d.gradClipNorm)
    }
}

public struct ScheduleConfig: Codable, Equatable {
    /// `constant`, `step`, `multistep` or `cosine`.
    public var name = "constant"
    /// `step`: epochs between decays.
    public var stepSize = 30
    /// `multistep`: epochs at which the rate is multiplied by `gamma`.
    public var milestones: [Int] = []
    /// Decay factor of `step` and `multistep`.
    public var gamma = 0.1
    /// `cosine`: final learning rate.
    public var minLr = 0.0
    /// Linear warm-up length in epochs (may be fractional), before any schedule.
    public var warmupEpochs = 0.0
    /// Warm-up starts at `warmup_start_factor × lr`.
    public var warmupStartFactor = 0.0
    public init() {}
    enum CodingKeys: String, CodingKey {
        case name, milestones, gamma
        case stepSize = "step_size", minLr = "min_lr"
        case warmupEpochs = "warmup_epochs", warmupStartFactor = "warmup_start_factor"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = ScheduleConfig()
        name = f(.name, d.name); stepSize = f(.stepSize, d.stepSize)
        milestones = f(.milestones, d.milestones); gamma = f(.gamma, d.gamma)
        minLr = f(.minLr, d.minLr); warmupEpochs = f(.warmupEpochs, d.warmupEpochs)
        warmupStartFactor = f(.warmupStartFactor, d.warmupStartFactor)
    }
}

public struct TrainingConfig: Codable, Equatable {
    public var epochs = 10
    public var batchSize = 128
    /// Batch size for evaluation passes (memory only; results do not depend on it).
    public var evalBatchSize = 500
    public var labelSmoothing = 0.0
    /// Compute threads (OpenBLAS and the library's own loops); 0 = all cores.
    public var threads = 0
    /// Stop each epoch after this many batches (0 = the whole split); for smoke tests.
    public var maxBatchesPerEpoch = 0
    /// `auto`, `on` or `off`: whether sparse layers train through sparse kernels.
    public var sparseKernels = "auto"
    public init() {}
    enum CodingKeys: String, CodingKey {
        case epochs, threads
        case batchSize = "batch_size", evalBatchSize = "eval_batch_size"
        case labelSmoothing = "label_smoothing", maxBatchesPerEpoch = "max_batches_per_epoch"
        case sparseKernels = "sparse_kernels"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = TrainingConfig()
        epochs = f(.epochs, d.epochs); batchSize = f(.batchSize, d.batchSize)
        evalBatchSize = f(.evalBatchSize, d.evalBatchSize)
        labelSmoothing = f(.labelSmoothing, d.labelSmoothing); threads = f(.threads, d.threads)
        maxBatchesPerEpoch = f(.maxBatchesPerEpoch, d.maxBatchesPerEpoch)
        sparseKernels = f(.sparseKernels, d.sparseKernels)
    }
}

public struct OutputConfig: Codable, Equatable {
    /// Parent folder of run folders.
    public var root = "results"
    public init() {}
    enum CodingKeys: String, CodingKey { case root }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self)
        root = f(.root, OutputConfig().root)
    }
}

public struct SparsityConfig: Codable, Equatable {
    /// `dense`, `static`, `set`, `rigl`, `srigl` or `gmp`.
    public var strategy = "dense"
    /// Overall target sparsity `s` in [0, 1) over every Linear/Conv2d weight.
    public var sparsity = 0.9
    /// `erk` or `uniform`.
    public var distribution = "erk"
    /// `unstructured`, `constant_fan_in` or `n_of_m`; nil (left out) means the strategy's
    /// default (`constant_fan_in` for srigl, `unstructured` otherwise). The resolved
    /// `config.yaml` names the one used (`resolvedStructure`).
    public var structure: String?
    /// `n_of_m`: active weights per group (`n`) and group length (`m`).
    public var n = 2
    public var m = 4
    /// Layers kept dense (names as in `sparsity.csv`, e.g. `conv1`, `fc`).
    public var denseLayers: [String] = []
    /// `ΔT`: optimizer steps between mask updates.
    public var updateInterval = 100
    /// `T_start` as a fraction of all optimizer steps: no mask update before it.
    public var startFraction = 0.0
    /// `T_end` as a fraction of all optimizer steps.
    public var endFraction = 0.75
    /// `α`: the initial drop fraction (cosine-decayed to 0 at `T_end`).
    public var dropFraction = 0.3
    /// Backward passes averaged into the dense gradient used by RigL/SRigL updates.
    public var gradAccumulation = 1
    /// Layers never ablated; `classifier` names the model's last Linear layer.
    public var noAblationLayers = ["classifier"]
    /// Initial active weights: `sparse_kaiming`, `dense` or `authors`.
    public var initialization = "sparse_kaiming"
    /// Each strategy's own options (`sparsity.srigl`, `sparsity.static`).
    public var options = StrategyOptionSections()
    public init() {}

    enum CodingKeys: String, CodingKey {
        case strategy, sparsity, distribution, structure, n, m
        case denseLayers = "dense_layers", updateInterval = "update_interval", startFraction = "start_fraction"
        case endFraction = "end_fraction", dropFraction = "drop_fraction", gradAccumulation = "grad_accumulation"
        case noAblationLayers = "no_ablation_layers", initialization = "init"
        case srigl, staticMask = "static"
    }

    /// The structure `strategy` uses when a config names none.
    public static func defaultStructure(for strategy: String) -> String {
        (StrategyRegistry.entries[strategy]?.defaultStructure ?? .unstructured).rawValue
    }

    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = SparsityConfig()
        strategy = f(.strategy, d.strategy); sparsity = f(.sparsity, d.sparsity)
        distribution = f(.distribution, d.distribution)
        structure = f(.structure, d.structure)
        n = f(.n, d.n); m = f(.m, d.m)
        denseLayers = f(.denseLayers, d.denseLayers)
        updateInterval = f(.updateInterval, d.updateInterval); startFraction = f(.startFraction, d.startFraction)
        endFraction = f(.endFraction, d.endFraction)
        dropFraction = f(.dropFraction, d.dropFraction); gradAccumulation = f(.gradAccumulation, d.gradAccumulation)
        noAblationLayers = f(.noAblationLayers, d.noAblationLayers)
        initialization = f(.initialization, d.initialization)
        options.srigl = f(.srigl, d.options.srigl); options.staticMask = f(.staticMask, d.options.staticMask)
    }

    /// Every key, with only the running strategy's options section: the resolved
    /// config says which options the run used.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(strategy, forKey: .strategy); try c.encode(sparsity, forKey: .sparsity)
        try c.encode(distribution, forKey: .distribution); try c.encode(resolvedStructure, forKey: .structure)
        try c.encode(n, forKey: .n); try c.encode(m, forKey: .m)
        try c.encode(denseLayers, forKey: .denseLayers); try c.encode(updateInterval, forKey: .updateInterval)
        try c.encode(startFraction, forKey: .startFraction); try c.encode(endFraction, forKey: .endFraction)
        try c.encode(dropFraction, forKey: .dropFraction); try c.encode(gradAccumulation, forKey: .gradAccumulation)
        try c.encode(noAblationLayers, forKey: .noAblationLayers); try c.encode(initialization, forKey: .initialization)
        if let section = options.section(of: strategy), let key = CodingKeys(stringValue: strategy) {
            try c.encode(section, forKey: key)
        }
    }

    /// Equal when they run the same: a structure left out equals the default named.
    public static func == (a: SparsityConfig, b: SparsityConfig) -> Bool {
        var a = a, b = b
        a.structure = a.resolvedStructure; b.structure = b.resolvedStructure
        return a.strategy == b.strategy && a.sparsity == b.sparsity && a.distribution == b.distribution
            && a.structure == b.structure && a.n == b.n && a.m == b.m && a.denseLayers == b.denseLayers
            && a.updateInterval == b.updateInterval && a.startFraction == b.startFraction
            && a.endFraction == b.endFraction && a.dropFraction == b.dropFraction
            && a.gradAccumulation == b.gradAccumulation && a.noAblationLayers == b.noAblationLayers
            && a.initialization == b.initialization && a.options == b.options
    }

    /// `structure`, or the strategy's default when it is nil.
    public var resolvedStructure: String { structure ?? Self.defaultStructure(for: strategy) }

    /// The configured structure.
    public var maskStructure: any MaskStructure {
        (MaskStructureKind(rawValue: resolvedStructure) ?? .unstructured).make(n: n, m: m)
    }
}
