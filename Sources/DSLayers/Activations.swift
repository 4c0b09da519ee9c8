import Foundation
import DSCore

/// `y = max(x, 0)`; backward passes the gradient where `y > 0`.
public final class ReLU: Layer {
    private var output = Tensor(shape: [0])
    /// Set when the Linear layer before applies this ReLU and the one after masks its
    /// input gradient (`Sequential.linkFeatureMajor`): both passes hand their tensor on.
    public var passesThrough = false
    public init() {}

    // Both passes write a new tensor in one pass (the input is still the caller's, so
    // changing it in place would copy it first).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if passesThrough { return x }
        var y = Tensor(uninitializedShape: x.shape)
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                guard let src = px.baseAddress, let dst = py.baseAddress else { return }
                Parallel.forElements(of: x.shape, count: py.count, work: py.count) { r in
                    for i in r { dst[i] = max(src[i], 0) }
                }
            }
        }
        if training { output = y }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        passesThrough ? dy : Self.gradient(dy, output: output)
    }

    /// `dy` where `output > 0`, else 0: the gradient through a ReLU that produced `output`.
    public static func gradient(_ dy: Tensor, output: Tensor) -> Tensor {
        precondition(dy.shape == output.shape, "ReLU.backward: gradient \(dy.shape) vs output \(output.shape)")
        var dx = Tensor(uninitializedShape: dy.shape)
        dy.storage.withUnsafeBufferPointer { pg in
            output.storage.withUnsafeBufferPointer { py in
                dx.storage.withUnsafeMutableBufferPointer { pd in
                    guard let g = pg.baseAddress, let y = py.baseAddress, let d = pd.baseAddress else { return }
                    Parallel.forElements(of: dy.shape, count: pd.count, work: pd.count) { r in
                        for i in r { d[i] = y[i] > 0 ? g[i] : 0 }   // a select, not a branch
                    }
                }
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

/// GELU (Hendrycks & Gimpel 2016): `y = x·Φ(x)`, `Φ` the standard normal CDF,
/// `Φ(x) = (1 + erf(x/√2))/2`, with `dy/dx = Φ(x) + x·φ(x)`. `approximate` uses the
/// tanh form `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` and its derivative.
public final class GELU: Layer {
    public let approximate: Bool
    private var input = Tensor(shape: [0])
    public init(approximate: Bool = false) { self.approximate = approximate }

    static let tanhScale = Float((2 / Double.pi).squareRoot())

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = x
        let approximate = approximate
        y.storage.withUnsafeMutableBufferPointer { p in
            Parallel.forRanges(p.count, work: p.count * 20) { range in
                for i in range {
                    let v = p[i]
                    p[i] = approximate
                        ? 0.5 * v * (1 + tanhf(Self.tanhScale * (v + 0.044715 * v * v * v)))
                        : 0.5 * v * (1 + erff(v * 0.70710678118654752))
                }
            }
        }
        if training { input = x }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == input.shape, "GELU.backward: gradient \(dy.shape) vs input \(input.shape)")
        var dx = dy
        let approximate = approximate
        dx.storage.withUnsafeMutableBufferPointer { pd in
            input.storage.withUnsafeBufferPointer { px in
                Parallel.forRanges(pd.count, work: pd.count * 24) { range in
                    for i in range {
                        let v = px[i]
                        let slope: Float
                        if approximate {
                            let u = Self.tanhScale * (v + 0.044715 * v * v * v)
                            let t = tanhf(u)
                            slope = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * Self.tanhScale * (1 + 3 * 0.044715 * v * v)
                        } else {
                            let cdf = 0.5 * (1 + erff(v * 0.70710678118654752))
                            let pdf = expf(-0.5 * v * v) * 0.39894228040143268
                            slope = cdf + v * pdf
                        }
                        pd[i] *= slope
                    }
                }
            }
        }
        return dx
    }
}
