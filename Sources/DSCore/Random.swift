import Foundation

/// SplitMix64: expands one 64-bit seed into a stream; used to seed `Xoshiro256`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna): the library's seeded generator.
///
/// There is no global random state anywhere in the library: every consumer is
/// handed a generator, so a seed reproduces a run exactly. The four state words are
/// public so checkpoints can save and restore them.
public struct Xoshiro256: RandomNumberGenerator, Equatable, Sendable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator seeded through SplitMix64, as the algorithm's authors recommend.
    public init(seed: UInt64) {
        var mix = SplitMix64(seed: seed)
        state = (mix.next(), mix.next(), mix.next(), mix.next())
    }

    public static func == (a: Xoshiro256, b: Xoshiro256) -> Bool {
        a.state == b.state
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A new generator whose stream is independent of this one's (seeded from it).
    public mutating func split() -> Xoshiro256 {
        Xoshiro256(seed: next())
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    @inlinable
    public mutating func uniformFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    @inlinable
    public mutating func uniformDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in `0..<bound` (Lemire's method without bias).
    @inlinable
    public mutating func index(below bound: Int) -> Int {
        precondition(bound > 0, "index(below:) needs a positive bound")
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A standard normal sample (Box–Muller; one of the pair is discarded so the
    /// stream position depends only on the number of calls).
    @inlinable
    public mutating func normal() -> Float {
        var u1 = uniformDouble()
        while u1 <= .leastNormalMagnitude { u1 = uniformDouble() }
        let u2 = uniformDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Fisher–Yates shuffle with this generator (the algorithm is fixed here so a seed
    /// gives the same order on every platform and Swift version).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = index(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }
}

