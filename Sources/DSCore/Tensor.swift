/// A dense Float32 tensor: a shape and contiguous row-major storage.
///
/// Image activations use the channel-major layout `[C, N, H, W]` throughout the
/// library (see `DSLayers`), so that one GEMM covers a whole batch of a convolution
/// and each channel's values are contiguous for batch normalisation.
public struct Tensor: Equatable, Sendable {
    /// Extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    /// Row-major values; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// A tensor of `shape` with every element equal to `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape \(shape) has a negative extent")
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of `shape` whose values are left unset, for outputs that a kernel
    /// overwrites completely (skips zero-filling large buffers).
    public init(uninitializedShape shape: [Int]) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.storage = [Float](unsafeUninitializedCapacity: count) { _, n in n = count }
    }

    /// A tensor of `shape` holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *),
                     "Tensor: \(values.count) values do not fill shape \(shape)")
        self.shape = shape
        self.storage = values
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }

    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// The same values viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, values: storage)
    }

    /// Reinterprets the shape in place (element count must not change).
    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == storage.count,
                     "reshape: \(shape) cannot become \(newShape)")
        shape = newShape
    }

    /// Element at a multi-dimensional index (slow; for tests and small code paths).
    public subscript(_ index: Int...) -> Float {
        get { storage[offset(index)] }
        set { storage[offset(index)] = newValue }
    }

    private func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var flat = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) out of bounds for shape \(shape)")
            flat = flat * extent + i
        }
        return flat
    }

    /// Sets every element to zero, keeping the shape.
    public mutating func zero() {
        storage.withUnsafeMutableBufferPointer { p in
            p.update(repeating: 0)
        }
    }
}

extension Tensor {
    /// Swaps the two outer dimensions of a tensor viewed as `[a, b, rest...]`,
    /// giving `[b, a, rest...]`. Used to move between `[N, C, H, W]` and `[C, N, H, W]`.
    public func swappingOuterAxes() -> Tensor {
        precondition(rank >= 2, "swappingOuterAxes needs rank ≥ 2, got shape \(shape)")
        let a = shape[0], b = shape[1]
        let inner = count / max(a * b, 1)
        var out = Tensor(shape: [b, a] + shape.dropFirst(2), repeating: 0)
        storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for i in 0..<a {
                    for j in 0..<b {
                        let s = (i &* b &+ j) &* inner
                        let d = (j &* a &+ i) &* inner
                        for t in 0..<inner { dst[d &+ t] = src[s &+ t] }
                    }
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// Elementwise `self += other` (same element count).
    public mutating func add(_ other: Tensor) {
        precondition(count == other.count, "add: \(shape) vs \(other.shape)")
        let shape = shape
        storage.withUnsafeMutableBufferPointer { p in
            other.storage.withUnsafeBufferPointer { q in
                guard let a = p.baseAddress, let b = q.baseAddress else { return }
                Parallel.forElements(of: shape, count: p.count, work: p.count) { r in
                    for i in r { a[i] += b[i] }
                }
            }
        }
    }
}
