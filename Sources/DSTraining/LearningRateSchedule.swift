import Foundation

/// The learning rate as a function of the optimizer step.
///
/// Step-wise decays (`step`, `multistep`) change at epoch boundaries, as in PyTorch's
/// schedulers stepped once per epoch; `cosine` anneals per step. A linear warm-up
/// from `warmupStartFactor · base` to `base` over `warmupEpochs` comes first.
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Decay: Equatable, Sendable {
        case constant
        /// Multiply by `gamma` every `stepSize` epochs.
        case step(stepSize: Int, gamma: Double)
        /// Multiply by `gamma` at each epoch in `milestones`.
        case multistep(milestones: [Int], gamma: Double)
        /// Cosine from `base` down to `minimum` over the epochs after warm-up.
        case cosine(minimum: Double)
    }

    public var base: Double
    public var decay: Decay
    public var warmupEpochs: Double
    public var warmupStartFactor: Double
    public var totalEpochs: Int
    public var stepsPerEpoch: Int

    public init(base: Double, decay: Decay, warmupEpochs: Double = 0, warmupStartFactor: Double = 0,
                totalEpochs: Int, stepsPerEpoch: Int) {
        self.base = base; self.decay = decay
        self.warmupEpochs = warmupEpochs; self.warmupStartFactor = warmupStartFactor
        self.totalEpochs = totalEpochs; self.stepsPerEpoch = max(stepsPerEpoch, 1)
    }

    /// Learning rate for the optimizer step `step` (0-based).
    public func learningRate(atStep step: Int) -> Double {
        let epochFraction = Double(step) / Double(stepsPerEpoch)
        let warmupSteps = warmupEpochs * Double(stepsPerEpoch)
        if Double(step) < warmupSteps {
            let t = Double(step) / warmupSteps
            return base * (warmupStartFactor + (1 - warmupStartFactor) * t)
        }
        let epoch = step / stepsPerEpoch
        switch decay {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * pow(gamma, Double(epoch / max(stepSize, 1)))
        case let .multistep(milestones, gamma):
            return base * pow(gamma, Double(milestones.filter { $0 <= epoch }.count))
        case let .cosine(minimum):
            let span = max(Double(totalEpochs) - warmupEpochs, 1e-9)
            let t = min(max((epochFraction - warmupEpochs) / span, 0), 1)
            return minimum + (base - minimum) * 0.5 * (1 + cos(Double.pi * t))
        }
    }
}
