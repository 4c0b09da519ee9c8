import DSCore

/// Batch normalisation over channels (`[C, N, H, W]` input, "2d") or features
/// (`[N, F]` input, "1d"), with running statistics for evaluation.
///
/// Training: `x̂ = (x − μ_B) / sqrt(σ²_B + ε)`, `y = γ·x̂ + β`, per channel over the
/// `M` values of the batch; running stats move by `momentum` (PyTorch convention,
/// unbiased variance in the running estimate). Evaluation uses the running stats.
public final class BatchNorm: Layer {
    public let features: Int
    public let momentum: Float
    public let epsilon: Float
    /// γ, `[features]`, initialised to 1.
    public let scale: Parameter
    /// β, `[features]`, initialised to 0.
    public let shift: Parameter
    public let runningMean: Buffer
    public let runningVariance: Buffer
    private var normalized = Tensor(shape: [0])   // x̂ in channel-major `[C, M]`
    private var inverseStd = [Float]()             // [C]
    private var inputShape = [Int]()

    /// Applies ReLU to the output in the same pass (`relu(bn(x))`); backward
    /// recomputes the ReLU mask from `x̂`, so nothing more is stored.
    public let fusedReLU: Bool

    public init(features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5, fusedReLU: Bool = false) {
        self.fusedReLU = fusedReLU
        self.features = features
        self.momentum = momentum
        self.epsilon = epsilon
        scale = Parameter(name: "weight", role: .normalization, value: Tensor(shape: [features], repeating: 1))
        shift = Parameter(name: "bias", role: .normalization, value: Tensor(shape: [features]))
        runningMean = Buffer(name: "running_mean", value: Tensor(shape: [features]))
        runningVariance = Buffer(name: "running_var", value: Tensor(shape: [features], repeating: 1))
    }

    public var ownParameters: [Parameter] { [scale, shift] }
    public var ownBuffers: [Buffer] { [runningMean, runningVariance] }

    /// Moves the input into channel-major `[C, M]` form (a copy only for `[N, F]`).
    private func channelMajor(_ x: Tensor) -> Tensor {
        if x.rank == 4 {
            precondition(x.shape[0] == features, "BatchNorm(\(features)) got [C, N, H, W] = \(x.shape)")
            return x
        }
        precondition(x.rank == 2 && x.shape[1] == features, "BatchNorm(\(features)) got [N, F] = \(x.shape)")
        return x.swappingOuterAxes()
    }

    private func restore(_ t: Tensor, like shape: [Int]) -> Tensor {
        shape.count == 4 ? t.reshaped(shape) : t.swappingOuterAxes()
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let xc = channelMajor(x)
        let m = xc.count / features
        var y = Tensor(uninitializedShape: xc.shape)
        if !training {
            xc.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeMutableBufferPointer { py in
                    for c in 0..<features {
                        let inv = 1 / (runningVariance.value.storage[c] + epsilon).squareRoot()
                        let a = scale.value.storage[c] * inv
                        let b = shift.value.storage[c] - runningMean.value.storage[c] * a
                        let src = px.baseAddress! + c * m, dst = py.baseAddress! + c * m
                        if fusedReLU {
                            for i in 0..<m { dst[i] = max(src[i] * a + b, 0) }
                        } else {
                            for i in 0..<m { dst[i] = src[i] * a + b }
                        }
                    }
                }
            }
            return restore(y, like: x.shape)
        }
        precondition(m > 1, "BatchNorm in training needs more than one value per channel, got \(x.shape)")
        var xhat = Tensor(uninitializedShape: xc.shape)
        var invStd = [Float](repeating: 0, count: features)
        var means = [Float](repeating: 0, count: features)
        var variances = [Float](repeating: 0, count: features)
        xc.storage.withUnsafeBufferPointer { px in
            xhat.storage.withUnsafeMutableBufferPointer { ph in
                y.storage.withUnsafeMutableBufferPointer { py in
                    invStd.withUnsafeMutableBufferPointer { pinv in
                        means.withUnsafeMutableBufferPointer { pmean in
                            variances.withUnsafeMutableBufferPointer { pvar in
                                let gamma = scale.value.storage, beta = shift.value.storage, relu = fusedReLU
                                Parallel.forEach(features, work: xc.count) { c in
                                    let src = px.baseAddress! + c * m
                                    let mean = Vector.sum(src, count: m) / Float(m)
                                    var acc: Float = 0
                                    for i in 0..<m { let d = src[i] - mean; acc += d * d }
                                    let variance = acc / Float(m)
                                    let inv = 1 / (variance + epsilon).squareRoot()
                                    let h = ph.baseAddress! + c * m, dst = py.baseAddress! + c * m
                                    let g = gamma[c], b = beta[c]
                                    for i in 0..<m {
                                        let v = (src[i] - mean) * inv
                                        h[i] = v
                                        dst[i] = relu ? max(g * v + b, 0) : g * v + b
                                    }
                                    pinv[c] = inv; pmean[c] = mean; pvar[c] = variance
                                }
                            }
                        }
                    }
                }
            }
        }
        let unbias = Float(m) / Float(m - 1)
        for c in 0..<features {
            runningMean.value.storage[c] = (1 - momentum) * runningMean.value.storage[c] + momentum * means[c]
            runningVariance.value.storage[c] = (1 - momentum) * runningVariance.value.storage[c]
                + momentum * variances[c] * unbias
        }
        normalized = xhat
        inverseStd = invStd
        inputShape = x.shape
        return restore(y, like: x.shape)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == inputShape, "BatchNorm.backward: gradient \(dy.shape) vs input \(inputShape)")
        let dyc = channelMajor(dy)
        let m = dyc.count / features
        var dx = Tensor(uninitializedShape: dyc.shape)
        var dGamma = [Float](repeating: 0, count: features)
        var dBeta = [Float](repeating: 0, count: features)
        dyc.storage.withUnsafeBufferPointer { pdy in
            normalized.storage.withUnsafeBufferPointer { ph in
                dx.storage.withUnsafeMutableBufferPointer { pdx in
                    dGamma.withUnsafeMutableBufferPointer { pdg in
                        dBeta.withUnsafeMutableBufferPointer { pdb in
                            let gamma = scale.value.storage, beta = shift.value.storage, inv = inverseStd
                            let relu = fusedReLU
                            Parallel.forEach(features, work: dyc.count) { c in
                                var g = pdy.baseAddress! + c * m
                                let h = ph.baseAddress! + c * m
                                if relu {
                                    // dL/d(bn output) = dy where γ·x̂ + β > 0, staged in dx.
                                    let masked = pdx.baseAddress! + c * m
                                    let gc = gamma[c], bc = beta[c]
                                    for i in 0..<m { masked[i] = gc * h[i] + bc > 0 ? g[i] : 0 }
                                    g = UnsafePointer(masked)
                                }
                                let sumDy = Vector.sum(g, count: m)
                                let sumDyH = Vector.dot(g, h, count: m)
                                pdg[c] = sumDyH
                                pdb[c] = sumDy
                                let k = gamma[c] * inv[c] / Float(m)
                                let fm = Float(m)
                                let out = pdx.baseAddress! + c * m
                                for i in 0..<m {
                                    out[i] = k * (fm * g[i] - sumDy - h[i] * sumDyH)
                                }
                            }
                        }
                    }
                }
            }
        }
        for c in 0..<features {
            scale.gradient.storage[c] += dGamma[c]
            shift.gradient.storage[c] += dBeta[c]
        }
        return restore(dx, like: inputShape)
    }
}
