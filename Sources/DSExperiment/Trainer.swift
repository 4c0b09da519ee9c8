import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining

/// Loss and accuracy over one pass.
public struct PassResult: Equatable, Sendable {
    public var loss: Double
    public var accuracy: Double
    public var samples: Int
}

/// Training stopped because the loss or the weights stopped being finite numbers.
public struct TrainingDiverged: Error, CustomStringConvertible {
    /// The optimizer step at which it was found (the step was not taken).
    public let step: Int
    public let reason: String
    public var description: String { "training diverged at step \(step): \(reason)" }
}

/// Runs optimisation steps and evaluation passes for one model.
public final class Trainer {
    public let model: Sequential
    public let optimizer: Optimizer
    public let loss: CrossEntropy
    public let schedule: LearningRateSchedule
    /// The model's masks; every step keeps inactive weights, gradients and optimizer
    /// state at zero, and runs the strategy's mask updates on schedule.
    public let sparse: SparseModel?
    /// Optimizer steps taken so far.
    public private(set) var step = 0
    /// Clip the gradient to this global norm before each optimizer step (0: off).
    public var gradientClipNorm: Float = 0

    public init(model: Sequential, optimizer: Optimizer, loss: CrossEntropy, schedule: LearningRateSchedule,
                sparse: SparseModel? = nil) {
        self.model = model; self.optimizer = optimizer; self.loss = loss; self.schedule = schedule
        self.sparse = sparse
    }

    /// Sets the step counter (resuming from a checkpoint).
    public func restore(step: Int) { self.step = step }

    /// The learning rate the next step will use.
    public var currentLearningRate: Double { schedule.learningRate(atStep: step) }

    /// One optimisation step on `batch` (docs/algorithms.md §3 order: forward/backward keeping the
    /// dense gradient → masked optimizer step → mask update, whose dropped and grown
    /// positions get zero optimizer state). Returns the batch loss, the correct count
    /// and the mask changes (empty unless an update ran). A loss that is not a finite
    /// number throws `TrainingDiverged` before any weight changes.
    public func trainStep(_ batch: Batch, sparsityRNG: inout Xoshiro256) throws -> (loss: Float, correct: Int, updates: MaskUpdates) {
        Parallel.refreshPlacement()   // whether the threads share a cache, re-measured every quarter of a second
        model.zeroGradients()
        let logits = model.forward(batch.images, training: true)
        let result = loss.evaluate(logits: logits, labels: batch.labels)
        guard result.loss.isFinite else {
            throw TrainingDiverged(step: step + 1, reason: "the training loss is \(result.loss)")
        }
        sparse?.prepareBackward(forStep: step + 1)   // sparse kernels: dense weight gradient or not
        _ = model.backward(result.gradient)
        sparse?.prepareGradients(forStep: step + 1)
        if gradientClipNorm > 0 { optimizer.clipGradientNorm(maximum: gradientClipNorm) }
        optimizer.step(learningRate: Float(schedule.learningRate(atStep: step)))
        step += 1
        let updates = sparse?.afterStep(step, rng: &sparsityRNG) ?? []
        for u in updates {
            optimizer.zeroState(parameter: u.layer.parameterIndex, at: u.change.dropped + u.change.grown)
        }
        return (result.loss, result.correct, updates)
    }

    /// One epoch over `loader` in an order shuffled by `rng` (which also drives
    /// augmentation); `sparsityRNG` drives random mask growth. `maxBatches` > 0 stops
    /// early; `onMaskUpdate(step, changes)` follows each mask update;
    /// `progress(done, total, loss, acc)` follows each batch.
    public func trainEpoch(_ loader: BatchLoader, rng: inout Xoshiro256, sparsityRNG: inout Xoshiro256,
                           maxBatches: Int = 0,
                           onMaskUpdate: (Int, MaskUpdates) -> Void = { _, _ in },
                           progress: (Int, Int, Double, Double) -> Void = { _, _, _, _ in }) throws -> PassResult {
        let order = loader.shuffledOrder(&rng)
        let total = maxBatches > 0 ? min(maxBatches, loader.batchesPerEpoch) : loader.batchesPerEpoch
        var lossSum = 0.0, correct = 0, seen = 0
        for b in 0..<total {
            let batch = loader.batch(b, of: order, augmentWith: &rng)
            let r = try trainStep(batch, sparsityRNG: &sparsityRNG)
            if !r.updates.isEmpty { onMaskUpdate(step, r.updates) }
            lossSum += Double(r.loss) * Double(batch.labels.count)
            correct += r.correct
            seen += batch.labels.count
            progress(b + 1, total, lossSum / Double(seen), Double(correct) / Double(seen))
        }
        return PassResult(loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                          samples: seen)
    }

    /// SNIP's scores, before training (docs/algorithms.md §3.5): the loss gradient of every
    /// sparse layer's weight, summed over `batches` training batches drawn in an order
    /// from `rng`, with every weight still active; then the masks are chosen from
    /// `|w · g|`. BatchNorm statistics are put back and the gradients cleared, so
    /// training starts as if the passes had not run (a Dropout layer's generator has
    /// moved on, the same way in every run).
    public func scoreInitialMasks(_ loader: BatchLoader, batches: Int, rng: inout Xoshiro256,
                                  sparsityRNG: inout Xoshiro256) {
        guard let sparse else { return }
        let buffers = model.namedBuffers().map { ($0.buffer, $0.buffer.value) }
        for layer in sparse.layers { layer.kernel?.computesDenseGradient = true }
        model.zeroGradients()
        let order = loader.shuffledOrder(&rng)
        for b in 0..<min(batches, loader.batchesPerEpoch) {
            let batch = loader.batch(b, of: order, augmentWith: &rng)
            let result = loss.evaluate(logits: model.forward(batch.images, training: true), labels: batch.labels)
            _ = model.backward(result.gradient)
        }
        let gradients = sparse.layers.map { $0.parameter.gradient.storage }
        model.zeroGradients()
        for (buffer, value) in buffers { buffer.value = value }
        sparse.selectInitialMasks(gradients: gradients, rng: &sparsityRNG)
    }

    /// Throws `TrainingDiverged` naming the first parameter or buffer that holds a value
    /// that is not a finite number (checked before a checkpoint is written).
    public func checkFinite() throws {
        for (name, p) in model.namedParameters() where !p.value.storage.allSatisfy(\.isFinite) {
            throw TrainingDiverged(step: step, reason: "parameter \(name) holds values that are not finite numbers")
        }
        for (name, b) in model.namedBuffers() where !b.value.storage.allSatisfy(\.isFinite) {
            throw TrainingDiverged(step: step, reason: "buffer \(name) holds values that are not finite numbers")
        }
    }

    /// Loss and accuracy of the model in evaluation mode over all of `loader`;
    /// `logits` receives each batch's `[n, classes]` output.
    public func evaluate(_ loader: BatchLoader, logits: (Tensor) -> Void = { _ in }) -> PassResult {
        var lossSum = 0.0, correct = 0, seen = 0
        for b in 0..<loader.batchesPerEpoch {
            let batch = loader.evaluationBatch(b)
            let output = model.forward(batch.images, training: false)
            logits(output)
            let r = loss.evaluate(logits: output, labels: batch.labels)
            lossSum += Double(r.loss) * Double(batch.labels.count)
            correct += r.correct
            seen += batch.labels.count
        }
        return PassResult(loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                          samples: seen)
    }
}
