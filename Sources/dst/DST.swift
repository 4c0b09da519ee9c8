import ArgumentParser
import DSCore
import DSData
import DSExperiment
import DSSparsity
import DSLayers
import Foundation

@main
enum DSTMain {
    static func main() {
        BLASCoreSelection.prepare()   // may re-execute with a better OpenBLAS core
        DST.main()
    }
}

struct DST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dst",
        abstract: "Dynamic sparse training experiments on the CPU.",
        subcommands: [Run.self, Resume.self, Validate.self, Compare.self, Export.self, Eval.self, Models.self,
                      Strategies.self, DataCommand.self, Info.self])
}

/// Prints a library error plainly and exits non-zero (the library never exits):
/// 2 for a bad config, 3 for a data problem, 4 for a run that diverged, 5 for a run
/// folder held by another process, 1 for anything else.
func reportingErrors(_ body: () throws -> Void) throws {
    func fail(_ error: Error, _ code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        return ExitCode(code)
    }
    do {
        try body()
    } catch let error as ConfigError {
        throw fail(error, 2)
    } catch let error as DataError {
        throw fail(error, 3)
    } catch let error as RunDiverged {
        throw fail(error, 4)
    } catch let error as RunFolderBusy {
        throw fail(error, 5)
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error, 1)
    }
}

/// Prints notes on what a config leaves to defaults, before anything else.
func printNotes(_ notes: [String]) {
    for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train the experiment described by a YAML config.")

    @Argument(help: "The YAML config file.") var config: String
    @Option(name: .customLong("set"), help: "Override a config value, e.g. --set training.epochs=3 (repeatable).")
    var overrides: [String] = []
    @Flag(help: "Replace an existing run folder of the same name.") var force = false
    @Flag(help: "Continue an interrupted run of the same config from its last checkpoint.") var resume = false
    @Option(help: .hidden) var killAfterSteps: Int?

    func run() throws {
        try reportingErrors {
            let (cfg, notes) = try ConfigLoader.loadWithNotes(file: config, overrides: overrides)
            printNotes(notes)
            guard !(force && resume) else { throw RunError("--force and --resume exclude each other") }
            try ExperimentRun(config: cfg, source: config).run(force: force, resume: resume, events: handler(killAfterSteps))
        }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue an interrupted run from its folder.")

    @Argument(help: "The run folder (holding config.yaml).") var runDirectory: String
    @Option(help: .hidden) var killAfterSteps: Int?

    func run() throws {
        try reportingErrors {
            let folder = runDirectory.hasSuffix("/") ? String(runDirectory.dropLast()) : runDirectory
            guard FileManager.default.fileExists(atPath: folder) else { throw RunError("\(folder): no such run folder") }
            let cfg = try ConfigLoader.loadRunConfig(folder: folder)
            try ExperimentRun(config: cfg, folder: folder, source: folder + "/config.yaml")
                .run(resume: true, events: handler(killAfterSteps))
        }
    }
}

/// The progress printer; with `killAfterSteps` (a hidden fault-injection option for
/// tests) the process kills itself with SIGKILL once that many steps have run, as a
/// crash or an out-of-time batch job would.
func handler(_ killAfterSteps: Int?) -> (RunEvent) -> Void {
    let printer = ProgressPrinter()
    return { event in
        printer.handle(event)
        if let limit = killAfterSteps, case let .batch(progress) = event, progress.step >= limit {
            kill(getpid(), SIGKILL)
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a config as `dst run` would (dataset headers, model size, sparse layers) and print it fully resolved.")

    @Argument(help: "The YAML config file.") var config: String
    @Option(name: .customLong("set"), help: "Override a config value (repeatable).") var overrides: [String] = []
    @Flag(help: "Check the file alone, without the dataset and the model (e.g. where the data is not present).")
    var configOnly = false

    func run() throws {
        try reportingErrors {
            let (cfg, notes) = try ConfigLoader.loadWithNotes(file: config, overrides: overrides)
            printNotes(notes)
            if !configOnly { try RunPreflight.check(cfg, source: config) }
            print(ConfigLoader.render(cfg), terminator: "")
        }
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare run folders: accuracy mean ± std over seeds per strategy and sparsity.")

    @Argument(help: "Run folders, or folders holding run folders.") var results: [String]
    @Flag(help: "Print CSV instead of a markdown table.") var csv = false

    func run() throws {
        try reportingErrors {
            var folders: [String] = []
            let fm = FileManager.default
            for path in results {
                let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
                if fm.fileExists(atPath: trimmed + "/config.yaml") {
                    folders.append(trimmed)
                } else if let children = try? fm.contentsOfDirectory(atPath: trimmed) {
                    folders += children.sorted().filter { !$0.hasPrefix(".") }.map { trimmed + "/" + $0 }
                        .filter { fm.fileExists(atPath: $0 + "/config.yaml") }
                } else {
                    throw RunError("\(path): no such run folder")
                }
            }
            let runs = try folders.map(RunComparison.read)
            print(csv ? RunComparison.csv(runs) : RunComparison.markdown(runs), terminator: "")
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a trained run's sparse layers in condensed form (RUN_DIR/condensed.bin).")

    @Argument(help: "The run folder.") var runDirectory: String

    func run() throws {
        try reportingErrors {
            let trained = try TrainedRun(folder: runDirectory)
            let export = try CondensedExport(model: trained.config.model.name, trained: trained.model, sparse: trained.sparse)
            let path = trained.folder + "/" + CondensedExport.fileName
            try export.write(to: path)
            let weights = export.layers.reduce(0) { $0 + $1.layer.values.count }
            print("wrote \(path): \(export.layers.count) condensed layers, \(weights) weights")
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained run on its test split; --condensed also runs the condensed export and compares.")

    @Argument(help: "The run folder.") var runDirectory: String
    @Flag(help: "Also evaluate through RUN_DIR/condensed.bin and check it matches the masked dense model.")
    var condensed = false
    @Option(help: "Also report the median batch-1 latency over this many test images.") var latency = 0

    func run() throws {
        try reportingErrors {
            let trained = try TrainedRun(folder: runDirectory)
            let start = Date()
            let dense = trained.evaluate()
            print(String(format: "masked dense: test loss %.6f, test accuracy %.4f (%.2f s)",
                         dense.result.loss, dense.result.accuracy, Date().timeIntervalSince(start)))
            if latency > 0 {
                print(String(format: "masked dense: batch-1 latency %.1f µs (median of %d)",
                             trained.batchOneLatency(samples: latency) * 1e6, latency))
            }
            guard condensed else { return }
            try CondensedExport.read(trained.folder + "/" + CondensedExport.fileName).install(into: trained.model)
            let t = Date()
            let fast = trained.evaluate()
            let scale = max(dense.logits.map { abs($0) }.max() ?? 1, 1e-12)
            let diff = (zip(dense.logits, fast.logits).map { abs($0 - $1) }.max() ?? 0) / scale
            print(String(format: "condensed:    test loss %.6f, test accuracy %.4f (%.2f s); max relative logit difference %.2e",
                         fast.result.loss, fast.result.accuracy, Date().timeIntervalSince(t), diff))
            if latency > 0 {
                print(String(format: "condensed:    batch-1 latency %.1f µs (median of %d)",
                             trained.batchOneLatency(samples: latency) * 1e6, latency))
            }
            guard diff <= 1e-4, fast.result.accuracy == dense.result.accuracy else {
                throw RunError("the condensed model's outputs differ from the masked dense model's")
            }
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the CPU, the BLAS library and kernels in use, the thread count and a measured sgemm speed.")

    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let record = EnvironmentRecord.current(event: "info", threads: Parallel.processors)
        if json { print(record.json()); return }
        var chooser = record.blasCoreSelectedBy
        if let replaced = record.blasLibraryCore { chooser += " (the library had chosen \(replaced))" }
        print("""
            cpu:        \(record.cpuModel.isEmpty ? "unknown" : record.cpuModel)
            features:   \(record.cpuFeatures.joined(separator: " "))
            blas:       \(record.blasLibrary) \(record.blasVersion), core \(record.blasCore), chosen by \(chooser)
            threads:    \(record.threads)
            sgemm:      \(String(format: "%.1f", record.sgemmGflops)) GFLOP/s (1 thread, 768³)
            version:    \(record.projectVersion)\(record.gitCommit.map { " (\($0.prefix(12)))" } ?? "")
            """)
        for rejected in record.blasRejectedCores { print("rejected:   \(rejected)") }
        if record.blasFallback {
            print("warning:    the BLAS core is weaker than this CPU supports; unset OPENBLAS_CORETYPE (and DST_BLAS_AUTOSELECT) to let dst select a better one")
        }
    }
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the registered models.")
    func run() throws {
        for name in ModelRegistry.names { print(name) }
    }
}

struct Strategies: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the sparsity strategies, their default mask structure and the structures each refuses.")
    func run() throws {
        print("dense: no masks")
        for name in StrategyRegistry.entries.keys.sorted() {
            let entry = StrategyRegistry.entries[name]!
            print("\(name): \(entry.summary) (default structure: \(entry.defaultStructure.rawValue))")
            for kind in MaskStructureKind.allCases {
                if let reason = entry.refusal(kind, StrategyOptionSections()) { print("  not \(kind.rawValue): \(reason)") }
            }
        }
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Manage datasets.",
                                                    subcommands: [Get.self])

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a dataset (\(DatasetCatalog.names.joined(separator: ", "))) with checksum verification.")

        @Argument(help: "Dataset name.") var name: String
        @Option(help: "Folder that receives <root>/<name>/.") var root = "data"
        @Option(help: "Base URL to fetch from instead of the canonical one (a mirror).") var mirror: String?

        func run() throws {
            try reportingErrors {
                try Downloader(root: root, baseURL: mirror, log: { print($0) }).fetch(name)
            }
        }
    }
}
