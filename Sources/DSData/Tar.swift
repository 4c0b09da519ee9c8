/// A minimal reader for POSIX (ustar) tar archives: regular files only.
public enum Tar {
    /// The regular files in an uncompressed tar archive, as (path, bytes).
    public static func entries(_ archive: [UInt8], name: String) throws -> [(path: String, data: ArraySlice<UInt8>)] {
        var result: [(path: String, data: ArraySlice<UInt8>)] = []
        var offset = 0
        while offset + 512 <= archive.count {
            let header = archive[offset..<offset + 512]
            if header.allSatisfy({ $0 == 0 }) { return result }   // end-of-archive marker
            var stored: UInt32 = 0
            for b in header[(offset + 148)..<(offset + 156)] where b >= 0x30 && b <= 0x37 {
                stored = stored * 8 + UInt32(b - 0x30)
            }
            var sum: UInt32 = 0
            for (i, b) in header.enumerated() { sum += (i >= 148 && i < 156) ? 32 : UInt32(b) }
            guard sum == stored else { throw DataError("\(name): corrupt tar header at byte \(offset) (checksum)") }
            let size = octal(header[(offset + 124)..<(offset + 136)])
            let type = header[offset + 156]
            var path = text(header[offset..<(offset + 100)])
            let prefix = text(header[(offset + 345)..<(offset + 500)])
            if !prefix.isEmpty { path = prefix + "/" + path }
            let start = offset + 512
            guard start + size <= archive.count else {
                throw DataError("\(name): truncated tar archive (entry \(path) needs \(size) bytes)")
            }
            if type == 0x30 || type == 0 { result.append((path, archive[start..<(start + size)])) }
            offset = start + (size + 511) / 512 * 512
        }
        return result
    }

    private static func octal(_ bytes: ArraySlice<UInt8>) -> Int {
        var v = 0
        for b in bytes where b >= 0x30 && b <= 0x37 { v = v * 8 + Int(b - 0x30) }
        return v
    }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Builds an archive of regular files (for tests and fixtures).
    public static func archive(_ files: [(path: String, data: [UInt8])]) -> [UInt8] {
        var out = [UInt8]()
        for (path, data) in files {
            var header = [UInt8](repeating: 0, count: 512)
            let name = Array(path.utf8.prefix(100))
            header.replaceSubrange(0..<name.count, with: name)
            func put(_ value: Int, at offset: Int, width: Int) {
                let s = Array(String(value, radix: 8).utf8)
                let padded = [UInt8](repeating: 0x30, count: width - 1 - s.count) + s
                header.replaceSubrange(offset..<(offset + width - 1), with: padded)
            }
            put(0o644, at: 100, width: 8); put(0, at: 108, width: 8); put(0, at: 116, width: 8)
            put(data.count, at: 124, width: 12); put(0, at: 136, width: 12)
            header[156] = 0x30
            header.replaceSubrange(257..<263, with: Array("ustar\0".utf8))
            header.replaceSubrange(263..<265, with: [0x30, 0x30])
            for i in 148..<156 { header[i] = 32 }
            let sum = header.reduce(0) { $0 + Int($1) }
            put(sum, at: 148, width: 7); header[155] = 32
            out += header + data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }
}
