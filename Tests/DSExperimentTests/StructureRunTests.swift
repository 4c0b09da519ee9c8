import DSCore
import DSExperiment
import DSLayers
import DSSparsity
import DSTestSupport
import Foundation
import Testing

/// Runs with structures, gradual pruning and SNIP, end to end on tiny data.
@Suite struct StructureRunTests {
    func run(_ name: String, sparsity: String) throws -> String {
        let root = Fixtures.temporaryDirectory(name)
        Fixtures.writeIDXDataset(root: root + "/data", train: 96, test: 32)
        let config = try ConfigLoader.load(yaml: """
            name: \(name)
            seed: 3
            data: {dataset: fashion-mnist, root: \(root)/data}
            model: {name: mlp, hidden: [16]}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            training: {epochs: 3, batch_size: 16, threads: 1}
            output: {root: \(root)/results}
            sparsity: {\(sparsity)}
            """)
        try ExperimentRun(config: config).run()
        return root + "/results/" + name
    }

    func readCSV(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
    }

    /// 18 steps (96 samples / 16 → 6 per epoch), T_end = 13, ΔT = 2: prunes after
    /// steps 2, 4, …, 12, the last one reaching 90% in each layer.
    @Test func gradualPruningGoesFromDenseToTheTargetOnTheCubic() throws {
        let folder = try run("gmp", sparsity: "strategy: gmp, sparsity: 0.9, distribution: uniform, update_interval: 2")
        let rows = try readCSV(folder + "/sparsity.csv").filter { $0["layer"] == "fc1" }
        #expect(rows.map { $0["step"]! } == ["0", "2", "4", "6", "8", "10", "12"])
        let nnz = rows.map { Int($0["nnz"]!)! }
        let total = Int(rows[0]["n_out"]!)! * Int(rows[0]["fan_in_dense"]!)!, budget = total / 10
        #expect(nnz[0] == total)
        // p = (t − 0) / (12 − 0) for t = 2, 4, …, 12.
        #expect(Array(nnz.dropFirst()) == (1...6).map { GMPStrategy.targetCount(total: total, budget: budget, progress: Double($0) / 6) })
        #expect(rows.dropFirst().allSatisfy { $0["grown"] == "0" && $0["drop_fraction"] == "0" && $0["structure"] == "unstructured" })
        // Overlap |new| / |old| when weights are only removed.
        for (a, b) in zip(rows.dropLast(), rows.dropFirst()) {
            let expected = Double(b["nnz"]!)! / Double(a["nnz"]!)!
            #expect(abs(Double(b["mask_overlap"]!)! - expected) < 1e-5)
        }
        let metrics = try readCSV(folder + "/metrics.csv")
        #expect(abs(Double(metrics.last!["sparsity"]!)! - 0.9) < 1e-3)
        // Epochs 1 and 2 hold updates, epoch 3 (steps 13–18) none.
        #expect(metrics.map { $0["mask_overlap"]!.isEmpty } == [false, false, true])
    }

    @Test func nOfMRunsKeepNInEveryRun() throws {
        let folder = try run("nm", sparsity: "strategy: rigl, structure: n_of_m, n: 1, m: 4, sparsity: 0.75, distribution: uniform, update_interval: 2")
        let rows = try readCSV(folder + "/sparsity.csv")
        #expect(rows.allSatisfy { $0["structure"] == "n_of_m 1:4" })
        for row in rows {
            let fanIn = Int(row["fan_in_dense"]!)!
            let perRow = fanIn / 4 + min(1, fanIn % 4)
            #expect(row["fan_in_min"] == String(perRow) && row["fan_in_max"] == String(perRow), "\(row)")
        }
        let updates = rows.filter { $0["step"] != "0" }
        #expect(!updates.isEmpty && updates.allSatisfy { $0["grown"] == $0["dropped"] })
        #expect(updates.allSatisfy { Double($0["mask_overlap"]!)! < 1 || $0["grown"] == "0" })
        let config = try String(contentsOfFile: folder + "/config.yaml", encoding: .utf8)
        #expect(config.contains("structure: n_of_m") && config.contains("n: 1") && config.contains("m: 4"))
    }

    /// SNIP picks masks from the data: reproducible with a seed, different from the
    /// random draw, and layer counts as the distribution says.
    @Test func snipMasksComeFromTheGradientAndAreReproducible() throws {
        let spec = "strategy: static, sparsity: 0.9, distribution: uniform, static: {init_mask: snip, snip_batches: 2}"
        let a = try run("snip-a", sparsity: spec), b = try run("snip-b", sparsity: spec)
        let random = try run("random", sparsity: "strategy: static, sparsity: 0.9, distribution: uniform")
        func drop(_ rows: [[String: String]]) -> [[String: String]] { rows.map { $0.filter { $0.key != "epoch_seconds" } } }
        #expect(drop(try readCSV(a + "/metrics.csv")) == drop(try readCSV(b + "/metrics.csv")))
        #expect(try readCSV(a + "/sparsity.csv") == readCSV(b + "/sparsity.csv"))
        let snipRows = try readCSV(a + "/sparsity.csv"), randomRows = try readCSV(random + "/sparsity.csv")
        #expect(snipRows.map { $0["nnz"] } == randomRows.map { $0["nnz"] })
        // A random mask spreads fan-in evenly over neurons; SNIP's follows |w · g|, which
        // is larger for some neurons than others, so its fan-in varies more.
        let snipFC1 = snipRows.first { $0["layer"] == "fc1" }!, randomFC1 = randomRows.first { $0["layer"] == "fc1" }!
        #expect(Int(snipFC1["fan_in_max"]!)! - Int(snipFC1["fan_in_min"]!)! > Int(randomFC1["fan_in_max"]!)! - Int(randomFC1["fan_in_min"]!)!)
        #expect(try String(contentsOfFile: a + "/config.yaml", encoding: .utf8).contains("init_mask: snip"))
    }

    /// A 2×4 Linear layer with the gradients given: SNIP keeps the largest `|w · g|`
    /// (within each row under constant fan-in).
    @Test func snipKeepsTheLargestConnectionSensitivity() throws {
        for (structure, expected) in [(Unstructured() as any MaskStructure, [1, 2, 4, 5]),
                                      (ConstantFanIn(), [1, 2, 4, 5]), (NOfM(n: 1, m: 2), [1, 2, 4, 7])] {
            var rng = Xoshiro256(seed: 1)
            let linear = Linear(inputFeatures: 4, outputFeatures: 2, rng: &rng)
            linear.weight.value.storage = [0.5, -1, 2, 0.1, 1, 1, 1, 1]
            let model = Sequential(named: [("fc", linear)])
            var options = StrategyOptionSections()
            options.staticMask.initMask = "snip"
            let settings = SparsitySettings(strategy: StaticStrategy(structure: structure, options: options.staticMask),
                                            sparsity: 0.5, distribution: .uniform,
                                            schedule: UpdateSchedule(interval: 1, endStep: 1, initialDropFraction: 0),
                                            initialization: .dense)
            let sparse = try SparseModel(model: model, parameters: model.namedParameters().map(\.parameter),
                                         settings: settings, rng: &rng)
            #expect(sparse.layers[0].mask == .dense(rows: 2, columns: 4), "full until scored")
            // |w · g| = [0.5, 1, 4, 0.05 | 3, 2, 0.1, 2.5]: the four largest are 2, 4, 7, 5;
            // per row two: {1, 2} and {4, 7}; per run of 2 one: 1, 2, 4, 7.
            let g: [Float] = [1, 1, 2, 0.5, 3, 2, 0.1, 2.5]
            sparse.selectInitialMasks(gradients: [g], rng: &rng)
            let kept = sparse.layers[0].mask!.activeIndices
            #expect(kept == (structure is Unstructured ? [2, 4, 5, 7] : structure is ConstantFanIn ? [1, 2, 4, 7] : expected),
                    "\(structure.label)")
            #expect(linear.weight.value.storage.enumerated().allSatisfy { kept.contains($0.offset) || $0.element == 0 })
        }
    }
}
