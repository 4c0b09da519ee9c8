import DSCore
import DSData
import DSLayers
import DSSparsity
import Foundation

/// A finished (or checkpointed) run loaded back: its model with the trained weights
/// and masks, and its test split.
public struct TrainedRun {
    public let folder: String
    public let config: ExperimentConfig
    public let model: Sequential
    public let sparse: SparseModel
    public let test: BatchLoader
    let trainer: Trainer
    let meanStd: (mean: [Float], std: [Float])

    /// Loads `folder/config.yaml` and `folder/checkpoint.bin`.
    public init(folder: String) throws {
        self.folder = folder
        config = try ConfigLoader.loadRunConfig(folder: folder)
        let checkpointPath = folder + "/" + Checkpoint.fileName
        guard FileManager.default.fileExists(atPath: checkpointPath) else {
            throw RunError("\(folder): no \(Checkpoint.fileName); train the run first")
        }
        let checkpoint = try Checkpoint.read(checkpointPath)
        let splits = try DatasetCatalog.load(config.data.dataset, root: config.data.root)
        var session = try ExperimentRun(config: config, folder: folder).prepare(splits)
        try checkpoint.restore(into: session.trainer, sparse: session.sparse, dataRNG: &session.dataRNG,
                               sparsityRNG: &session.sparsityRNG, source: checkpointPath)
        trainer = session.trainer
        model = session.trainer.model
        sparse = session.sparse
        test = session.testLoader
        meanStd = (splits.mean, splits.std)
    }

    /// Test loss and accuracy, and the logits of every test sample (`[N, classes]`).
    public func evaluate() -> (result: PassResult, logits: [Float]) {
        Parallel.withThreads(config.training.threads) {
            var logits: [Float] = []
            let result = trainer.evaluate(test) { logits += $0.storage }
            return (result, logits)
        }
    }

    /// Median seconds of one forward pass at batch 1 over the first `samples` test
    /// images (after a warm-up pass).
    public func batchOneLatency(samples: Int) -> Double {
        Parallel.withThreads(config.training.threads) {
            let one = BatchLoader(dataset: test.dataset, indices: Array(test.indices.prefix(max(samples, 1))),
                                  batchSize: 1, mean: meanStd.mean, std: meanStd.std)
            _ = model.forward(one.evaluationBatch(0).images, training: false)
            var times: [Double] = []
            for b in 0..<one.batchesPerEpoch {
                let x = one.evaluationBatch(b).images
                let t = Date()
                _ = model.forward(x, training: false)
                times.append(Date().timeIntervalSince(t))
            }
            return times.sorted()[times.count / 2]
        }
    }
}
