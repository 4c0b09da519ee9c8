/// MD5 (RFC 1321), used only to verify downloads against the checksums the dataset
/// authors publish. Not for security.
public struct MD5 {
    private var state: (UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476)
    private var buffer = [UInt8]()
    private var length: UInt64 = 0

    private static let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                           5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                           4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                           6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    /// `floor(|sin(i + 1)| · 2³²)`.
    private static let table: [UInt32] = (0..<64).map { i in
        UInt32(truncatingIfNeeded: Int64((abs(sinApprox(Double(i + 1))) * 4_294_967_296.0).rounded(.down)))
    }

    public init() {}

    /// Feeds more bytes.
    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        length &+= UInt64(bytes.count)
        buffer.append(contentsOf: bytes)
        var offset = 0
        while buffer.count - offset >= 64 {
            buffer.withUnsafeBufferPointer { p in process(UnsafeBufferPointer(rebasing: p[offset..<offset + 64])) }
            offset += 64
        }
        if offset > 0 { buffer.removeFirst(offset) }
    }

    /// The digest as 32 lowercase hexadecimal characters.
    public mutating func finalizeHex() -> String {
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        while (buffer.count + tail.count) % 64 != 56 { tail.append(0) }
        for i in 0..<8 { tail.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        let saved = length
        update(tail)
        length = saved
        var hex = ""
        for word in [state.0, state.1, state.2, state.3] {
            for i in 0..<4 {
                let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt32(i)))
                hex += String(byte >> 4, radix: 16) + String(byte & 0xf, radix: 16)
            }
        }
        return hex
    }

    /// MD5 of `bytes` as hexadecimal.
    public static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var h = MD5()
        h.update(bytes)
        return h.finalizeHex()
    }

    private mutating func process(_ block: UnsafeBufferPointer<UInt8>) {
        var m = [UInt32](repeating: 0, count: 16)
        for i in 0..<16 {
            m[i] = UInt32(block[4 * i]) | UInt32(block[4 * i + 1]) << 8
                | UInt32(block[4 * i + 2]) << 16 | UInt32(block[4 * i + 3]) << 24
        }
        var (a, b, c, d) = state
        for i in 0..<64 {
            var f: UInt32, g: Int
            switch i {
            case 0..<16: f = (b & c) | (~b & d); g = i
            case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
            case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
            default: f = c ^ (b | ~d); g = (7 * i) % 16
            }
            f = f &+ a &+ MD5.table[i] &+ m[g]
            a = d; d = c; c = b
            let s = MD5.shifts[i]
            b = b &+ ((f << s) | (f >> (32 - s)))
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d)
    }
}

import Foundation
private func sinApprox(_ x: Double) -> Double { sin(x) }
