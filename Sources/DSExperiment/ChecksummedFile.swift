import DSData
import Foundation

/// The container of the library's binary files (checkpoints, condensed exports):
/// an 8-byte magic, a little-endian UInt32 header length, a JSON header, a payload,
/// then the 32-character hexadecimal MD5 of everything before it.
enum ChecksummedFile {
    static func encode(magic: String, header: Data, payload: Data) -> Data {
        var out = Data(magic.utf8)
        var length = UInt32(header.count).littleEndian
        out.append(Data(bytes: &length, count: 4))
        out.append(header)
        out.append(payload)
        out.append(Data(MD5.hex(out).utf8))
        return out
    }

    /// The header and payload of `path`, verified; errors name the file and the fault.
    static func decode(_ path: String, magic: String, kind: String) throws -> (header: Data, payload: [UInt8]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw RunError("\(path): cannot read") }
        let bytes = [UInt8](data)
        guard bytes.count > 12 + 32, Array(bytes[0..<8]) == Array(magic.utf8) else {
            throw RunError("\(path): not a DynamicSparse \(kind)")
        }
        let body = bytes[0..<(bytes.count - 32)]
        guard String(decoding: bytes[(bytes.count - 32)...], as: UTF8.self) == MD5.hex(body) else {
            throw RunError("\(path): checksum mismatch (the file is damaged or truncated)")
        }
        let length = Int(UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24)
        guard 12 + length <= body.count else { throw RunError("\(path): malformed \(kind) header") }
        return (Data(bytes[12..<(12 + length)]), Array(bytes[(12 + length)..<body.count]))
    }
}

extension Array where Element: BitwiseCopyable {
    /// The elements' bytes (host order: little-endian on every supported machine).
    var bytes: Data { withUnsafeBytes { Data($0) } }

    /// Elements read back from `bytes[offset..<offset + count·stride]`.
    init(bytes: [UInt8], offset: Int, count: Int) {
        self = [Element](unsafeUninitializedCapacity: count) { buffer, n in
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + count * MemoryLayout<Element>.stride)]))
            }
            n = count
        }
    }
}
