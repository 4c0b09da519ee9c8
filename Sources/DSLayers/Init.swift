import DSCore

/// Weight initialisation.
public enum Initializer {
    /// Kaiming-normal with ReLU gain, fan-in mode (PyTorch's
    /// `kaiming_normal_(mode="fan_in", nonlinearity="relu")`): `std = sqrt(2 / fanIn)`.
    public static func kaimingNormal(shape: [Int], fanIn: Int, rng: inout Xoshiro256) -> Tensor {
        let std = (2.0 / Float(fanIn)).squareRoot()
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = rng.normal() * std }
        return t
    }

    /// Uniform in `[-bound, bound]` (PyTorch's default bias init uses `1/sqrt(fanIn)`).
    public static func uniform(shape: [Int], bound: Float, rng: inout Xoshiro256) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = (rng.uniformFloat() * 2 - 1) * bound }
        return t
    }

    /// Xavier (Glorot) uniform: `U(−a, a)`, `a = sqrt(6 / (fanIn + fanOut))`.
    public static func xavierUniform(shape: [Int], fanIn: Int, fanOut: Int, rng: inout Xoshiro256) -> Tensor {
        uniform(shape: shape, bound: (6 / Float(fanIn + fanOut)).squareRoot(), rng: &rng)
    }
}
