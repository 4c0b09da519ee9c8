import DSCore
import DSLayers

/// Finite-difference gradient checks for layers.
///
/// The scalar checked is `L = Σ r ⊙ layer(x)` for a fixed random `r`, so
/// `dL/dy = r`. Analytic gradients come from one `backward(r)`; numeric ones from
/// central differences `(L(θ + h) − L(θ − h)) / 2h` at up to `samples` coordinates
/// of the input and of every parameter.
public struct GradientCheck {
    public var step: Float = 1e-2
    public var tolerance: Float = 2e-2
    public var samples = 12

    public init(step: Float = 1e-2, tolerance: Float = 2e-2, samples: Int = 12) {
        self.step = step; self.tolerance = tolerance; self.samples = samples
    }

    public struct Mismatch: CustomStringConvertible {
        public let what: String
        public let index: Int
        public let analytic: Float
        public let numeric: Float
        public var description: String { "\(what)[\(index)]: analytic \(analytic), numeric \(numeric)" }
    }

    /// Every coordinate whose analytic and numeric gradients disagree by more than
    /// `tolerance · max(1, |numeric|)`. Empty means the layer passes.
    public func mismatches(_ layer: Layer, input: Tensor, seed: UInt64 = 7) -> [Mismatch] {
        var rng = Xoshiro256(seed: seed)
        let y = layer.forward(input, training: true)
        var r = Tensor(shape: y.shape)
        for i in 0..<r.count { r.storage[i] = rng.normal() }
        layer.zeroGradients()
        _ = layer.forward(input, training: true)
        let dx = layer.backward(r)

        func loss(_ x: Tensor) -> Double {
            let out = layer.forward(x, training: true)
            var s = 0.0
            for i in 0..<out.count { s += Double(out.storage[i]) * Double(r.storage[i]) }
            return s
        }
        func picks(_ count: Int) -> [Int] {
            count <= samples ? Array(0..<count) : (0..<samples).map { _ in rng.index(below: count) }
        }
        var bad: [Mismatch] = []
        func compare(_ what: String, _ i: Int, _ analytic: Float, _ numeric: Double) {
            let n = Float(numeric)
            if abs(analytic - n) > tolerance * max(1, abs(n)) {
                bad.append(Mismatch(what: what, index: i, analytic: analytic, numeric: n))
            }
        }
        if dx.count == input.count {
            for i in picks(input.count) {
                var plus = input, minus = input
                plus.storage[i] += step; minus.storage[i] -= step
                compare("input", i, dx.storage[i], (loss(plus) - loss(minus)) / Double(2 * step))
            }
        }
        let grads = layer.namedParameters().map { ($0.name, $0.parameter, $0.parameter.gradient) }
        for (name, p, grad) in grads {
            for i in picks(p.value.count) {
                let original = p.value.storage[i]
                p.value.storage[i] = original + step
                let lp = loss(input)
                p.value.storage[i] = original - step
                let lm = loss(input)
                p.value.storage[i] = original
                compare(name, i, grad.storage[i], (lp - lm) / Double(2 * step))
            }
        }
        return bad
    }
}

/// A tensor of standard-normal values.
public func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    var t = Tensor(shape: shape)
    for i in 0..<t.count { t.storage[i] = rng.normal() }
    return t
}

/// The largest `|a − b| / max(1, |b|)` over two equally long arrays (0 when empty).
public func worstRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "worstRelativeDifference: \(a.count) against \(b.count) values")
    return zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
}
