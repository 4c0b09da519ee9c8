import DSCore
import DSData
import DSLayers
import DSTraining

extension ExperimentConfig {
    /// The model's input description from a loaded dataset.
    public func modelInput(_ splits: DatasetSplits) -> ModelInput {
        ModelInput(channels: splits.train.channels, height: splits.train.height,
                   width: splits.train.width, classes: splits.classes)
    }

    public var modelOptions: ModelOptions {
        ModelOptions(hidden: model.hidden, widthMultiplier: model.widthMultiplier, dropout: Float(model.dropout))
    }

    /// The optimizer named by `optimizer.name` over `parameters`.
    public func makeOptimizer(_ parameters: [Parameter]) -> Optimizer {
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
