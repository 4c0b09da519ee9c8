import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// End-to-end runs on a tiny generated dataset.
@Suite struct RunTests {
    func config(root: String, name: String = "tiny", model: String = "mlp") throws -> ExperimentConfig {
        try ConfigLoader.load(yaml: """
            name: \(name)
            seed: 3
            data: {dataset: fashion-mnist, root: \(root)/data, validation_size: 8}
            model: {name: \(model), hidden: [16]}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            schedule: {name: cosine, warmup_epochs: 0.5}
            training: {epochs: 3, batch_size: 16, threads: 1}
            output: {root: \(root)/results}
            """)
    }

    func readCSV(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
    }

    @Test func runWritesConfigAndOneMetricsRowPerEpoch() throws {
        let root = Fixtures.temporaryDirectory("run")
        Fixtures.writeIDXDataset(root: root + "/data", train: 96, test: 32)
        let cfg = try config(root: root)
        try ExperimentRun(config: cfg).run()
        let folder = root + "/results/tiny"
        #expect(try ConfigLoader.load(file: folder + "/config.yaml") == cfg)
        let header = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8).split(separator: "\n")[0]
        #expect(header == ExperimentRun.metricColumns.joined(separator: ","))
        let rows = try readCSV(folder + "/metrics.csv")
        #expect(rows.map { $0["epoch"] } == ["1", "2", "3"])
        #expect(rows.map { $0["step"] } == ["6", "12", "18"])   // 88 training samples / 16 → 6 batches
        #expect(rows.allSatisfy { $0["sparsity"] == "0" && $0["active_neurons"] == "26" && $0["val_acc"] != "" })
        let acc = rows.compactMap { Double($0["test_acc"]!) }
        #expect(acc.last! > 0.6, "the band task is easy: test accuracy \(acc)")
    }

    @Test func sameConfigAndSeedGiveIdenticalMetrics() throws {
        let root = Fixtures.temporaryDirectory("repro")
        Fixtures.writeIDXDataset(root: root + "/data", train: 64, test: 16, size: 12)
        for name in ["a", "b"] {
            var cfg = try config(root: root, name: name, model: "lenet5")
            cfg.data.augmentation.randomCropPadding = 1
            cfg.data.augmentation.horizontalFlip = true
            cfg.model.dropout = 0.2
            cfg.training.epochs = 2
            cfg.training.threads = 2
            try ExperimentRun(config: cfg).run()
        }
        let strip = { (rows: [[String: String]]) in rows.map { $0.filter { $0.key != "epoch_seconds" } } }
        let a = try readCSV(root + "/results/a/metrics.csv"), b = try readCSV(root + "/results/b/metrics.csv")
        #expect(strip(a) == strip(b))
    }

    @Test func existingRunFolderIsRefusedUnlessForced() throws {
        let root = Fixtures.temporaryDirectory("exists")
        Fixtures.writeIDXDataset(root: root + "/data", train: 32, test: 16)
        var cfg = try config(root: root)
        cfg.data.validationSize = 0
        cfg.training.epochs = 1
        try ExperimentRun(config: cfg).run()
        do {
            try ExperimentRun(config: cfg).run()
            Issue.record("an existing run folder was reused")
        } catch let e as RunError {
            #expect(e.message.contains("already exists") && e.message.contains("--force"))
        }
        try ExperimentRun(config: cfg).run(force: true)
        #expect(try readCSV(root + "/results/tiny/metrics.csv").count == 1)
    }

    @Test func sriglRunWritesLayerStatisticsAtInitAndEveryUpdate() throws {
        let root = Fixtures.temporaryDirectory("srigl")
        Fixtures.writeIDXDataset(root: root + "/data", train: 96, test: 32)
        var cfg = try config(root: root, name: "srigl")
        cfg.data.validationSize = 0
        cfg.model.hidden = [32]
        cfg.sparsity.strategy = "srigl"
        cfg.sparsity.sparsity = 0.9
        cfg.sparsity.distribution = "uniform"
        cfg.sparsity.updateInterval = 4
        cfg.sparsity.options.srigl.gammaSal = 0.9
        try ExperimentRun(config: cfg).run()
        let layers = try readCSV(root + "/results/srigl/sparsity.csv")
        // 18 steps, T_end = floor(0.75 · 18) = 13: updates after steps 4, 8, 12.
        #expect(Set(layers.map { $0["step"]! }) == ["0", "4", "8", "12"])
        #expect(Set(layers.map { $0["layer"]! }) == ["fc1", "fc2"])
        for row in layers where row["layer"] == "fc1" {
            #expect(row["fan_in_min"] == row["fan_in_max"], "constant fan-in: \(row)")
            let active = Int(row["active_neurons"]!)!, fanIn = Int(row["fan_in_min"]!)!
            #expect(active * fanIn == Int(row["nnz"]!)!)
            #expect(active + Int(row["ablated_neurons"]!)! == 32)
        }
        // The first update drops f(4)·nnz weights in each layer and regrows as many.
        #expect(layers.filter { $0["step"] == "4" }.allSatisfy { Int($0["dropped"]!)! > 0 && $0["dropped"] == $0["grown"] })
        let metrics = try readCSV(root + "/results/srigl/metrics.csv")
        #expect(metrics.allSatisfy { Double($0["sparsity"]!)! >= 0.9 && Double($0["itop"]!)! > 0.1 })
    }

    @Test func badSparsityLayerNamesLeaveNoRunFolder() throws {
        let root = Fixtures.temporaryDirectory("badlayer")
        Fixtures.writeIDXDataset(root: root + "/data", train: 32, test: 16)
        var cfg = try config(root: root)
        cfg.sparsity.strategy = "rigl"
        cfg.sparsity.denseLayers = ["fc9"]
        do {
            try ExperimentRun(config: cfg).run()
            Issue.record("an unknown layer was accepted")
        } catch let e as ConfigError {
            #expect(e.problems.contains { $0.contains("sparsity.dense_layers") && $0.contains("fc9") && $0.contains("fc1, fc2") })
        }
        cfg.sparsity.denseLayers = []
        cfg.sparsity.strategy = "srigl"
        cfg.sparsity.sparsity = 0.99
        do {
            try ExperimentRun(config: cfg).run()
            Issue.record("fan-in 0 was accepted")
        } catch let e as ConfigError {
            #expect(e.problems.contains { $0.hasPrefix("sparsity.sparsity:") && $0.contains("fc1") && $0.contains("fan-in 0") })
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/results/tiny"))
    }

    @Test func missingDatasetLeavesNoRunFolder() throws {
        let root = Fixtures.temporaryDirectory("nodata")
        var cfg = try config(root: root)
        cfg.data.dataset = "mnist"
        #expect(throws: (any Error).self) { try ExperimentRun(config: cfg).run() }
        #expect(!FileManager.default.fileExists(atPath: root + "/results/tiny"))
    }
}
