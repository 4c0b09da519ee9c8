import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining

extension ExperimentConfig {
    /// The model's input description from a loaded dataset.
    public func modelInput(_ splits: DatasetSplits) -> ModelInput {
        ModelInput(channels: splits.train.channels, height: splits.train.height,
                   width: splits.train.width, classes: splits.classes)
    }

    public var modelOptions: ModelOptions {
        ModelOptions(hidden: model.hidden, widthMultiplier: model.widthMultiplier, dropout: Float(model.dropout),
                     vit: model.vit.options)
    }

    /// The optimizer named by `optimizer.name` over `parameters`; biases and norm
    /// parameters are decayed as `decaysNormsAndBiases` says, embeddings never.
    public func makeOptimizer(_ parameters: [Parameter]) -> Optimizer {
        for p in parameters where p.role == .bias || p.role == .normalization { p.decays = decaysNormsAndBiases }
        switch optimizer.name {
        case "adamw":
            return AdamW(parameters: parameters, beta1: Float(optimizer.betas[0]), beta2: Float(optimizer.betas[1]),
                         epsilon: Float(optimizer.eps), weightDecay: Float(optimizer.weightDecay))
        default:
            return SGD(parameters: parameters, momentum: Float(optimizer.momentum),
                       nesterov: optimizer.nesterov, weightDecay: Float(optimizer.weightDecay))
        }
    }

    /// The learning-rate schedule for `stepsPerEpoch` optimizer steps per epoch.
    public func makeSchedule(stepsPerEpoch: Int) -> LearningRateSchedule {
        let decay: LearningRateSchedule.Decay
        switch schedule.name {
        case "step": decay = .step(stepSize: schedule.stepSize, gamma: schedule.gamma)
        case "multistep": decay = .multistep(milestones: schedule.milestones, gamma: schedule.gamma)
        case "cosine": decay = .cosine(minimum: schedule.minLr)
        default: decay = .constant
        }
        return LearningRateSchedule(base: optimizer.lr, decay: decay, warmupEpochs: schedule.warmupEpochs,
                                    warmupStartFactor: schedule.warmupStartFactor,
                                    totalEpochs: training.epochs, stepsPerEpoch: stepsPerEpoch)
    }
}

extension ExperimentConfig {
    /// The sparse view of `model` for `sparsity.*`; `dense` keeps every layer dense.
    /// Layer names in `dense_layers` / `no_ablation_layers` must exist (`classifier`
    /// is the model's last Linear layer).
    public func makeSparseModel(_ model: Sequential, parameters: [Parameter], totalSteps: Int, input: ModelInput? = nil,
                                rng: inout Xoshiro256) throws -> SparseModel {
        let names = model.namedParameters().filter { $0.parameter.role == .weight }
            .map { SparseModel.layerName($0.name) }
        let classifier = model.namedLayers().last { $0.layer is Linear }.map(\.name)
        func resolve(_ list: [String], key: String) throws -> Set<String> {
            var result = Set<String>()
            for name in list {
                let resolved = name == "classifier" ? classifier : name
                guard let resolved, names.contains(resolved) else {
                    throw RunError("sparsity.\(key): no prunable layer '\(name)' in \(self.model.name); "
                                   + "valid layers: classifier, \(names.joined(separator: ", "))")
                }
                result.insert(resolved)
            }
            return result
        }
        let dense = sparsity.strategy == "dense"
        let problems = structureProblems()
        guard problems.isEmpty else { throw RunError(problems.joined(separator: "; ")) }
        let settings = SparsitySettings(
            strategy: StrategyRegistry.entries[sparsity.strategy]?.make(sparsity.maskStructure, sparsity.options)
                ?? StaticStrategy(),
            sparsity: dense ? 0 : sparsity.sparsity,
            distribution: DensityDistribution(rawValue: sparsity.distribution) ?? .erk,
            denseLayers: dense ? Set(names) : try resolve(sparsity.denseLayers, key: "dense_layers"),
            protectedLayers: try resolve(sparsity.noAblationLayers, key: "no_ablation_layers"),
            schedule: UpdateSchedule(interval: sparsity.updateInterval, endFraction: sparsity.endFraction,
                                     dropFraction: sparsity.dropFraction, totalSteps: totalSteps,
                                     startFraction: sparsity.startFraction),
            gradientAccumulation: sparsity.gradAccumulation,
            initialization: SparseInitialization(rawValue: sparsity.initialization) ?? .sparseKaiming,
            kernels: SparseKernelMode(rawValue: training.sparseKernels) ?? .auto)
        do {
            return try SparseModel(model: model, parameters: parameters, settings: settings, input: input, rng: &rng)
        } catch let error as SparsityError {
            throw RunError("sparsity.sparsity: \(error.message)")
        } catch let error as DistributionError {
            throw RunError("sparsity.dense_layers: \(error.message)")
        }
    }
}
