/// Small vectorised reductions over raw buffers (several accumulators, since Swift
/// does not vectorise float reductions on its own).
public enum Vector {
    /// `Σ x[i]`.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        while i &+ 16 <= count {
            acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            i &+= 16
        }
        var s = acc.sum()
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
}
