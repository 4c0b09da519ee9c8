import DSCore
import DSData
import DSLayers
import Foundation

/// The checks that need more than the config file: the dataset's headers, the model's
/// size, the model and its sparse layers built for real. `dst validate` and `dst run`
/// both run them, so they accept and refuse the same configs; every problem is
/// reported at once.
public enum RunPreflight {
    /// Memory a run may plan for: the machine's physical memory.
    public static var memoryLimit: Double { Double(ProcessInfo.processInfo.physicalMemory) }

    /// Throws a `ConfigError` naming `source` with every problem found, or the
    /// `DataError` of a dataset that cannot be described.
    @discardableResult
    public static func check(_ config: ExperimentConfig, source: String) throws -> DatasetShape? {
        var problems: [String] = []
        // A data problem (it names the file) stops here with its own error: the checks
        // below need the dataset's shape.
        let shape = try DatasetCatalog.describe(config.data.dataset, root: config.data.root)
        if config.data.validationSize >= shape.trainCount {
            problems.append("data.validation_size: \(config.data.validationSize) is not below the \(shape.trainCount) "
                            + "training samples of \(config.data.dataset)")
        }
        let input = ModelInput(channels: shape.channels, height: shape.height, width: shape.width, classes: shape.classes)
        if let size = ModelRegistry.size(config.model.name, input: input, options: config.modelOptions) {
            let bytes = size.trainingBytes(batchSize: max(config.training.batchSize, config.training.evalBatchSize))
            if bytes > memoryLimit {
                problems.append("model: \(config.model.name) (\(describe(config.model))) on \(shape.height)x\(shape.width) "
                                + "images would need about \(bytesText(bytes)) of memory "
                                + "(\(countText(size.parameters)) parameters, \(countText(size.activationsPerSample)) "
                                + "activation values per sample); this machine has \(bytesText(memoryLimit))")
                throw ConfigError(source: source, problems: problems)
            }
        }
        do {
            var rng = Xoshiro256(seed: config.seed)
            let model = try ModelRegistry.build(config.model.name, input: input, options: config.modelOptions, rng: &rng)
            _ = try config.makeSparseModel(model, parameters: model.namedParameters().map(\.parameter),
                                           totalSteps: 1, rng: &rng)
        } catch let error as RunError {
            problems.append(error.message)
        } catch {
            problems.append("model: \(error)")
        }
        guard problems.isEmpty else { throw ConfigError(source: source, problems: problems) }
        return shape
    }

    static func describe(_ model: ModelConfig) -> String {
        model.name == "mlp" ? "hidden \(model.hidden)" : "width_multiplier \(model.widthMultiplier)"
    }

    static func bytesText(_ bytes: Double) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = bytes, unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return value >= 1e6 ? String(format: "%.2e bytes", bytes) : String(format: "%.1f ", value) + units[unit]
    }

    static func countText(_ count: Double) -> String {
        count < 1e6 ? String(format: "%.0f", count) : String(format: "%.3g", count)
    }
}
