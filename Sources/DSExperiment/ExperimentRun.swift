import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining
import Foundation

/// A problem with a run folder or a run's inputs.
public struct RunError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A run stopped because training diverged (the CLI exits with code 4).
public struct RunDiverged: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// What a run reports while it trains (the CLI renders it).
public enum RunEvent {
    case started(folder: String, parameters: Int, trainSamples: Int, testSamples: Int)
    /// Once, after `started`: which kernel each masked layer trains through.
    case kernels([KernelChoice])
    /// After a mask update that moved layers between the dense and the sparse kernel
    /// (`sparse_kernels: auto` with gradual pruning): the step and the new choices.
    case kernelSwitch(step: Int, [KernelChoice])
    /// Within an epoch, after every batch.
    case batch(BatchProgress)
    /// After an epoch: the row written to `metrics.csv`.
    case epoch(epoch: Int, epochs: Int, row: [String: String])
}

/// Where a run is within an epoch.
public struct BatchProgress {
    public var epoch: Int, epochs: Int
    /// Batches done of this epoch's total.
    public var done: Int, total: Int
    /// Optimizer steps taken since the run began.
    public var step: Int
    /// Running averages over the epoch so far.
    public var loss: Double, accuracy: Double
    /// Realised sparsity (as of the last mask update).
    public var sparsity: Double
    /// Seconds since the epoch began.
    public var elapsed: Double
}

/// One experiment: trains the configured model and writes its run folder
/// (`config.yaml`, `metrics.csv`).
public struct ExperimentRun {
    /// `metrics.csv` columns (docs/algorithms.md §5, then the validation split's columns).
    public static let metricColumns = [
        "epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
        "sparsity", "active_neurons", "ablated_neurons", "itop", "mask_overlap", "epoch_seconds", "val_loss", "val_acc",
    ]

    public let config: ExperimentConfig
    /// The run folder, `<output.root>/<name>`.
    public let folder: String
    /// The config file, as errors name it.
    public let source: String

    public init(config: ExperimentConfig, folder: String? = nil, source: String = "config") {
        self.config = config
        self.folder = folder ?? (config.output.root as NSString).appendingPathComponent(config.name)
        self.source = source
    }

    /// Marker file of a run stopped by divergence; it holds the reason.
    public static let divergedFileName = "diverged.txt"

    /// Trains the run into its folder.
    ///
    /// The folder is claimed first (`RunFolderClaim`: one process per folder). A new
    /// run refuses an existing folder unless `force`; with `resume`, an existing folder
    /// continues from its last checkpoint (or from the start when none was written yet)
    /// if the checkpoint was made with this very config. Everything that can fail
    /// before training (config, data, model, sparse layers) is checked before the
    /// folder is touched; a forced run replaces the old folder only then, by rename.
    public func run(force: Bool = false, resume: Bool = false, events: (RunEvent) -> Void = { _ in }) throws {
        let fm = FileManager.default
        let rendered = ConfigLoader.render(config)
        let claim = try RunFolderClaim(folder: folder)
        defer { claim.release() }
        let exists = fm.fileExists(atPath: folder)
        var checkpoint: Checkpoint?
        if exists {
            if resume {
                try RunFolderSetup.checkWritable(folder)
                let path = folder + "/" + Checkpoint.fileName
                if fm.fileExists(atPath: path) {
                    let saved = try Checkpoint.read(path)
                    try saved.checkConfig(rendered, source: folder)
                    checkpoint = saved
                } else if let saved = try? String(contentsOfFile: folder + "/config.yaml", encoding: .utf8), saved != rendered {
                    throw ConfigLoader.resumeRefusal(saved: saved, current: rendered, source: folder, madeBy: "the run")
                }
            } else if !force {
                throw RunError("\(folder) already exists; choose another name (--set name=...), pass --resume to continue it, or --force to replace it")
            }
        }
        try RunPreflight.check(config, source: source)
        let splits = try DatasetCatalog.load(config.data.dataset, root: config.data.root)
        var session = try prepare(splits)
        let threads = config.training.threads > 0 ? config.training.threads : Parallel.processors
        if let checkpoint {
            try checkpoint.restore(into: session.trainer, sparse: session.sparse, dataRNG: &session.dataRNG,
                                   sparsityRNG: &session.sparsityRNG, source: folder + "/" + Checkpoint.fileName)
        } else {
            let environment = EnvironmentRecord.current(event: "start", threads: threads)
            try RunFolderSetup.create(folder, replacing: exists) { staging in
                try FileReading.writeAtomically(Data(rendered.utf8), to: staging + "/config.yaml")
                try environment.append(to: staging)
            }
        }
        do {
            try Parallel.withThreads(config.training.threads) {
                try train(&session, from: checkpoint, config: rendered, threads: threads, events: events)
            }
        } catch let error as TrainingDiverged {
            let kept = fm.fileExists(atPath: folder + "/" + Checkpoint.fileName)
                ? "the checkpoint and CSV rows of the last finished epoch are kept" : "no epoch had finished"
            let message = "\(folder): \(error); the run stopped (\(kept)); lower optimizer.lr or check the data"
            try? FileReading.writeAtomically(Data((error.description + "\n").utf8), to: folder + "/" + Self.divergedFileName)
            throw RunDiverged(message: message)
        }
        try? fm.removeItem(atPath: folder + "/" + Self.divergedFileName)
    }

    /// Everything a run needs, built before its folder exists (so a bad layer name or
    /// an impossible sparsity leaves nothing behind).
    struct Session {
        var trainer: Trainer
        var sparse: SparseModel
        var trainLoader: BatchLoader
        var testLoader: BatchLoader
        var validation: BatchLoader?
        var dataRNG: Xoshiro256
        var sparsityRNG: Xoshiro256
        var parameterCount: Int
    }

    func prepare(_ splits: DatasetSplits) throws -> Session {
        var master = Xoshiro256(seed: config.seed)
        var modelRNG = master.split()
        let dataRNG = master.split()
        var sparsityRNG = master.split()

        let model = try ModelRegistry.build(config.model.name, input: config.modelInput(splits),
                                            options: config.modelOptions, rng: &modelRNG)
        let parameters = model.namedParameters().map(\.parameter)

        var trainIndices: [Int]? = nil, validation: BatchLoader? = nil
        if config.data.validationSize > 0 {
            let split = splits.train.validationSplit(size: config.data.validationSize, seed: config.seed)
            trainIndices = split.train
            validation = BatchLoader(dataset: splits.train, indices: split.validation,
                                     batchSize: config.training.evalBatchSize, mean: splits.mean, std: splits.std)
        }
        let augmentation = Augmentation(cropPadding: config.data.augmentation.randomCropPadding,
                                        horizontalFlip: config.data.augmentation.horizontalFlip)
        let trainLoader = BatchLoader(dataset: splits.train, indices: trainIndices, batchSize: config.training.batchSize,
                                      mean: splits.mean, std: splits.std, augmentation: augmentation)
        let testLoader = BatchLoader(dataset: splits.test, batchSize: config.training.evalBatchSize,
                                     mean: splits.mean, std: splits.std)
        let maxBatches = config.training.maxBatchesPerEpoch
        let stepsPerEpoch = maxBatches > 0 ? min(maxBatches, trainLoader.batchesPerEpoch) : trainLoader.batchesPerEpoch
        let sparse = try config.makeSparseModel(model, parameters: parameters,
                                                totalSteps: stepsPerEpoch * config.training.epochs,
                                                input: config.modelInput(splits), rng: &sparsityRNG)
        let trainer = Trainer(model: model, optimizer: config.makeOptimizer(parameters),
                              loss: CrossEntropy(labelSmoothing: Float(config.training.labelSmoothing)),
                              schedule: config.makeSchedule(stepsPerEpoch: stepsPerEpoch), sparse: sparse)
        trainer.gradientClipNorm = Float(config.optimizer.gradClipNorm)
        let scoringBatches = sparse.settings.strategy.initialScoringBatches
        if scoringBatches > 0 {
            var scoringRNG = master.split()
            trainer.scoreInitialMasks(trainLoader, batches: scoringBatches, rng: &scoringRNG, sparsityRNG: &sparsityRNG)
        }
        return Session(trainer: trainer, sparse: sparse, trainLoader: trainLoader, testLoader: testLoader,
                       validation: validation, dataRNG: dataRNG, sparsityRNG: sparsityRNG,
                       parameterCount: parameters.reduce(0) { $0 + $1.value.count })
    }

    /// `sparsity.csv` columns (docs/algorithms.md §5).
    public static let layerColumns = [
        "step", "layer", "n_out", "fan_in_dense", "density", "nnz", "fan_in_min", "fan_in_max", "fan_in_mean",
        "active_neurons", "ablated_neurons", "dropped", "grown", "drop_fraction", "structure", "mask_overlap",
    ]

    func layerRow(_ s: LayerStatistics, step: Int) -> [String: String] {
        ["step": String(step), "layer": s.layer, "n_out": String(s.outputs), "fan_in_dense": String(s.denseFanIn),
         "density": format(s.density), "nnz": String(s.nonzero), "fan_in_min": String(s.fanInMin),
         "fan_in_max": String(s.fanInMax), "fan_in_mean": format(s.fanInMean),
         "active_neurons": String(s.activeNeurons), "ablated_neurons": String(s.ablatedNeurons),
         "dropped": String(s.dropped), "grown": String(s.grown), "drop_fraction": format(s.dropFraction),
         "structure": s.structure, "mask_overlap": s.maskOverlap.map { format($0) } ?? ""]
    }

    /// Trains from the epoch after `checkpoint` (or from the start), appending to the
    /// CSV files and writing a checkpoint after every epoch; a resume adds its entry to
    /// `environment.json` (with `threads`).
    func train(_ session: inout Session, from checkpoint: Checkpoint?, config rendered: String, threads: Int,
               events: (RunEvent) -> Void) throws {
        let trainer = session.trainer
        events(.started(folder: folder, parameters: session.parameterCount,
                        trainSamples: session.trainLoader.count, testSamples: session.testLoader.count))
        if !session.sparse.kernelChoices.isEmpty { events(.kernels(session.sparse.kernelChoices)) }
        var layerTable: CSVTable
        var metrics: CSVTable
        if let checkpoint {
            // Rows written after the checkpoint (an epoch cut short) are dropped.
            layerTable = try CSVTable(resuming: folder + "/sparsity.csv", columns: Self.layerColumns,
                                      expectedRows: checkpoint.header.sparsityRows ?? session.sparse.layers.count) {
                (Int($0["step"] ?? "") ?? .max) <= checkpoint.step
            }
            metrics = try CSVTable(resuming: folder + "/metrics.csv", columns: Self.metricColumns,
                                   expectedRows: checkpoint.header.metricsRows ?? checkpoint.epoch) {
                (Int($0["epoch"] ?? "") ?? .max) <= checkpoint.epoch
            }
            // Recorded once the tables are known to be whole: this resume will run.
            try EnvironmentRecord.current(event: "resume", threads: threads).append(to: folder)
        } else {
            layerTable = CSVTable(path: folder + "/sparsity.csv", columns: Self.layerColumns)
            for layer in session.sparse.layers {
                try layerTable.append(layerRow(LayerStatistics(layer, structure: session.sparse.settings.strategy.structure), step: 0))
            }
            metrics = CSVTable(path: folder + "/metrics.csv", columns: Self.metricColumns)
            try metrics.write()
        }
        let epochs = config.training.epochs
        var pendingError: Error?
        var sparsity = SparsityStatistics(session.sparse).sparsity
        for epoch in ((checkpoint?.epoch ?? 0) + 1)..<(epochs + 1) {
            let start = Date()
            var overlaps: [Double] = []
            let train = try trainer.trainEpoch(session.trainLoader, rng: &session.dataRNG, sparsityRNG: &session.sparsityRNG,
                                           maxBatches: config.training.maxBatchesPerEpoch,
                                           onMaskUpdate: { step, updates in
                sparsity = SparsityStatistics(session.sparse).sparsity
                overlaps.append(SparsityStatistics.maskOverlap(updates))
                if !session.sparse.lastKernelSwitches.isEmpty { events(.kernelSwitch(step: step, session.sparse.lastKernelSwitches)) }
                for u in updates {
                    do {
                        try layerTable.append(layerRow(LayerStatistics(u.layer, structure: session.sparse.settings.strategy.structure,
                                                                       change: u.change, dropFraction: u.dropFraction),
                                                       step: step))
                    } catch { pendingError = error }
                }
            }) { done, total, loss, acc in
                events(.batch(BatchProgress(epoch: epoch, epochs: epochs, done: done, total: total, step: trainer.step,
                                            loss: loss, accuracy: acc, sparsity: sparsity,
                                            elapsed: Date().timeIntervalSince(start))))
            }
            if let pendingError { throw pendingError }
            let lastLR = trainer.schedule.learningRate(atStep: max(trainer.step - 1, 0))
            try trainer.checkFinite()
            let test = trainer.evaluate(session.testLoader)
            let val = session.validation.map { trainer.evaluate($0) }
            guard test.loss.isFinite else {
                throw TrainingDiverged(step: trainer.step, reason: "the test loss is \(test.loss)")
            }
            let stats = SparsityStatistics(session.sparse)
            var row: [String: String] = [
                "epoch": String(epoch), "step": String(trainer.step), "lr": format(lastLR, 6),
                "train_loss": format(train.loss), "train_acc": format(train.accuracy),
                "test_loss": format(test.loss), "test_acc": format(test.accuracy),
                "sparsity": format(stats.sparsity), "active_neurons": String(stats.activeNeurons),
                "ablated_neurons": String(stats.ablatedNeurons), "itop": format(stats.itop),
                "mask_overlap": overlaps.isEmpty ? "" : format(overlaps.reduce(0, +) / Double(overlaps.count)),
                "epoch_seconds": String(format: "%.3f", Date().timeIntervalSince(start)),
            ]
            if let val {
                row["val_loss"] = format(val.loss)
                row["val_acc"] = format(val.accuracy)
            }
            try metrics.append(row)
            try Checkpoint.capture(epoch: epoch, config: rendered, trainer: trainer, sparse: session.sparse,
                                   dataRNG: session.dataRNG, sparsityRNG: session.sparsityRNG,
                                   tableRows: (metrics.rows.count, layerTable.rows.count)).write(to: folder)
            events(.epoch(epoch: epoch, epochs: epochs, row: row))
        }
    }

    func format(_ x: Double, _ digits: Int = 6) -> String {
        String(format: "%.\(digits)g", x)
    }
}
