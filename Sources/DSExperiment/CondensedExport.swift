import DSCore
import DSData
import DSLayers
import DSSparsity
import Foundation

/// A trained model's sparse layers in condensed form, written as `condensed.bin`.
///
/// Format (version 1): a `ChecksummedFile` with magic `DSTCOND1`. The JSON header
/// lists each layer (`name`, `inputFeatures`, `outputFeatures`, `fanIn`, `activeRows`
/// count, `indexBits` 16 or 32, and byte offsets of its arrays); the payload holds, per
/// layer, `values` (Float32 `[m, k]`), `indices` (UInt16 or Int32 `[m, k]`),
/// `activeRows` (Int32 `[m]`) and `bias` (Float32 `[outputFeatures]`), little-endian.
public struct CondensedExport {
    public static let fileName = "condensed.bin"

    struct LayerEntry: Codable {
        var name: String
        var inputFeatures: Int, outputFeatures: Int, fanIn: Int, activeRows: Int, indexBits: Int
        var valuesOffset: Int, indicesOffset: Int, rowsOffset: Int, biasOffset: Int
    }
    struct Header: Codable {
        var version = 1
        var model: String
        var layers: [LayerEntry]
    }

    /// The model's name in the registry.
    public var model: String
    /// Condensed layers by layer name (`layer1.0.conv1`, `fc1`).
    public var layers: [(name: String, layer: CondensedLinear)]

    /// Condenses every masked layer of `sparse`; a mask without constant fan-in is an
    /// error naming the layer and its rows. Dense layers stay dense.
    public init(model: String, trained: Sequential, sparse: SparseModel) throws {
        self.model = model
        let biases = Dictionary(uniqueKeysWithValues: trained.namedParameters()
            .filter { $0.parameter.role == .bias && $0.name.hasSuffix(".bias") }
            .map { (String($0.name.dropLast(".bias".count)), $0.parameter) })
        layers = try sparse.layers.compactMap { layer in
            guard let mask = layer.mask else { return nil }
            do {
                return (layer.name, try CondensedLinear(name: layer.name, weight: layer.parameter.value.storage, mask: mask,
                                                        bias: biases[layer.name]?.value.storage))
            } catch let e as SparsityError {
                throw RunError(e.message)
            }
        }
    }

    init(model: String, layers: [(name: String, layer: CondensedLinear)]) {
        self.model = model; self.layers = layers
    }

    public func write(to path: String) throws {
        var payload = Data(), entries: [LayerEntry] = []
        for (name, c) in layers {
            let valuesOffset = payload.count
            payload.append(c.values.bytes)
            let indicesOffset = payload.count
            let bits: Int
            switch c.indices {
            case .narrow(let a): payload.append(a.bytes); bits = 16
            case .wide(let a): payload.append(a.bytes); bits = 32
            }
            let rowsOffset = payload.count
            payload.append(c.activeRows.bytes)
            let biasOffset = payload.count
            payload.append(c.bias.bytes)
            entries.append(LayerEntry(name: name, inputFeatures: c.inputFeatures, outputFeatures: c.outputFeatures,
                                      fanIn: c.fanIn, activeRows: c.activeRows.count, indexBits: bits,
                                      valuesOffset: valuesOffset, indicesOffset: indicesOffset,
                                      rowsOffset: rowsOffset, biasOffset: biasOffset))
        }
        let header = try JSONEncoder().encode(Header(model: model, layers: entries))
        try FileReading.writeAtomically(ChecksummedFile.encode(magic: "DSTCOND1", header: header, payload: payload), to: path)
    }

    /// Reads and verifies an export; a damaged file is an error naming it.
    public static func read(_ path: String) throws -> CondensedExport {
        let (json, bytes) = try ChecksummedFile.decode(path, magic: "DSTCOND1", kind: "condensed export")
        guard let header = try? JSONDecoder().decode(Header.self, from: json), header.version == 1 else {
            throw RunError("\(path): unsupported or malformed condensed export header")
        }
        var layers: [(name: String, layer: CondensedLinear)] = []
        for e in header.layers {
            let n = e.activeRows * e.fanIn
            let end = e.biasOffset + e.outputFeatures * 4
            guard end <= bytes.count, e.indexBits == 16 || e.indexBits == 32 else {
                throw RunError("\(path): layer \(e.name) lies outside the file")
            }
            let indices: CondensedIndices = e.indexBits == 16
                ? .narrow([UInt16](bytes: bytes, offset: e.indicesOffset, count: n))
                : .wide([Int32](bytes: bytes, offset: e.indicesOffset, count: n))
            layers.append((e.name, CondensedLinear(
                inputFeatures: e.inputFeatures, outputFeatures: e.outputFeatures, fanIn: e.fanIn,
                activeRows: [Int32](bytes: bytes, offset: e.rowsOffset, count: e.activeRows),
                values: [Float](bytes: bytes, offset: e.valuesOffset, count: n), indices: indices,
                bias: [Float](bytes: bytes, offset: e.biasOffset, count: e.outputFeatures))))
        }
        return CondensedExport(model: header.model, layers: layers)
    }

    /// Makes the matching Linear and Conv2d layers of `model` run the condensed
    /// kernels (their weights and biases become the exported ones). Every exported layer must
    /// exist with its shape.
    public func install(into model: Sequential) throws {
        let byName = Dictionary(uniqueKeysWithValues: model.namedLayers().map { ($0.name, $0.layer) })
        for (name, c) in layers {
            switch byName[name] {
            case let linear as Linear where linear.inputFeatures == c.inputFeatures && linear.outputFeatures == c.outputFeatures:
                linear.kernel = CondensedWeightKernel(c, weight: linear.weight)
                linear.bias?.value.storage = c.bias
            case let conv as Conv2d where conv.weight.matrixShape == (c.outputFeatures, c.inputFeatures):
                conv.kernel = CondensedWeightKernel(c, weight: conv.weight)
                conv.bias?.value.storage = c.bias
            default:
                throw RunError("condensed layer \(name) (\(c.outputFeatures)×\(c.inputFeatures)) has no matching layer in \(self.model)")
            }
        }
    }
}
