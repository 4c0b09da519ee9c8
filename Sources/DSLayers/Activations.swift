import DSCore

/// `y = max(x, 0)`; backward passes the gradient where `y > 0`.
public final class ReLU: Layer {
    private var output = Tensor(shape: [0])
    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = x
        y.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = max(p[i], 0) }
        }
        if training { output = y }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == output.shape, "ReLU.backward: gradient \(dy.shape) vs output \(output.shape)")
        var dx = dy
        dx.storage.withUnsafeMutableBufferPointer { pd in
            output.storage.withUnsafeBufferPointer { py in
                for i in 0..<pd.count where py[i] <= 0 { pd[i] = 0 }
            }
        }
        return dx
    }
}

/// Inverted dropout: in training, zeroes each value with probability `p` and scales
/// the rest by `1/(1−p)`; identity in evaluation. Owns its seeded generator.
public final class Dropout: Layer {
    public let probability: Float
    /// The generator's state is part of the layer's state (for exact resume).
    public var rng: Xoshiro256
    private var mask = [Float]()

    public init(probability: Float, rng: inout Xoshiro256) {
        precondition(probability >= 0 && probability < 1, "Dropout probability \(probability) not in [0, 1)")
        self.probability = probability
        self.rng = rng.split()
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training, probability > 0 else { mask = []; return x }
        let keep = 1 / (1 - probability)
        mask = (0..<x.count).map { _ in rng.uniformFloat() < probability ? 0 : keep }
        var y = x
        for i in 0..<y.count { y.storage[i] *= mask[i] }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard !mask.isEmpty else { return dy }
        precondition(mask.count == dy.count, "Dropout.backward: gradient size \(dy.count) vs mask \(mask.count)")
        var dx = dy
        for i in 0..<dx.count { dx.storage[i] *= mask[i] }
        return dx
    }
}
