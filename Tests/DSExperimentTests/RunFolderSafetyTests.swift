import DSData
import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// Run folders are never lost, shared or mixed: one process per folder, `--force`
/// replaces only a run that is ready to start, a resume continues only the run its
/// checkpoint belongs to, and a diverging run stops and says so.
@Suite(.serialized) struct RunFolderSafetyTests {
    func yaml(root: String, name: String = "run", epochs: Int = 2, extra: String = "") -> String {
        """
        name: \(name)
        seed: 2
        data: {dataset: fashion-mnist, root: \(root)/data}
        model: {name: mlp, hidden: [16]}
        optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
        training: {epochs: \(epochs), batch_size: 16, threads: 1}
        output: {root: \(root)/results}
        sparsity: {strategy: rigl, sparsity: 0.5, distribution: uniform, update_interval: 3}
        \(extra)
        """
    }

    func setUp(_ label: String) throws -> (root: String, config: String) {
        let root = Fixtures.temporaryDirectory(label)
        Fixtures.writeIDXDataset(root: root + "/data", train: 64, test: 16)
        let config = root + "/run.yaml"
        try yaml(root: root).write(toFile: config, atomically: true, encoding: .utf8)
        return (root, config)
    }

    /// Every file of a folder with its bytes.
    func snapshot(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            files[name] = FileManager.default.contents(atPath: folder + "/" + name)
        }
        return files
    }

    @Test func aFolderClaimedByAnotherProcessIsRefusedWithItsProcessID() throws {
        guard DSTProcess.isBuilt else { Issue.record("dst not built at \(DSTProcess.path)"); return }
        let (root, config) = try setUp("claim")
        let claim = try RunFolderClaim(folder: root + "/results/run")
        let refused = try DSTProcess.run(["run", config])
        #expect(refused.status == 5)
        #expect(refused.stderr.contains("results/run is in use by process \(getpid())"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/results/run"))
        // A second claim from this process (another open file) is refused as well.
        #expect(throws: RunFolderBusy.self) { _ = try RunFolderClaim(folder: root + "/results/run") }
        claim.release()

        // A holder killed mid-run leaves no stale claim: the next resume proceeds.
        #expect(try DSTProcess.run(["run", config, "--kill-after-steps", "5"]).signalled)
        #expect(try DSTProcess.run(["resume", root + "/results/run"]).status == 0)
    }

    @Test func twoRunsStartedTogetherNeverShareAFolder() throws {
        guard DSTProcess.isBuilt else { return }
        let (root, config) = try setUp("together")
        let a = try DSTProcess.start(["run", config, "--set", "seed=1"])
        let b = try DSTProcess.start(["run", config, "--set", "seed=2"])
        a.process.waitUntilExit()
        b.process.waitUntilExit()
        let statuses = [a.process.terminationStatus, b.process.terminationStatus]
        #expect(statuses.filter { $0 == 0 }.count == 1, "exit statuses \(statuses)")
        let winner = statuses[0] == 0 ? "1" : "2"
        let saved = try ConfigLoader.load(file: root + "/results/run/config.yaml")
        #expect(String(saved.seed) == winner)
        let checkpoint = try String(decoding: Data(contentsOf: URL(fileURLWithPath: root + "/results/run/checkpoint.bin")),
                                    as: UTF8.self)
        #expect(checkpoint.contains("seed: \(winner)\\n"), "the checkpoint belongs to the run whose config was kept")
    }

    @Test func forceKeepsTheOldRunByteForByteWhenTheNewOneCannotStart() throws {
        let (root, _) = try setUp("force")
        let good = try ConfigLoader.load(yaml: yaml(root: root))
        try ExperimentRun(config: good).run()
        let folder = root + "/results/run"
        let before = try snapshot(folder)
        #expect(before.keys.sorted() == ["checkpoint.bin", "config.yaml", "environment.json", "metrics.csv", "sparsity.csv"])

        var badLayer = good
        badLayer.sparsity.denseLayers = ["fc9"]
        var badValidation = good
        badValidation.data.validationSize = 64
        // A dataset whose training images stop short of what their header promises.
        let truncatedRoot = root + "/truncated"
        Fixtures.writeIDXDataset(root: truncatedRoot, train: 64, test: 16)
        let images = truncatedRoot + "/fashion-mnist/train-images-idx3-ubyte.gz"
        let bytes = try FileReading.contents(of: images)
        _ = FileManager.default.createFile(atPath: images, contents: Data(FileReading.gzip(Array(bytes.dropLast(100)))))
        var truncated = good
        truncated.data.root = truncatedRoot
        for bad in [badLayer, badValidation, truncated] {
            #expect(throws: (any Error).self) { try ExperimentRun(config: bad).run(force: true) }
            #expect(try snapshot(folder) == before)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root + "/results").filter { $0 != ".run.lock" }
        #expect(leftovers == ["run"], "no staging folders left behind: \(leftovers)")

        var other = good
        other.seed = 9
        try ExperimentRun(config: other).run(force: true)
        #expect(try ConfigLoader.load(file: folder + "/config.yaml").seed == 9)
    }

    @Test func resumeRefusesAConfigEditedSinceTheRunBeganAndACopiedCheckpoint() throws {
        guard DSTProcess.isBuilt else { return }
        let (root, config) = try setUp("edited")
        #expect(try DSTProcess.run(["run", config, "--kill-after-steps", "6"]).signalled)
        let folder = root + "/results/run"
        let savedConfig = try String(contentsOfFile: folder + "/config.yaml", encoding: .utf8)
        try savedConfig.replacingOccurrences(of: "lr: 0.1", with: "lr: 0.3")
            .write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        let viaFolder = try DSTProcess.run(["resume", folder])
        #expect(viaFolder.status == 1 && viaFolder.stderr.contains("optimizer.lr: 0.1 → 0.3"), "\(viaFolder.stderr)")
        let viaConfig = try DSTProcess.run(["run", config, "--resume", "--set", "seed=7"])
        #expect(viaConfig.status == 1 && viaConfig.stderr.contains("seed: 2 → 7"), "\(viaConfig.stderr)")
        try savedConfig.write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)

        // Another run's checkpoint copied into this folder.
        try yaml(root: root, name: "other").write(toFile: root + "/other.yaml", atomically: true, encoding: .utf8)
        #expect(try DSTProcess.run(["run", root + "/other.yaml", "--kill-after-steps", "6"]).signalled)
        let own = FileManager.default.contents(atPath: folder + "/checkpoint.bin")
        try FileManager.default.removeItem(atPath: folder + "/checkpoint.bin")
        try FileManager.default.copyItem(atPath: root + "/results/other/checkpoint.bin", toPath: folder + "/checkpoint.bin")
        let copied = try DSTProcess.run(["resume", folder])
        #expect(copied.status == 1 && copied.stderr.contains("name: other → run"), "\(copied.stderr)")
        _ = FileManager.default.createFile(atPath: folder + "/checkpoint.bin", contents: own)
        #expect(try DSTProcess.run(["resume", folder]).status == 0)
    }

    @Test func aRunFolderThatCannotBeWrittenIsRefusedBeforeAnyTraining() throws {
        guard DSTProcess.isBuilt else { return }
        let (root, config) = try setUp("readonly")
        #expect(try DSTProcess.run(["run", config, "--kill-after-steps", "6"]).signalled)
        let folder = root + "/results/run"
        let before = try snapshot(folder)
        #expect(chmod(folder, 0o555) == 0 && chmod(root + "/results", 0o777) == 0)
        defer { _ = chmod(folder, 0o755) }
        // Root writes anywhere, so the resume runs as `nobody` there.
        let arguments = ["resume", folder]
        let result = getuid() == 0
            ? try DSTProcess.run(arguments, as: "nobody")
            : try DSTProcess.run(arguments)
        #expect(result.status == 1 && result.stderr.contains("\(folder): cannot write into the run folder"), "\(result.stderr)")
        #expect(try snapshot(folder) == before)
    }

    @Test func resumeRefusesTablesDeletedOrTruncatedSinceTheCheckpoint() throws {
        let (root, _) = try setUp("tables")
        var cfg = try ConfigLoader.load(yaml: yaml(root: root))
        cfg.training.epochs = 1
        try ExperimentRun(config: cfg).run()
        let folder = root + "/results/run"
        let metrics = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8)
        let sparsity = try String(contentsOfFile: folder + "/sparsity.csv", encoding: .utf8)

        try FileManager.default.removeItem(atPath: folder + "/metrics.csv")
        do {
            try ExperimentRun(config: cfg).run(resume: true)
            Issue.record("a deleted metrics.csv was not noticed")
        } catch let e as RunError {
            #expect(e.message.contains("metrics.csv is missing") && e.message.contains("1 row"))
        }
        try metrics.write(toFile: folder + "/metrics.csv", atomically: true, encoding: .utf8)
        let cut = sparsity.split(separator: "\n").dropLast(2).joined(separator: "\n") + "\n"
        try cut.write(toFile: folder + "/sparsity.csv", atomically: true, encoding: .utf8)
        do {
            try ExperimentRun(config: cfg).run(resume: true)
            Issue.record("a truncated sparsity.csv was not noticed")
        } catch let e as RunError {
            #expect(e.message.contains("sparsity.csv holds"))
        }
        #expect(try String(contentsOfFile: folder + "/sparsity.csv", encoding: .utf8) == cut, "left as found")
        #expect(EnvironmentRecord.read(folder).map(\.event) == ["start"], "refused resumes are not recorded")
    }

    @Test func aDivergingRunStopsKeepsItsLastGoodEpochAndIsListedApart() throws {
        guard DSTProcess.isBuilt else { return }
        let root = Fixtures.temporaryDirectory("diverge")
        Fixtures.writeIDXDataset(root: root + "/data", train: 64, test: 16)
        // The learning rate jumps by 10⁷ after epoch 1.
        let config = root + "/run.yaml"
        try yaml(root: root, epochs: 4, extra: "schedule: {name: multistep, milestones: [1], gamma: 1.0e+7}")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let result = try DSTProcess.run(["run", config])
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("training diverged at step"))
        let folder = root + "/results/run"
        #expect(FileManager.default.fileExists(atPath: folder + "/" + ExperimentRun.divergedFileName))
        let rows = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 2 && !rows[1].lowercased().contains("nan"), "only epoch 1, finite: \(rows)")
        let trained = try TrainedRun(folder: folder)
        #expect(trained.model.namedParameters().allSatisfy { $0.parameter.value.storage.allSatisfy(\.isFinite) })

        let summary = try RunComparison.read(folder)
        #expect(summary.diverged != nil && !summary.finished)
        let table = RunComparison.markdown([summary])
        #expect(table.contains("Diverged (not averaged in):") && table.contains(folder))
        #expect(RunComparison.groups([summary]).isEmpty)
    }
}
