import CZlib
import Foundation

/// Reads whole files, decompressing gzip transparently.
public enum FileReading {
    /// The bytes of `path`; if the file starts with the gzip magic `1f 8b` it is
    /// inflated. A truncated or corrupt gzip stream is an error naming the file.
    public static func contents(of path: String) throws -> [UInt8] {
        if let problem = FileSystem.readProblem(path) { throw DataError("\(path): cannot read: \(problem)") }
        let raw: Data
        do { raw = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataError("\(path): cannot read: \(error.localizedDescription)")
        }
        guard raw.count >= 2, raw[raw.startIndex] == 0x1f, raw[raw.startIndex + 1] == 0x8b else {
            return [UInt8](raw)
        }
        return try gunzip([UInt8](raw), name: path)
    }

    /// The first `count` bytes of `path` (fewer if the file is shorter), inflated when
    /// the file is gzip-compressed; reads only as much as it needs.
    public static func head(of path: String, count: Int) throws -> [UInt8] {
        if let problem = FileSystem.readProblem(path) { throw DataError("\(path): cannot read: \(problem)") }
        guard let file = gzopen(path, "rb") else { throw DataError("\(path): cannot open") }
        defer { gzclose(file) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32(count)) }
        guard n >= 0 else { throw DataError("\(path): corrupt gzip data at its start") }
        return Array(buffer[0..<Int(n)])
    }

    /// Inflates a complete gzip stream (several members are concatenated).
    public static func gunzip(_ input: [UInt8], name: String) throws -> [UInt8] {
        var stream = z_stream()
        var status = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw DataError("\(name): zlib could not start (code \(status))") }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 4)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var input = input
        try input.withUnsafeMutableBufferPointer { inBuf in
            stream.next_in = inBuf.baseAddress
            stream.avail_in = uInt(inBuf.count)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END && stream.avail_in > 0 {
                    status = inflateReset(&stream)   // next gzip member
                    continue
                }
                if status == Z_STREAM_END { break }
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    throw DataError("\(name): truncated gzip stream (ends after \(output.count) bytes of data)")
                }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    let detail = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                    throw DataError("\(name): corrupt gzip data: \(detail)")
                }
            } while true
        }
        return output
    }

    /// Compresses `input` as one gzip member (used to write fixtures and caches).
    public static func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        let status = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                   Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "zlib deflateInit2 failed with code \(status)")
        defer { deflateEnd(&stream) }
        var input = input
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        let written: Int = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                let result = deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "zlib deflate did not finish (code \(result))")
                return outBuf.count - Int(stream.avail_out)
            }
        }
        return Array(output[0..<written])
    }

    /// Writes `data` to `path` atomically (see `FileSystem.writeAtomically`).
    public static func writeAtomically(_ data: Data, to path: String) throws {
        try FileSystem.writeAtomically(data, to: path)
    }
}
