import DSCore
import DSData
import DSLayers
import DSSparsity
import Foundation
import Yams

/// Every problem found in a config, each naming its key path.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The config file (or `<string>`).
    public let source: String
    public let problems: [String]
    public var description: String {
        problems.count == 1
            ? "\(source): \(problems[0])"
            : "\(source): \(problems.count) problems:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Reads YAML configs: parse, apply `--set` overrides, decode with defaults, reject
/// unknown keys, validate.
public enum ConfigLoader {
    /// Config files larger than this are refused (a config is a few kilobytes; this
    /// bounds the time and memory a mistaken path can cost).
    public static let maximumFileSize = 1 << 20

    /// Loads and validates the config file at `path` with `overrides` (`a.b=value`).
    public static func load(file path: String, overrides: [String] = []) throws -> ExperimentConfig {
        try loadWithNotes(file: path, overrides: overrides).config
    }

    /// Like `load(file:)`, also returning notes on what the file leaves to defaults (an
    /// empty file, an empty section), for the first lines a run prints.
    public static func loadWithNotes(file path: String, overrides: [String] = []) throws -> (config: ExperimentConfig, notes: [String]) {
        if let problem = FileSystem.readProblem(path) {
            throw ConfigError(source: path, problems: ["cannot read the config: \(problem)"])
        }
        if let size = FileSystem.size(path), size > maximumFileSize {
            throw ConfigError(source: path, problems: [
                "the file has \(size) bytes; configs are limited to \(maximumFileSize) bytes (is this the right file?)"])
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(source: path, problems: ["cannot read the config"])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            let offset = firstInvalidUTF8(data)
            throw ConfigError(source: path, problems: [
                "not UTF-8 text: byte 0x\(String(data[data.startIndex + offset], radix: 16)) at offset \(offset)"
                + " (line \(data.prefix(offset).filter { $0 == 0x0a }.count + 1)) is not valid UTF-8"])
        }
        return try loadWithNotes(yaml: text, source: path, overrides: overrides)
    }

    /// The offset of the first byte that does not belong to a well-formed UTF-8
    /// character in `data` (lead byte, then the continuation bytes it announces).
    static func firstInvalidUTF8(_ data: Data) -> Int {
        let bytes = [UInt8](data)
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            let length = lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 0
            guard length > 0, i + length <= bytes.count,
                  bytes[(i + 1)..<(i + length)].allSatisfy({ $0 >> 6 == 0b10 }) else { return i }
            i += length
        }
        return min(i, max(bytes.count - 1, 0))
    }

    /// Loads and validates config text; `source` names it in errors.
    public static func load(yaml text: String, source: String = "<string>",
                            overrides: [String] = []) throws -> ExperimentConfig {
        try loadWithNotes(yaml: text, source: source, overrides: overrides).config
    }

    /// The `config.yaml` of a run folder. Folders written before strategy options had
    /// their own sections hold `sparsity.gamma_sal`, `sparsity.ablation` and
    /// `sparsity.constant_fan_in`; they are read as `sparsity.srigl.*` and
    /// `sparsity.structure`, so older runs still compare, export and evaluate (a config
    /// file passed by the user gets the error naming the new key instead).
    public static func loadRunConfig(folder: String) throws -> ExperimentConfig {
        let path = folder + "/config.yaml"
        if let problem = FileSystem.readProblem(path) {
            throw ConfigError(source: path, problems: ["cannot read the config: \(problem)"])
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(source: path, problems: ["cannot read the config"])
        }
        return try loadWithNotes(yaml: text, source: path, upgradingMovedKeys: true).config
    }

    /// Rewrites the keys of `movedKeys` to their new places.
    static func upgradeMovedKeys(_ node: Node) -> Node {
        guard case .mapping(var top) = node, case .mapping(var sparsity)? = top["sparsity"] else { return node }
        var srigl: Node.Mapping = [:]
        if case .mapping(let existing)? = sparsity["srigl"] { srigl = existing }
        for key in ["gamma_sal", "ablation"] {
            if let value = sparsity[key] {
                srigl[Node(key)] = value
                sparsity[key] = nil
            }
        }
        if !srigl.isEmpty { sparsity["srigl"] = .mapping(srigl) }
        if let flag = sparsity["constant_fan_in"] {
            if flag.bool == true { sparsity["structure"] = Node(MaskStructureKind.constantFanIn.rawValue) }
            sparsity["constant_fan_in"] = nil
        }
        top["sparsity"] = .mapping(sparsity)
        return .mapping(top)
    }

    public static func loadWithNotes(yaml text: String, source: String = "<string>", overrides: [String] = [],
                                     upgradingMovedKeys: Bool = false) throws -> (config: ExperimentConfig, notes: [String]) {
        var node: Node
        do {
            node = try Yams.compose(yaml: text) ?? Node.mapping([:])
        } catch {
            throw ConfigError(source: source, problems: [YAMLProblem.describe(error, text: text)])
        }
        if upgradingMovedKeys { node = upgradeMovedKeys(node) }
        var notes: [String] = []
        if case .mapping(let m) = node {
            if m.isEmpty { notes.append("\(source) sets no keys: every value is a default (`dst validate` prints them)") }
            for (key, value) in m where value.null != nil || value.scalar?.string == "" {
                notes.append("\(source): section '\(key.string ?? "?")' is empty; all its defaults apply")
            }
        }
        var problems: [String] = []
        for override in overrides {
            do { node = try apply(override: override, to: node) } catch let e as ConfigError {
                problems += e.problems
            }
        }
        let sink = IssueSink()
        let config: ExperimentConfig
        do {
            config = try YAMLDecoder().decode(ExperimentConfig.self, from: node, userInfo: [.configIssues: sink])
        } catch {
            throw ConfigError(source: source, problems: problems + ["\(error)"])
        }
        problems += sink.issues
        if let reference = try? referenceNode(config) {
            problems += unknownKeys(in: node, reference: reference, path: [])
        }
        problems += config.validate()
        guard problems.isEmpty else { throw ConfigError(source: source, problems: problems) }
        return (config, notes)
    }

    /// The fully resolved config as YAML (every key, defaults included), with numbers
    /// written plainly (`0.9`, not `9e-1`); linear in the config's size.
    public static func render(_ config: ExperimentConfig) -> String {
        guard let node = try? ConfigRendering.node(config), let text = try? Yams.serialize(node: node) else { return "" }
        return text
    }

    /// The key paths whose values differ between two rendered configs, as
    /// `path: saved → current` lines.
    public static func differences(saved: String, current: String) -> [String] {
        func flatten(_ node: Node?, _ prefix: String, into out: inout [String: String]) {
            switch node {
            case .mapping(let m)?:
                for (k, v) in m { flatten(v, prefix.isEmpty ? (k.string ?? "?") : prefix + "." + (k.string ?? "?"), into: &out) }
            case .sequence(let s)?:
                out[prefix] = "[" + s.map { $0.string ?? "\($0)" }.joined(separator: ", ") + "]"
            case .scalar(let v)?:
                out[prefix] = v.string
            default:
                break
            }
        }
        var a: [String: String] = [:], b: [String: String] = [:]
        flatten(try? Yams.compose(yaml: saved), "", into: &a)
        flatten(try? Yams.compose(yaml: current), "", into: &b)
        return Set(a.keys).union(b.keys).sorted().compactMap { key in
            a[key] == b[key] ? nil : "\(key): \(a[key] ?? "(absent)") → \(b[key] ?? "(absent)")"
        }
    }

    /// The error refusing a resume whose config differs from the saved one, listing
    /// the keys that differ (`madeBy`: what holds the saved config).
    static func resumeRefusal(saved: String, current: String, source: String, madeBy: String) -> RunError {
        let changes = differences(saved: saved, current: current)
        return RunError("\(source): cannot resume: \(madeBy) was made with a different config"
                        + (changes.isEmpty ? " (same values, different text)"
                           : ":\n" + changes.map { "  - \($0)" }.joined(separator: "\n")))
    }

    /// Applies one `key.path=value` override; the value is parsed as YAML
    /// (`--set model.hidden=[512,256]`).
    static func apply(override: String, to node: Node) throws -> Node {
        guard let eq = override.firstIndex(of: "="), eq != override.startIndex else {
            throw ConfigError(source: "--set", problems: ["--set \(override): expected key.path=value"])
        }
        let path = override[..<eq].split(separator: ".").map(String.init)
        let valueText = String(override[override.index(after: eq)...])
        let value = (try? Yams.compose(yaml: valueText)) ?? nil
        return try setting(node, path: path[...], to: value ?? Node(valueText), override: override)
    }

    static func setting(_ node: Node, path: ArraySlice<String>, to value: Node, override: String) throws -> Node {
        guard let key = path.first else { return value }
        var mapping: Node.Mapping
        switch node {
        case .mapping(let m): mapping = m
        case .scalar(let s) where s.string == "" || s.string == "null" || s.string == "~": mapping = [:]
        default:
            throw ConfigError(source: "--set", problems: ["--set \(override): '\(key)' is inside a value that is not a mapping"])
        }
        let child = mapping[key] ?? Node.mapping([:])
        mapping[key] = try setting(child, path: path.dropFirst(), to: value, override: override)
        return .mapping(mapping)
    }

    /// Every key a config may hold: the resolved config with every strategy's options
    /// section (the rendering keeps only the running strategy's).
    static func referenceNode(_ config: ExperimentConfig) throws -> Node {
        let node = try ConfigRendering.node(config)
        guard case .mapping(var top) = node, case .mapping(var sparsity)? = top["sparsity"] else { return node }
        for name in StrategyOptionSections.sectionNames {
            if let section = config.sparsity.options.section(of: name) { sparsity[name] = try ConfigRendering.node(section) }
        }
        top["sparsity"] = .mapping(sparsity)
        return .mapping(top)
    }

    /// Keys of earlier versions and where they went.
    static let movedKeys = [
        "sparsity.gamma_sal": "moved to sparsity.srigl.gamma_sal",
        "sparsity.ablation": "moved to sparsity.srigl.ablation",
        "sparsity.constant_fan_in": "replaced by sparsity.structure: constant_fan_in",
    ]

    /// Keys present in `node` but not in `reference` (the re-encoded config, which
    /// holds every known key).
    static func unknownKeys(in node: Node, reference: Node, path: [String]) -> [String] {
        guard case .mapping(let m) = node, case .mapping(let ref) = reference else { return [] }
        var problems: [String] = []
        for (k, v) in m {
            let key = k.string ?? "\(k)"
            let here = path + [key]
            if let r = ref[key] {
                problems += unknownKeys(in: v, reference: r, path: here)
            } else if let moved = movedKeys[here.joined(separator: ".")] {
                problems.append("\(here.joined(separator: ".")): \(moved)")
            } else {
                let valid = ref.keys.compactMap(\.string).sorted().joined(separator: ", ")
                let section = path.isEmpty ? "at the top level" : "in \(path.joined(separator: "."))"
                problems.append("\(here.joined(separator: ".")): unknown key '\(key)' \(section); valid keys: \(valid)")
            }
        }
        return problems
    }
}

extension ExperimentConfig {
    /// The choices each named option accepts.
    public static let optimizers = ["adamw", "sgd"]
    public static let schedules = ["constant", "cosine", "multistep", "step"]

    /// Every semantic problem, each with its key path (empty when valid).
    public func validate() -> [String] {
        var p: [String] = []
        func check(_ ok: Bool, _ message: @autoclosure () -> String) { if !ok { p.append(message()) } }
        check(!name.isEmpty && !name.contains("/") && name != "." && name != "..",
              "name: '\(name)' must be a non-empty folder name without '/'")
        check(DatasetCatalog.datasets[data.dataset] != nil,
              "data.dataset: unknown dataset '\(data.dataset)'; valid datasets: \(DatasetCatalog.names.joined(separator: ", "))")
        if let info = DatasetCatalog.datasets[data.dataset] {
            check(!data.augmentation.horizontalFlip || info.flipsAreNatural,
                  "data.augmentation.horizontal_flip: \(data.dataset) images are not mirror-symmetric (digits); set it to false")
        }
        check(data.validationSize >= 0, "data.validation_size: must be ≥ 0, got \(data.validationSize)")
        check(data.augmentation.randomCropPadding >= 0,
              "data.augmentation.random_crop_padding: must be ≥ 0, got \(data.augmentation.randomCropPadding)")
        check(ModelRegistry.builders[model.name] != nil,
              "model.name: unknown model '\(model.name)'; valid models: \(ModelRegistry.names.joined(separator: ", "))")
        check(model.hidden.allSatisfy { $0 > 0 }, "model.hidden: every size must be positive, got \(model.hidden)")
        check(model.widthMultiplier > 0, "model.width_multiplier: must be positive, got \(model.widthMultiplier)")
        check(model.dropout >= 0 && model.dropout < 1, "model.dropout: must be in [0, 1), got \(model.dropout)")
        check(Self.optimizers.contains(optimizer.name),
              "optimizer.name: unknown optimizer '\(optimizer.name)'; valid optimizers: \(Self.optimizers.joined(separator: ", "))")
        check(optimizer.lr > 0, "optimizer.lr: must be positive, got \(optimizer.lr)")
        check(optimizer.momentum >= 0 && optimizer.momentum < 1, "optimizer.momentum: must be in [0, 1), got \(optimizer.momentum)")
        check(!optimizer.nesterov || optimizer.momentum > 0 || optimizer.name != "sgd",
              "optimizer.nesterov: needs optimizer.momentum > 0")
        check(optimizer.weightDecay >= 0, "optimizer.weight_decay: must be ≥ 0, got \(optimizer.weightDecay)")
        check(optimizer.betas.count == 2 && optimizer.betas.allSatisfy { $0 >= 0 && $0 < 1 },
              "optimizer.betas: expected two numbers in [0, 1), got \(optimizer.betas)")
        check(optimizer.eps > 0, "optimizer.eps: must be positive, got \(optimizer.eps)")
        check(optimizer.gradClipNorm >= 0, "optimizer.grad_clip_norm: must be ≥ 0 (0 = off), got \(optimizer.gradClipNorm)")
        p += model.vit.problems()
        check(Self.schedules.contains(schedule.name),
              "schedule.name: unknown schedule '\(schedule.name)'; valid schedules: \(Self.schedules.joined(separator: ", "))")
        check(schedule.stepSize > 0, "schedule.step_size: must be positive, got \(schedule.stepSize)")
        check(schedule.milestones == schedule.milestones.sorted() && schedule.milestones.allSatisfy { $0 > 0 },
              "schedule.milestones: must be positive epochs in increasing order, got \(schedule.milestones)")
        check(schedule.gamma > 0, "schedule.gamma: must be positive, got \(schedule.gamma)")
        check(schedule.minLr >= 0, "schedule.min_lr: must be ≥ 0, got \(schedule.minLr)")
        check(schedule.warmupEpochs >= 0, "schedule.warmup_epochs: must be ≥ 0, got \(schedule.warmupEpochs)")
        check(schedule.warmupStartFactor >= 0 && schedule.warmupStartFactor <= 1,
              "schedule.warmup_start_factor: must be in [0, 1], got \(schedule.warmupStartFactor)")
        check(training.epochs > 0, "training.epochs: must be positive, got \(training.epochs)")
        check(training.batchSize > 0, "training.batch_size: must be positive, got \(training.batchSize)")
        check(training.evalBatchSize > 0, "training.eval_batch_size: must be positive, got \(training.evalBatchSize)")
        check(training.labelSmoothing >= 0 && training.labelSmoothing < 1,
              "training.label_smoothing: must be in [0, 1), got \(training.labelSmoothing)")
        check(training.threads >= 0, "training.threads: must be ≥ 0 (0 = all cores), got \(training.threads)")
        check(training.maxBatchesPerEpoch >= 0, "training.max_batches_per_epoch: must be ≥ 0, got \(training.maxBatchesPerEpoch)")
        let kernelModes = SparseKernelMode.allCases.map(\.rawValue)
        check(kernelModes.contains(training.sparseKernels),
              "training.sparse_kernels: unknown mode '\(training.sparseKernels)'; valid: \(kernelModes.joined(separator: ", "))")
        check(!output.root.isEmpty, "output.root: must not be empty")
        check(StrategyRegistry.names.contains(sparsity.strategy),
              "sparsity.strategy: unknown strategy '\(sparsity.strategy)'; valid strategies: \(StrategyRegistry.names.joined(separator: ", "))")
        check(sparsity.sparsity >= 0 && sparsity.sparsity < 1, "sparsity.sparsity: must be in [0, 1), got \(sparsity.sparsity)")
        let distributions = DensityDistribution.allCases.map(\.rawValue).sorted()
        check(distributions.contains(sparsity.distribution),
              "sparsity.distribution: unknown distribution '\(sparsity.distribution)'; valid distributions: \(distributions.joined(separator: ", "))")
        check(sparsity.updateInterval > 0, "sparsity.update_interval: must be positive, got \(sparsity.updateInterval)")
        check(sparsity.endFraction > 0 && sparsity.endFraction <= 1,
              "sparsity.end_fraction: must be in (0, 1], got \(sparsity.endFraction)")
        check(sparsity.dropFraction >= 0 && sparsity.dropFraction <= 1,
              "sparsity.drop_fraction: must be in [0, 1], got \(sparsity.dropFraction)")
        check(sparsity.gradAccumulation >= 1 && sparsity.gradAccumulation <= sparsity.updateInterval,
              "sparsity.grad_accumulation: must be in 1...update_interval (\(sparsity.updateInterval)), got \(sparsity.gradAccumulation)")
        check(sparsity.startFraction >= 0 && sparsity.startFraction < sparsity.endFraction,
              "sparsity.start_fraction: must be in [0, end_fraction (\(sparsity.endFraction))), got \(sparsity.startFraction)")
        p += sparsity.options.problems(prefix: "sparsity.")
        p += structureProblems()
        let inits = SparseInitialization.allCases.map(\.rawValue).sorted()
        check(inits.contains(sparsity.initialization),
              "sparsity.init: unknown initialisation '\(sparsity.initialization)'; valid: \(inits.joined(separator: ", "))")
        return p
    }

    /// `sparsity.structure`, `n`, `m` and whether the strategy takes that structure.
    func structureProblems() -> [String] {
        let s = sparsity
        guard let kind = MaskStructureKind(rawValue: s.resolvedStructure) else {
            return ["sparsity.structure: unknown structure '\(s.resolvedStructure)'; valid structures: "
                    + MaskStructureKind.allCases.map(\.rawValue).joined(separator: ", ")]
        }
        var p: [String] = []
        if kind == .nOfM {
            if !(s.m >= 2 && s.n >= 1 && s.n < s.m) {
                p.append("sparsity.n, sparsity.m: n_of_m needs 1 ≤ n < m, got n = \(s.n), m = \(s.m)")
            } else if s.strategy != "dense" {
                let implied = 1 - Double(s.n) / Double(s.m)
                if s.distribution != DensityDistribution.uniform.rawValue {
                    p.append("sparsity.distribution: n_of_m keeps n of every m weights in every sparse layer, so the "
                             + "distribution is uniform; set distribution: uniform (got \(s.distribution))")
                }
                if abs(s.sparsity - implied) > 1e-9 {
                    p.append("sparsity.sparsity: \(s.n):\(s.m) means sparsity \(implied) in every sparse layer; set "
                             + "sparsity: \(implied) (got \(s.sparsity))")
                }
            }
        }
        if let entry = StrategyRegistry.entries[s.strategy], let reason = entry.refusal(kind, s.options) {
            p.append("sparsity.structure: strategy \(s.strategy) cannot use \(kind.rawValue): \(reason)")
        }
        return p
    }
}
