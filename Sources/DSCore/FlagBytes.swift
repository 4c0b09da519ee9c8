/// Masks are `[Bool]`, one byte per position holding 0 or 1. Loops that read `Bool`
/// elements do not vectorise (measured: counting 235k flags 1.7 ns per flag as `Bool`,
/// 0.08 ns as bytes), so hot loops read and write the same memory as bytes.
extension Array where Element == Bool {
    /// The flags as bytes (0 or 1).
    @inlinable
    public func withFlagBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try $0.withMemoryRebound(to: UInt8.self, body) }
    }

    /// The flags as bytes; `body` must store only 0 or 1.
    @inlinable
    public mutating func withMutableFlagBytes<R>(_ body: (UnsafeMutableBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try $0.withMemoryRebound(to: UInt8.self, body) }
    }

    /// `count` clear flags, zeroed in parts on the threads when long: each part's
    /// lines start in the cache of the thread that later reads that part of the
    /// layer (the row halves of a mask update's passes).
    public init(clearedInParts count: Int) {
        self.init(unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = UnsafeMutableRawPointer(buffer.baseAddress) {
                Parallel.forRanges(count, work: count) { part in
                    (base + part.lowerBound).initializeMemory(as: UInt8.self, repeating: 0, count: part.count)
                }
            }
            initialized = count
        }
    }

    /// Number of true flags.
    @inlinable
    public var trueCount: Int {
        withFlagBytes { b in
            var n = 0
            for x in b { n &+= Int(x) }
            return n
        }
    }
}

extension Bool {
    /// 1 or 0 without a branch: `condition ? 1 : 0` in a counting loop compiles to a
    /// branch and does not vectorise (measured 20x slower over 235k keys).
    @inlinable
    public var bit: Int { Int(unsafeBitCast(self, to: UInt8.self)) }
}
