import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// `dst compare` on hand-made run folders.
@Suite struct RunComparisonTests {
    /// Writes a run folder with the given config overrides and metrics rows.
    func makeRun(_ root: String, _ name: String, strategy: String, sparsity: Double, seed: Int, epochs: Int,
                 header: String = "epoch,step,lr,train_loss,train_acc,test_loss,test_acc,sparsity,active_neurons,ablated_neurons,itop,epoch_seconds,val_loss,val_acc",
                 rows: [String]) throws -> String {
        var config = try ConfigLoader.load(yaml: "{}")
        config.name = name
        config.seed = UInt64(seed)
        config.sparsity.strategy = strategy
        config.sparsity.sparsity = sparsity
        config.training.epochs = epochs
        let folder = root + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try ConfigLoader.render(config).write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        try ([header] + rows).joined(separator: "\n").appending("\n")
            .write(toFile: folder + "/metrics.csv", atomically: true, encoding: .utf8)
        return folder
    }

    @Test func aggregatesSeedsAndListsUnfinishedRunsSeparately() throws {
        let root = Fixtures.temporaryDirectory("compare")
        let a = try makeRun(root, "rigl-s0", strategy: "rigl", sparsity: 0.9, seed: 0, epochs: 2,
                            rows: ["1,10,0.1,1,0.5,1,0.70,0.9,30,0,0.2,60,,", "2,20,0.1,1,0.6,1,0.80,0.9,30,0,0.3,60,,"])
        let b = try makeRun(root, "rigl-s1", strategy: "rigl", sparsity: 0.9, seed: 1, epochs: 2,
                            rows: ["1,10,0.1,1,0.5,1,0.84,0.9,30,2,0.2,60,,", "2,20,0.1,1,0.6,1,0.82,0.9,30,2,0.3,120,,"])
        let unfinished = try makeRun(root, "rigl-s2", strategy: "rigl", sparsity: 0.9, seed: 2, epochs: 2,
                                     rows: ["1,10,0.1,1,0.5,1,0.99,0.9,30,0,0.2,60,,"])
        let dense = try makeRun(root, "dense", strategy: "dense", sparsity: 0.9, seed: 0, epochs: 1,
                                header: "epoch,step,test_acc,epoch_seconds", rows: ["1,10,0.9,30"])
        let started = try makeRun(root, "rigl-s3", strategy: "rigl", sparsity: 0.9, seed: 3, epochs: 2, rows: [])
        try FileManager.default.removeItem(atPath: started + "/metrics.csv")   // killed before its first epoch
        let runs = try [a, b, unfinished, dense, started].map(RunComparison.read)
        #expect(runs.map(\.finished) == [true, true, false, true, false])

        let groups = RunComparison.groups(runs)
        #expect(groups.map(\.strategy) == ["dense", "rigl"])
        #expect(groups[1].runs.count == 2, "the unfinished run is not averaged in")

        let table = RunComparison.markdown(runs)
        // Final accuracies 0.80 and 0.82: mean 81.00, sample std 1.41; best 0.80 and 0.84.
        // Wall times 2 and 3 minutes: mean 2.5.
        #expect(table.contains("| rigl | 0.90 | 81.00 ± 1.41 | 82.00 ± 2.83 | 2 | 0.9000 | 1.0 | 2.5 |"))
        // A run without the sparsity columns still compares; the missing figures read n/a.
        #expect(table.contains("| dense | 0.00 | 90.00 ± 0.00 | 90.00 ± 0.00 | 1 | n/a | n/a | 0.5 |"))
        #expect(table.contains("Not finished") && table.contains("rigl-s2: 1/2 epochs") && table.contains("rigl-s3: 0/2 epochs"))
        #expect(!table.contains("99.00"))

        let csv = RunComparison.csv(runs).split(separator: "\n")
        #expect(csv.count == 3)
        #expect(csv[2].hasPrefix("mlp,fashion-mnist,rigl,0.9,0.81,0.0141421,0.82,0.0282843,2,"))
    }

    @Test func groupsWhoseRunsUsedDifferentBLASCoresSaySo() throws {
        let root = Fixtures.temporaryDirectory("cores")
        var folders: [String] = []
        for (seed, core) in [(0, "SkylakeX"), (1, "Prescott"), (2, "SkylakeX")] {
            let folder = try makeRun(root, "s\(seed)", strategy: "rigl", sparsity: 0.9, seed: seed, epochs: 1,
                                     rows: ["1,10,0.1,1,0.5,1,0.70,0.9,30,0,0.2,60,,"])
            var record = EnvironmentRecord.current(event: "start", threads: 1)
            record.blasCore = core
            try record.append(to: folder)
            folders.append(folder)
        }
        let mixed = RunComparison.markdown(try folders.map(RunComparison.read))
        #expect(mixed.contains("mixes BLAS cores: Prescott (1), SkylakeX (2)"), "\(mixed)")
        let same = RunComparison.markdown(try [folders[0], folders[2]].map(RunComparison.read))
        #expect(!same.contains("mixes BLAS cores"))
    }

    @Test func aFolderWithoutAConfigIsAnError() {
        let root = Fixtures.temporaryDirectory("notarun")
        #expect(throws: RunError.self) { try RunComparison.read(root) }
    }

    /// Runs that differ from their strategy's defaults are told apart in the table.
    @Test func labelsNameTheStructureDistributionAndOptions() throws {
        func label(_ yaml: String) throws -> String { RunComparison.label(try ConfigLoader.load(yaml: "sparsity: {\(yaml)}").sparsity) }
        #expect(try label("strategy: rigl") == "rigl")
        #expect(try label("strategy: srigl, structure: constant_fan_in") == "srigl")
        #expect(try label("strategy: rigl, distribution: uniform") == "rigl (uniform)")
        #expect(try label("strategy: rigl, structure: n_of_m, n: 2, m: 4, sparsity: 0.5, distribution: uniform") == "rigl (2:4)")
        #expect(try label("strategy: srigl, srigl: {ablation: false}") == "srigl (no ablation)")
        #expect(try label("strategy: static, structure: constant_fan_in, static: {init_mask: snip}") == "static (constant_fan_in, snip)")
        #expect(try label("strategy: dense, distribution: uniform") == "dense")
    }
}
