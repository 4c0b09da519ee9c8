import DSCore
import DSExperiment
import DSLayers
import DSTestSupport
import Foundation
import Testing

/// `dst validate` checks what `dst run` needs (dataset headers, model size, sparse
/// layers), so the two accept and refuse the same configs.
@Suite struct PreflightTests {
    func config(_ root: String, _ extra: String = "") throws -> ExperimentConfig {
        try ConfigLoader.load(yaml: """
            name: pre
            data: {dataset: fashion-mnist, root: \(root)/data}
            model: {name: mlp, hidden: [16]}
            training: {epochs: 1, batch_size: 16, threads: 1}
            output: {root: \(root)/results}
            \(extra)
            """)
    }

    func problems(_ config: ExperimentConfig) -> [String] {
        do {
            try RunPreflight.check(config, source: "pre.yaml")
            return []
        } catch let e as ConfigError {
            #expect(e.source == "pre.yaml")
            return e.problems
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test func everyProblemIsReportedAtOnce() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("pre") + "/data", train: 32, test: 8)
            .replacingOccurrences(of: "/data", with: "")
        let cfg = try config(root, """
            sparsity: {strategy: rigl, sparsity: 0.5, dense_layers: [fc9], no_ablation_layers: [head]}
            """)
        var withValidation = cfg
        withValidation.data.validationSize = 32
        let found = problems(withValidation)
        #expect(found.contains { $0.hasPrefix("data.validation_size: 32 is not below the 32 training samples") }, "\(found)")
        #expect(found.contains { $0.contains("sparsity.dense_layers") && $0.contains("fc9") }, "\(found)")
        #expect(found.count == 2)
        #expect(problems(try config(root)).isEmpty)
    }

    @Test func impossibleModelSizesAreValidationErrorsThatSayHowMuch() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("huge") + "/data", train: 16, test: 8)
            .replacingOccurrences(of: "/data", with: "")
        for hidden in [[1_000_000_000], [Int.max], [100_000, 100_000, 100_000]] {
            var cfg = try config(root)
            cfg.model.hidden = hidden
            let found = problems(cfg)
            #expect(found.count == 1 && found[0].hasPrefix("model: mlp") && found[0].contains("would need about")
                    && found[0].contains("this machine has"), "\(found)")
        }
        var wideConfig = try config(root)
        wideConfig.model.name = "resnet18"
        wideConfig.model.widthMultiplier = 1000
        let wide = problems(wideConfig)
        #expect(wide.count == 1 && wide[0].contains("width_multiplier 1000"), "\(wide)")
    }

    @Test func aLayerLeftWithoutWeightsIsRefused() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("empty") + "/data", train: 16, test: 8)
            .replacingOccurrences(of: "/data", with: "")
        let found = problems(try config(root, "sparsity: {strategy: rigl, sparsity: 0.999999999, distribution: uniform}"))
        #expect(found.count == 1 && found[0].contains("keeps no weights"), "\(found)")
    }

    @Test func validateAndRunGiveTheSameErrors() throws {
        guard DSTProcess.isBuilt else { return }
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("agree") + "/data", train: 32, test: 8)
            .replacingOccurrences(of: "/data", with: "")
        let path = root + "/bad.yaml"
        for sparsity in ["{strategy: rigl, sparsity: 0.5, no_ablation_layers: [fc7]}",
                         "{strategy: srigl, sparsity: 0.99, distribution: uniform}"] {
            try """
                name: bad
                data: {dataset: fashion-mnist, root: \(root)/data}
                model: {name: mlp, hidden: [16]}
                output: {root: \(root)/results}
                sparsity: \(sparsity)
                """.write(toFile: path, atomically: true, encoding: .utf8)
            let validate = try DSTProcess.run(["validate", path])
            let run = try DSTProcess.run(["run", path])
            #expect(validate.status == 2 && run.status == 2)
            #expect(validate.stderr == run.stderr && validate.stderr.hasPrefix("error: \(path): sparsity."), "\(validate.stderr)")
            #expect(!FileManager.default.fileExists(atPath: root + "/results/bad"))
        }
    }

    @Test func dataProblemsExitWithTheDataCodeAndNameTheFile() throws {
        guard DSTProcess.isBuilt else { return }
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("baddata") + "/data", train: 16, test: 8)
        let labels = root + "/fashion-mnist/t10k-labels-idx1-ubyte.gz"
        _ = FileManager.default.createFile(atPath: labels, contents: Data())
        let path = root + "/../bad.yaml"
        try "data: {dataset: fashion-mnist, root: \(root)}\nmodel: {name: mlp, hidden: [8]}\noutput: {root: \(root)/../results}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        for command in ["validate", "run"] {
            let result = try DSTProcess.run([command, path])
            #expect(result.status == 3 && result.stderr.contains(labels), "\(command): \(result.stderr)")
        }
    }

    @Test(arguments: ModelRegistry.names)
    func sizeEstimatesMatchTheBuiltModels(name: String) throws {
        for input in [ModelInput(channels: 1, height: 28, width: 28, classes: 10),
                      ModelInput(channels: 3, height: 32, width: 32, classes: 10)] {
            // Patches of 4 fit both image sizes.
            let options = ModelOptions(widthMultiplier: 0.5, vit: VisionTransformerOptions(patchSize: 4))
            var rng = Xoshiro256(seed: 1)
            let model = try ModelRegistry.build(name, input: input, options: options, rng: &rng)
            let built = model.namedParameters().reduce(0) { $0 + $1.parameter.value.count }
            let estimate = try #require(ModelRegistry.size(name, input: input, options: options))
            #expect(abs(estimate.parameters - Double(built)) <= 0.02 * Double(built),
                    "\(name): estimated \(estimate.parameters) parameters, built \(built)")
        }
    }
}
