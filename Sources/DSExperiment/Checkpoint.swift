import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining
import Foundation

/// A run's complete training state after an epoch, written atomically to
/// `<run>/checkpoint.bin` so an interrupted run resumes exactly.
///
/// Format (version 1): a `ChecksummedFile` with magic `DSTCKPT1` whose payload is the
/// Float32 values the JSON header indexes.
public struct Checkpoint {
    public static let fileName = "checkpoint.bin"

    struct Header: Codable {
        var version = 1
        var epoch: Int
        var step: Int
        /// Resolved config the run was started with.
        var config: String
        /// Name → (offset, count) in the payload, in floats.
        var tensors: [String: [Int]]
        /// Generator states: `data`, `sparsity`, `dropout:<layer path>`.
        var generators: [String: [UInt64]]
        var adamSteps: Int?
        var accumulatedPasses: [String: Int]
        /// MD5 of `config`, so a resume can tell at once whether its config is the one
        /// the checkpoint was made with.
        var configFingerprint: String?
        /// Rows of `metrics.csv` and `sparsity.csv` written up to this checkpoint, so a
        /// resume notices a table that was deleted or truncated since.
        var metricsRows: Int?
        var sparsityRows: Int?
    }

    public var epoch: Int
    public var step: Int
    public var config: String
    var header: Header
    var payload: [Float]

    /// The values of tensor `name`, or nil when the checkpoint lacks it.
    func tensor(_ name: String) -> [Float]? {
        guard let entry = header.tensors[name], entry.count == 2 else { return nil }
        return Array(payload[entry[0]..<(entry[0] + entry[1])])
    }

    // MARK: Capture and restore

    /// Captures the trainer, model, masks and generators after `epoch`.
    static func capture(epoch: Int, config: String, trainer: Trainer, sparse: SparseModel,
                        dataRNG: Xoshiro256, sparsityRNG: Xoshiro256, tableRows: (metrics: Int, sparsity: Int)) -> Checkpoint {
        var tensors: [String: [Int]] = [:]
        var payload: [Float] = []
        func add(_ name: String, _ values: [Float]) {
            tensors[name] = [payload.count, values.count]
            payload += values
        }
        let model = trainer.model
        for (name, p) in model.namedParameters() { add("param:" + name, p.value.storage) }
        for (name, b) in model.namedBuffers() { add("buffer:" + name, b.value.storage) }
        for (i, _) in trainer.optimizer.parameters.enumerated() {
            for state in trainer.optimizer.stateNames {
                add("optimizer:\(state):\(i)", trainer.optimizer.state(state, parameter: i).storage)
            }
        }
        var passes: [String: Int] = [:]
        for layer in sparse.layers {
            let saved = layer.savedState
            if let mask = saved.mask { add("mask:" + layer.name, mask.active.map { $0 ? 1 : 0 }) }
            add("ever:" + layer.name, saved.everActive.map { $0 ? 1 : 0 })
            if saved.accumulatedPasses > 0 {
                add("accumulated:" + layer.name, saved.accumulatedGradient)
                passes[layer.name] = saved.accumulatedPasses
            }
        }
        func words(_ g: Xoshiro256) -> [UInt64] { [g.state.0, g.state.1, g.state.2, g.state.3] }
        var generators = ["data": words(dataRNG), "sparsity": words(sparsityRNG)]
        for (path, layer) in model.namedLayers() {
            if let dropout = layer as? Dropout { generators["dropout:" + path] = words(dropout.rng) }
        }
        let header = Header(epoch: epoch, step: trainer.step, config: config, tensors: tensors,
                            generators: generators, adamSteps: (trainer.optimizer as? AdamW)?.stepCount,
                            accumulatedPasses: passes, configFingerprint: fingerprint(config),
                            metricsRows: tableRows.metrics, sparsityRows: tableRows.sparsity)
        return Checkpoint(epoch: epoch, step: trainer.step, config: config, header: header, payload: payload)
    }

    /// Puts the saved state back into a freshly prepared session.
    func restore(into trainer: Trainer, sparse: SparseModel, dataRNG: inout Xoshiro256,
                 sparsityRNG: inout Xoshiro256, source: String) throws {
        func need(_ name: String, count: Int) throws -> [Float] {
            guard let values = tensor(name), values.count == count else {
                throw RunError("\(source): checkpoint lacks \(name) of \(count) values (a different model?)")
            }
            return values
        }
        let model = trainer.model
        for (name, p) in model.namedParameters() { p.value.storage = try need("param:" + name, count: p.value.count) }
        for (name, b) in model.namedBuffers() { b.value.storage = try need("buffer:" + name, count: b.value.count) }
        for (i, p) in trainer.optimizer.parameters.enumerated() {
            for state in trainer.optimizer.stateNames {
                let values = try need("optimizer:\(state):\(i)", count: p.value.count)
                trainer.optimizer.setState(state, parameter: i, Tensor(shape: p.value.shape, values: values))
            }
        }
        if let adam = trainer.optimizer as? AdamW { adam.stepCount = header.adamSteps ?? 0 }
        for layer in sparse.layers {
            let count = layer.parameter.value.count
            let mask = layer.mask == nil ? nil
                : SparseMask(rows: layer.rows, columns: layer.columns,
                             active: try need("mask:" + layer.name, count: count).map { $0 != 0 })
            let passes = header.accumulatedPasses[layer.name] ?? 0
            layer.restore(mask: mask, everActive: try need("ever:" + layer.name, count: count).map { $0 != 0 },
                          accumulatedGradient: passes > 0 ? try need("accumulated:" + layer.name, count: count) : [],
                          accumulatedPasses: passes)
        }
        sparse.chooseKernelsForRestoredMasks()
        func generator(_ key: String) throws -> Xoshiro256 {
            guard let w = header.generators[key], w.count == 4 else {
                throw RunError("\(source): checkpoint lacks the \(key) generator state")
            }
            var g = Xoshiro256(seed: 0)
            g.state = (w[0], w[1], w[2], w[3])
            return g
        }
        dataRNG = try generator("data")
        sparsityRNG = try generator("sparsity")
        for (path, layer) in model.namedLayers() {
            if let dropout = layer as? Dropout { dropout.rng = try generator("dropout:" + path) }
        }
        trainer.restore(step: step)
    }

    /// The fingerprint of a rendered config.
    static func fingerprint(_ config: String) -> String { MD5.hex(Data(config.utf8)) }

    /// Throws unless `config` is the config this checkpoint was made with, listing the
    /// keys that differ (a config edited since the run began, or a checkpoint copied
    /// from another run).
    func checkConfig(_ config: String, source: String) throws {
        let saved = header.configFingerprint ?? Checkpoint.fingerprint(self.config)
        guard saved != Checkpoint.fingerprint(config) else { return }
        throw ConfigLoader.resumeRefusal(saved: self.config, current: config, source: source, madeBy: "the checkpoint")
    }

    // MARK: Bytes

    func encoded() throws -> Data {
        ChecksummedFile.encode(magic: "DSTCKPT1", header: try JSONEncoder().encode(header), payload: payload.bytes)
    }

    /// Writes the checkpoint into `folder` atomically.
    func write(to folder: String) throws {
        try FileReading.writeAtomically(encoded(), to: folder + "/" + Checkpoint.fileName)
    }

    /// Reads and verifies `path`; a damaged file is an error naming it.
    static func read(_ path: String) throws -> Checkpoint {
        let (json, bytes) = try ChecksummedFile.decode(path, magic: "DSTCKPT1", kind: "checkpoint")
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: json)
        } catch {
            throw RunError("\(path): malformed checkpoint header: \(error)")
        }
        guard header.version == 1 else { throw RunError("\(path): checkpoint version \(header.version) is not supported") }
        guard bytes.count % 4 == 0 else { throw RunError("\(path): malformed checkpoint payload") }
        let payload = [Float](bytes: bytes, offset: 0, count: bytes.count / 4)
        return Checkpoint(epoch: header.epoch, step: header.step, config: header.config, header: header, payload: payload)
    }
}
