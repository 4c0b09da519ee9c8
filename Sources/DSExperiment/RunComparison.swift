import DSSparsity
import Foundation

/// One run folder as `dst compare` reads it.
public struct RunSummary: Equatable {
    public var folder: String
    /// Strategy label (`srigl (no ablation)` when ablation is off), model and dataset.
    public var strategy: String
    public var model: String
    public var dataset: String
    public var targetSparsity: Double
    public var seed: UInt64
    public var epochsPlanned: Int
    public var epochsDone: Int
    public var finalTestAccuracy: Double?
    public var bestTestAccuracy: Double?
    public var realisedSparsity: Double?
    public var ablatedNeurons: Double?
    public var wallSeconds: Double?
    /// Why training stopped, for a run that diverged (`diverged.txt`).
    public var diverged: String? = nil
    /// The OpenBLAS cores the run trained with (`environment.json`; one per start or resume).
    public var blasCores: [String] = []
    public var finished: Bool { diverged == nil && epochsDone >= epochsPlanned && finalTestAccuracy != nil }
}

/// Reads run folders and aggregates them over seeds (`dst compare`).
public enum RunComparison {
    /// Reads one run folder; a folder without a readable `config.yaml` or `metrics.csv`
    /// is an error naming the file.
    public static func read(_ folder: String) throws -> RunSummary {
        let config: ExperimentConfig
        do {
            config = try ConfigLoader.loadRunConfig(folder: folder)
        } catch let e as ConfigError {
            throw RunError("\(folder): not a run folder (\(e.description))")
        }
        // A run that has not finished an epoch yet may have no metrics.csv.
        let (header, rows) = CSVTable.read(folder + "/metrics.csv") ?? ([], [])
        func column(_ name: String) -> [Double]? {
            guard header.contains(name) else { return nil }
            return rows.compactMap { Double($0[name] ?? "") }
        }
        let strategy = label(config.sparsity)
        let accuracies = column("test_acc")
        return RunSummary(
            folder: folder, strategy: strategy, model: config.model.name, dataset: config.data.dataset,
            targetSparsity: config.sparsity.strategy == "dense" ? 0 : config.sparsity.sparsity,
            seed: config.seed, epochsPlanned: config.training.epochs, epochsDone: rows.count,
            finalTestAccuracy: accuracies?.last, bestTestAccuracy: accuracies?.max(),
            realisedSparsity: column("sparsity")?.last, ablatedNeurons: column("ablated_neurons")?.last,
            wallSeconds: column("epoch_seconds").map { $0.reduce(0, +) },
            diverged: (try? String(contentsOfFile: folder + "/" + ExperimentRun.divergedFileName, encoding: .utf8))
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) },
            blasCores: EnvironmentRecord.read(folder).map(\.blasCore))
    }

    /// The strategy as `dst compare` names it: the registry name, then what sets the run
    /// apart from the strategy's defaults (`rigl (2:4)`, `rigl (uniform)`, `srigl (no
    /// ablation)`, `static (constant_fan_in, snip)`; N:M implies uniform).
    public static func label(_ s: SparsityConfig) -> String {
        guard s.strategy != "dense" else { return s.strategy }
        var notes: [String] = []
        if s.resolvedStructure == MaskStructureKind.nOfM.rawValue {
            notes.append("\(s.n):\(s.m)")
        } else {
            if s.resolvedStructure != SparsityConfig.defaultStructure(for: s.strategy) { notes.append(s.resolvedStructure) }
            if s.distribution != SparsityConfig().distribution { notes.append(s.distribution) }
        }
        if s.strategy == "srigl" && !s.options.srigl.ablation { notes.append("no ablation") }
        if s.strategy == "static" && s.options.staticMask.initMask != StaticStrategy.Options().initMask {
            notes.append(s.options.staticMask.initMask)
        }
        return notes.isEmpty ? s.strategy : s.strategy + " (" + notes.joined(separator: ", ") + ")"
    }

    /// Mean and sample standard deviation (0 for a single value).
    public static func meanStd(_ xs: [Double]) -> (mean: Double, std: Double)? {
        guard !xs.isEmpty else { return nil }
        let mean = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return (mean, 0) }
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count - 1)
        return (mean, variance.squareRoot())
    }

    /// One row per (model, dataset, strategy, sparsity) over the finished runs.
    public struct Group: Equatable {
        public var model: String, dataset: String, strategy: String, sparsity: Double
        public var runs: [RunSummary]
    }

    public static func groups(_ runs: [RunSummary]) -> [Group] {
        var order: [String] = []
        var byKey: [String: Group] = [:]
        for run in runs where run.finished {
            let key = "\(run.model)|\(run.dataset)|\(run.strategy)|\(run.targetSparsity)"
            if byKey[key] == nil {
                order.append(key)
                byKey[key] = Group(model: run.model, dataset: run.dataset, strategy: run.strategy,
                                   sparsity: run.targetSparsity, runs: [])
            }
            byKey[key]!.runs.append(run)
        }
        return order.map { byKey[$0]! }.sorted {
            ($0.model, $0.dataset, $0.sparsity, $0.strategy) < ($1.model, $1.dataset, $1.sparsity, $1.strategy)
        }
    }

    static let columns = ["model", "dataset", "strategy", "sparsity", "final_test_acc", "final_test_acc_std",
                          "best_test_acc", "best_test_acc_std", "seeds", "realised_sparsity", "ablated_neurons",
                          "wall_minutes"]

    /// The comparison as a markdown table (accuracies in percent), then the runs that
    /// did not finish.
    public static func markdown(_ runs: [RunSummary]) -> String {
        func pct(_ xs: [Double?]) -> String {
            guard let m = meanStd(xs.compactMap { $0 }) else { return "n/a" }
            return String(format: "%.2f ± %.2f", 100 * m.mean, 100 * m.std)
        }
        func plain(_ xs: [Double?], _ format: String) -> String {
            guard let m = meanStd(xs.compactMap { $0 }) else { return "n/a" }
            return String(format: format, m.mean)
        }
        var out = ["| model | dataset | strategy | sparsity | final test acc (%) | best test acc (%) | seeds | realised sparsity | ablated neurons | wall time (min) |",
                   "|---|---|---|---|---|---|---|---|---|---|"]
        for g in groups(runs) {
            out.append("| \(g.model) | \(g.dataset) | \(g.strategy) | \(String(format: "%.2f", g.sparsity)) | "
                       + "\(pct(g.runs.map(\.finalTestAccuracy))) | \(pct(g.runs.map(\.bestTestAccuracy))) | "
                       + "\(g.runs.count) | \(plain(g.runs.map(\.realisedSparsity), "%.4f")) | "
                       + "\(plain(g.runs.map(\.ablatedNeurons), "%.1f")) | "
                       + "\(plain(g.runs.map { $0.wallSeconds.map { $0 / 60 } }, "%.1f")) |")
        }
        for g in groups(runs) {
            let cores = g.runs.map { Set($0.blasCores).sorted().joined(separator: "+") }
            guard Set(cores).count > 1 else { continue }
            let counts = Dictionary(grouping: cores, by: { $0 }).map { "\($0.key.isEmpty ? "unrecorded" : $0.key) (\($0.value.count))" }
            out.append("")
            out.append("Note: \(g.model) / \(g.dataset) / \(g.strategy) / \(String(format: "%.2f", g.sparsity)) mixes BLAS cores: "
                       + counts.sorted().joined(separator: ", ") + "; wall times are not comparable.")
        }
        let diverged = runs.filter { $0.diverged != nil }
        if !diverged.isEmpty {
            out.append("")
            out.append("Diverged (not averaged in):")
            for r in diverged {
                out.append("- \(r.folder): \(r.diverged!) (\(r.epochsDone)/\(r.epochsPlanned) epochs done)")
            }
        }
        let unfinished = runs.filter { !$0.finished && $0.diverged == nil }
        if !unfinished.isEmpty {
            out.append("")
            out.append("Not finished (not averaged in):")
            for r in unfinished {
                out.append("- \(r.folder): \(r.epochsDone)/\(r.epochsPlanned) epochs")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// The comparison as CSV (accuracies as fractions), finished runs only.
    public static func csv(_ runs: [RunSummary]) -> String {
        func ms(_ xs: [Double?]) -> (String, String) {
            guard let m = meanStd(xs.compactMap { $0 }) else { return ("", "") }
            return (String(format: "%.6g", m.mean), String(format: "%.6g", m.std))
        }
        var out = [columns.joined(separator: ",")]
        for g in groups(runs) {
            let f = ms(g.runs.map(\.finalTestAccuracy)), b = ms(g.runs.map(\.bestTestAccuracy))
            out.append([g.model, g.dataset, g.strategy, String(g.sparsity), f.0, f.1, b.0, b.1, String(g.runs.count),
                        ms(g.runs.map(\.realisedSparsity)).0, ms(g.runs.map(\.ablatedNeurons)).0,
                        ms(g.runs.map { $0.wallSeconds.map { $0 / 60 } }).0].joined(separator: ","))
        }
        return out.joined(separator: "\n") + "\n"
    }
}
