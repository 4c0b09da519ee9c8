import DSCore
import DSData
import DSLayers
import DSTraining

/// Loss and accuracy over one pass.
public struct PassResult: Equatable, Sendable {
    public var loss: Double
    public var accuracy: Double
    public var samples: Int
}

/// Runs optimisation steps and evaluation passes for one model.
public final class Trainer {
    public let model: Sequential
    public let optimizer: Optimizer
    public let loss: CrossEntropy
    public let schedule: LearningRateSchedule
    /// Optimizer steps taken so far.
    public private(set) var step = 0

    public init(model: Sequential, optimizer: Optimizer, loss: CrossEntropy, schedule: LearningRateSchedule) {
        self.model = model; self.optimizer = optimizer; self.loss = loss; self.schedule = schedule
    }

    /// The learning rate the next step will use.
    public var currentLearningRate: Double { schedule.learningRate(atStep: step) }

    /// One optimisation step on `batch`; returns the batch loss and correct count.
    public func trainStep(_ batch: Batch) -> (loss: Float, correct: Int) {
        model.zeroGradients()
        let logits = model.forward(batch.images, training: true)
        let result = loss.evaluate(logits: logits, labels: batch.labels)
        _ = model.backward(result.gradient)
        optimizer.step(learningRate: Float(schedule.learningRate(atStep: step)))
        step += 1
        return (result.loss, result.correct)
    }

    /// One epoch over `loader` in an order shuffled by `rng` (which also drives
    /// augmentation). `maxBatches` > 0 stops early; `progress(done, total, loss, acc)`.
    public func trainEpoch(_ loader: BatchLoader, rng: inout Xoshiro256, maxBatches: Int = 0,
                           progress: (Int, Int, Double, Double) -> Void = { _, _, _, _ in }) -> PassResult {
        let order = loader.shuffledOrder(&rng)
        let total = maxBatches > 0 ? min(maxBatches, loader.batchesPerEpoch) : loader.batchesPerEpoch
        var lossSum = 0.0, correct = 0, seen = 0
        for b in 0..<total {
            let batch = loader.batch(b, of: order, augmentWith: &rng)
            let r = trainStep(batch)
            lossSum += Double(r.loss) * Double(batch.labels.count)
            correct += r.correct
            seen += batch.labels.count
            progress(b + 1, total, lossSum / Double(seen), Double(correct) / Double(seen))
        }
        return PassResult(loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                          samples: seen)
    }

    /// Loss and accuracy of the model in evaluation mode over all of `loader`.
    public func evaluate(_ loader: BatchLoader) -> PassResult {
        var lossSum = 0.0, correct = 0, seen = 0
        for b in 0..<loader.batchesPerEpoch {
            let batch = loader.evaluationBatch(b)
            let logits = model.forward(batch.images, training: false)
            let r = loss.evaluate(logits: logits, labels: batch.labels)
            lossSum += Double(r.loss) * Double(batch.labels.count)
            correct += r.correct
            seen += batch.labels.count
        }
        return PassResult(loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                          samples: seen)
    }
}
