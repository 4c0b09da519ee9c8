/// Small vectorised reductions over raw buffers (several accumulators, since Swift
/// does not vectorise float reductions on its own), and the gather and scatter of a
/// sparse weight's active values.
public enum Vector {
    /// `Σ x[i]`.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i &+ 32 <= count {
            a0 += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            a1 += UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self)
            i &+= 32
        }
        if i &+ 16 <= count {
            a0 += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            i &+= 16
        }
        var s = (a0 + a1).sum()
        while i < count { s += x[i]; i &+= 1 }
        return s
    }

    /// `Σ x[i] · y[i]`.
    @inlinable
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        while i &+ 16 <= count {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
            acc.addProduct(a, b)
            i &+= 16
        }
        var s = acc.sum()
        while i < count { s += x[i] * y[i]; i &+= 1 }
        return s
    }

    /// `Σ (x[i] − mean)²`.
    @inlinable
    public static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, from mean: Float, count: Int) -> Float {
        let mv = SIMD16<Float>(repeating: mean)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i &+ 32 <= count {
            let d0 = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv
            let d1 = UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self) - mv
            a0.addProduct(d0, d0)
            a1.addProduct(d1, d1)
            i &+= 32
        }
        var s = (a0 + a1).sum()
        while i < count { let d = x[i] - mean; s += d * d; i &+= 1 }
        return s
    }

    /// `out[e] = source[positions[e]]` for every `e`: the active values of a sparse
    /// weight, and their optimizer state, read from the dense tensor. Each read is a
    /// cache line of its own, so many of them go on the threads.
    public static func gather(_ source: UnsafePointer<Float>, at positions: UnsafeBufferPointer<Int32>,
                              into out: UnsafeMutablePointer<Float>) {
        guard let p = positions.baseAddress else { return }
        Parallel.forRanges(positions.count, work: positions.count * 4) { r in
            for e in r { out[e] = source[Int(p[e])] }
        }
    }

    /// `target[positions[e]] = values[e]` for every `e` (the write of `gather`).
    public static func scatter(_ values: UnsafePointer<Float>, at positions: UnsafeBufferPointer<Int32>,
                               into target: UnsafeMutablePointer<Float>) {
        guard let p = positions.baseAddress else { return }
        Parallel.forRanges(positions.count, work: positions.count * 4) { r in
            for e in r { target[Int(p[e])] = values[e] }
        }
    }
}
