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
    public init() {}
    enum CodingKeys: String, CodingKey {
        case name, hidden, dropout
        case widthMultiplier = "width_multiplier"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = ModelConfig()
        name = f(.name, d.name); hidden = f(.hidden, d.hidden)
        widthMultiplier = f(.widthMultiplier, d.widthMultiplier); dropout = f(.dropout, d.dropout)
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
    public init() {}
    enum CodingKeys: String, CodingKey {
        case name, lr, momentum, nesterov, betas, eps
        case weightDecay = "weight_decay"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = OptimizerConfig()
        name = f(.name, d.name); lr = f(.lr, d.lr); momentum = f(.momentum, d.momentum)
        nesterov = f(.nesterov, d.nesterov); weightDecay = f(.weightDecay, d.weightDecay)
        betas = f(.betas, d.betas); eps = f(.eps, d.eps)
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
    /// `dense`, `static`, `set`, `rigl` or `srigl`.
    public var strategy = "dense"
    /// Overall target sparsity `s` in [0, 1) over every Linear/Conv2d weight.
    public var sparsity = 0.9
    /// `erk` or `uniform`.
    public var distribution = "erk"
    /// Layers kept dense (names as in `sparsity.csv`, e.g. `conv1`, `fc`).
    public var denseLayers: [String] = []
    /// `ΔT`: optimizer steps between mask updates.
    public var updateInterval = 100
    /// `T_end` as a fraction of all optimizer steps.
    public var endFraction = 0.75
    /// `α`: the initial drop fraction (cosine-decayed to 0 at `T_end`).
    public var dropFraction = 0.3
    /// Backward passes averaged into the dense gradient used by RigL/SRigL updates.
    public var gradAccumulation = 1
    /// `γ_sal` (SRigL): salient weights a neuron needs, as a fraction of its fan-in
    /// (≥ 1: an absolute count).
    public var gammaSal = 0.3
    /// SRigL neuron ablation.
    public var ablation = true
    /// Layers never ablated; `classifier` names the model's last Linear layer.
    public var noAblationLayers = ["classifier"]
    /// `static`: draw a constant fan-in mask (the structured static baseline).
    public var constantFanIn = false
    /// Initial active weights: `sparse_kaiming`, `dense` or `authors`.
    public var initialization = "sparse_kaiming"
    public init() {}
    enum CodingKeys: String, CodingKey {
        case strategy, sparsity, distribution, ablation
        case denseLayers = "dense_layers", updateInterval = "update_interval", endFraction = "end_fraction"
        case dropFraction = "drop_fraction", gradAccumulation = "grad_accumulation", gammaSal = "gamma_sal"
        case noAblationLayers = "no_ablation_layers", constantFanIn = "constant_fan_in", initialization = "init"
    }
    public init(from decoder: Decoder) throws {
        let f = Fields(decoder, CodingKeys.self), d = SparsityConfig()
        strategy = f(.strategy, d.strategy); sparsity = f(.sparsity, d.sparsity)
        distribution = f(.distribution, d.distribution); denseLayers = f(.denseLayers, d.denseLayers)
        updateInterval = f(.updateInterval, d.updateInterval); endFraction = f(.endFraction, d.endFraction)
        dropFraction = f(.dropFraction, d.dropFraction); gradAccumulation = f(.gradAccumulation, d.gradAccumulation)
        gammaSal = f(.gammaSal, d.gammaSal); ablation = f(.ablation, d.ablation)
        noAblationLayers = f(.noAblationLayers, d.noAblationLayers); constantFanIn = f(.constantFanIn, d.constantFanIn)
        initialization = f(.initialization, d.initialization)
    }
}
