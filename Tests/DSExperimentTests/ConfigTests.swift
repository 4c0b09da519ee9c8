import DSExperiment
import DSTestSupport
import Foundation
import Testing

@Suite struct ConfigTests {
    func problems(_ yaml: String, overrides: [String] = []) -> [String] {
        do {
            _ = try ConfigLoader.load(yaml: yaml, source: "test.yaml", overrides: overrides)
            return []
        } catch let e as ConfigError {
            #expect(e.source == "test.yaml")
            return e.problems
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test func emptyConfigTakesEveryDefault() throws {
        let c = try ConfigLoader.load(yaml: "{}")
        #expect(c == ExperimentConfig())
    }

    @Test func valuesAreDecoded() throws {
        let c = try ConfigLoader.load(yaml: """
            name: run1
            seed: 7
            model: {name: resnet20, width_multiplier: 0.5}
            optimizer: {name: sgd, lr: 0.05, nesterov: true, weight_decay: 5.0e-4}
            schedule: {name: multistep, milestones: [77, 154], gamma: 0.2}
            training: {epochs: 3, batch_size: 64}
            data: {dataset: cifar10, augmentation: {random_crop_padding: 4, horizontal_flip: true}}
            """)
        #expect(c.name == "run1" && c.seed == 7 && c.model.widthMultiplier == 0.5)
        #expect(c.optimizer.nesterov && c.optimizer.weightDecay == 5e-4)
        #expect(c.schedule.milestones == [77, 154] && c.data.augmentation.randomCropPadding == 4)
        #expect(c.training.batchSize == 64 && c.model.hidden == [300, 100])
    }

    @Test func unknownKeysNameTheirPathAndTheValidKeys() {
        let p = problems("optimizer: {name: sgd, learning_rate: 0.1}\nmodle: {name: mlp}\n")
        #expect(p.count == 2)
        #expect(p.contains { $0.hasPrefix("optimizer.learning_rate: unknown key") && $0.contains("lr") && $0.contains("weight_decay") })
        #expect(p.contains { $0.hasPrefix("modle: unknown key") && $0.contains("model") })
    }

    @Test func wrongTypesAndBadValuesAreAllReportedAtOnce() {
        let p = problems("""
            optimizer: {lr: fast, name: rmsprop}
            training: {epochs: -1, batch_size: [1]}
            model: {name: resnet9000}
            data: plain
            """)
        #expect(p.contains { $0.hasPrefix("optimizer.lr: expected a number") })
        #expect(p.contains { $0.hasPrefix("optimizer.name: unknown optimizer 'rmsprop'") && $0.contains("adamw, sgd") })
        #expect(p.contains { $0.hasPrefix("training.epochs: must be positive") })
        #expect(p.contains { $0.hasPrefix("training.batch_size: expected an integer") })
        #expect(p.contains { $0.hasPrefix("model.name: unknown model 'resnet9000'") && $0.contains("resnet20") })
        #expect(p.contains { $0.hasPrefix("data: expected a mapping") })
        #expect(p.count == 6)
    }

    @Test func sparsityKeysAreValidated() {
        let p = problems("""
            sparsity: {strategy: prune, sparsity: 1.2, distribution: normal, update_interval: 0,
                       grad_accumulation: 3, constant_fan_in: true, init: xavier, structure: blocks,
                       start_fraction: 0.9, srigl: {gamma_sal: 0}, static: {init_mask: grasp, snip_batches: 0}}
            """)
        #expect(p.contains { $0.hasPrefix("sparsity.strategy: unknown strategy 'prune'") && $0.contains("dense, gmp, rigl, set, srigl, static") })
        #expect(p.contains { $0.hasPrefix("sparsity.sparsity: must be in [0, 1)") })
        #expect(p.contains { $0.hasPrefix("sparsity.distribution: unknown distribution 'normal'") && $0.contains("erk, uniform") })
        #expect(p.contains { $0.hasPrefix("sparsity.update_interval: must be positive") })
        #expect(p.contains { $0.hasPrefix("sparsity.grad_accumulation:") })
        #expect(p.contains { $0 == "sparsity.constant_fan_in: replaced by sparsity.structure: constant_fan_in" })
        #expect(p.contains { $0.hasPrefix("sparsity.init: unknown initialisation 'xavier'") })
        #expect(p.contains { $0.hasPrefix("sparsity.structure: unknown structure 'blocks'") && $0.contains("unstructured, constant_fan_in, n_of_m") })
        #expect(p.contains { $0.hasPrefix("sparsity.start_fraction: must be in [0, end_fraction") })
        // Options of strategies that do not run are still checked.
        #expect(p.contains { $0.hasPrefix("sparsity.srigl.gamma_sal: must be positive") })
        #expect(p.contains { $0.hasPrefix("sparsity.static.init_mask: unknown initial mask 'grasp'") && $0.contains("random, snip") })
        #expect(p.contains { $0.hasPrefix("sparsity.static.snip_batches: must be ≥ 1") })
        #expect(p.count == 12)
        #expect(problems("sparsity: {gamma_sal: 0.5}") == ["sparsity.gamma_sal: moved to sparsity.srigl.gamma_sal"])
        #expect(problems("sparsity: {srigl: {gamma: 0.5}}").first?.hasPrefix("sparsity.srigl.gamma: unknown key 'gamma'") == true)
    }

    /// A run folder written before strategy options had sections still reads (compare,
    /// export, eval); the same text as a user's config names the new keys.
    @Test func runFoldersWithMovedKeysStillRead() throws {
        let folder = Fixtures.temporaryPath("old-run")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let old = "sparsity: {strategy: static, ablation: false, gamma_sal: 0.5, constant_fan_in: true}"
        try old.write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        let config = try ConfigLoader.loadRunConfig(folder: folder)
        #expect(config.sparsity.options.srigl.gammaSal == 0.5 && !config.sparsity.options.srigl.ablation)
        #expect(config.sparsity.resolvedStructure == "constant_fan_in")
        #expect(problems(old).count == 3)
    }

    @Test func structuresAreCheckedAgainstTheStrategy() {
        let ok = "sparsity: {structure: n_of_m, n: 2, m: 4, sparsity: 0.5, distribution: uniform, "
        for strategy in ["static", "set", "rigl", "gmp"] {
            #expect(problems(ok + "strategy: \(strategy)}").isEmpty, "\(strategy) with 2:4")
            #expect(problems("sparsity: {strategy: \(strategy), structure: constant_fan_in}").isEmpty)
        }
        #expect(problems(ok + "strategy: srigl, srigl: {ablation: false}}").isEmpty)
        let ablating = problems(ok + "strategy: srigl}")
        #expect(ablating.count == 1 && ablating[0].hasPrefix("sparsity.structure: strategy srigl cannot use n_of_m: neuron ablation"))
        let unstructured = problems("sparsity: {strategy: srigl, structure: unstructured}")
        #expect(unstructured.count == 1 && unstructured[0].contains("use strategy rigl"))
        let erk = problems("sparsity: {strategy: rigl, structure: n_of_m, n: 1, m: 4, sparsity: 0.9}")
        #expect(erk.contains { $0.hasPrefix("sparsity.distribution: n_of_m keeps n of every m weights") })
        #expect(erk.contains { $0.hasPrefix("sparsity.sparsity: 1:4 means sparsity 0.75 in every sparse layer") })
        #expect(problems("sparsity: {strategy: rigl, structure: n_of_m, n: 4, m: 4, distribution: uniform}")
            .contains { $0.hasPrefix("sparsity.n, sparsity.m: n_of_m needs 1 ≤ n < m") })
    }

    @Test func theResolvedConfigNamesTheStructureAndOnlyTheRunningStrategysOptions() throws {
        let yaml = "sparsity: {strategy: srigl, srigl: {gamma_sal: 0.5}, static: {snip_batches: 3}}"
        let srigl = ConfigLoader.render(try ConfigLoader.load(yaml: yaml))
        #expect(srigl.contains("structure: constant_fan_in") && srigl.contains("gamma_sal: 0.5"))
        #expect(!srigl.contains("snip_batches"))
        // A sweep over strategies: the same file with strategy=rigl.
        let rigl = try ConfigLoader.load(yaml: yaml, overrides: ["sparsity.strategy=rigl"])
        #expect(rigl.sparsity.resolvedStructure == "unstructured")
        let rendered = ConfigLoader.render(rigl)
        #expect(rendered.contains("structure: unstructured"))
        #expect(!rendered.contains("gamma_sal") && !rendered.contains("snip_batches"))
        // The rendering loads back to the same run.
        #expect(ConfigLoader.render(try ConfigLoader.load(yaml: rendered)) == rendered)
    }

    @Test func flipsAreRefusedForDigits() {
        let p = problems("data: {dataset: mnist, augmentation: {horizontal_flip: true}}")
        #expect(p.count == 1 && p[0].hasPrefix("data.augmentation.horizontal_flip:"))
        #expect(problems("data: {dataset: fashion-mnist, augmentation: {horizontal_flip: true}}").isEmpty)
    }

    @Test func syntaxErrorsAreReportedWithTheFile() {
        let p = problems("model: [unclosed\n")
        #expect(p.count == 1 && p[0].contains("YAML syntax error"))
    }

    @Test func overridesSetNestedValues() throws {
        let c = try ConfigLoader.load(yaml: "training: {epochs: 5}",
                                      overrides: ["training.epochs=2", "model.hidden=[64, 32]", "name=sweep-a",
                                                  "optimizer.nesterov=true"])
        #expect(c.training.epochs == 2 && c.model.hidden == [64, 32] && c.name == "sweep-a" && c.optimizer.nesterov)
        #expect(problems("training: {epochs: 5}", overrides: ["training.epochs.x=1"]).first?.contains("not a mapping") == true)
        #expect(problems("{}", overrides: ["training.epoch=1"]).first?.hasPrefix("training.epoch: unknown key") == true)
        #expect(problems("{}", overrides: ["noequals"]).first?.contains("key.path=value") == true)
    }

    @Test func renderedConfigReloadsIdentically() throws {
        var c = ExperimentConfig()
        c.name = "x"; c.model.name = "lenet5"; c.schedule.milestones = [3, 6]
        let again = try ConfigLoader.load(yaml: ConfigLoader.render(c))
        #expect(again == c)
    }

    @Test("every shipped config validates", arguments: ShippedConfigs.files)
    func shippedConfigsValidate(file: String) throws {
        _ = try ConfigLoader.load(file: file)
    }
}

enum ShippedConfigs {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("configs").path
    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted().map { directory + "/" + $0 }
    }
}
