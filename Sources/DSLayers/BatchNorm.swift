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
    private var input = Tensor(shape: [0])        // the training input, channel-major `[C, M]`
    private var batchMeans = [Float]()            // μ_B, [C]
    private var inverseStd = [Float]()            // 1 / sqrt(σ²_B + ε), [C]
    private var inputShape = [Int]()

    /// Applies ReLU to the output in the same pass (`relu(bn(x))`); backward
    /// recomputes `x̂` and the ReLU mask from the saved input, so nothing more is stored.
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
        normalize(x, adding: nil, relu: fusedReLU, training: training)
    }

    /// `relu(bn(x) + residual)` in one pass (the end of a residual block); backward is
    /// then the plain batch-norm backward of the gradient the caller masked by the
    /// block's output. Only for layers without `fusedReLU`, on `[C, N, H, W]` input.
    public func forward(_ x: Tensor, addingAndRectifying residual: Tensor, training: Bool) -> Tensor {
        precondition(!fusedReLU, "BatchNorm.forward(adding:): the layer already applies its own ReLU")
        precondition(x.rank == 4 && residual.shape == x.shape,
                     "BatchNorm.forward(adding:): input \(x.shape) vs residual \(residual.shape)")
        return normalize(x, adding: residual, relu: true, training: training)
    }

    /// Images and positions per image of a channel-major `[C, M]` input of shape `shape`.
    private static func batchAndPlane(_ shape: [Int], perChannel m: Int) -> (batch: Int, plane: Int) {
        let batch = shape.count == 4 ? shape[1] : shape[0]
        return (batch, batch > 0 ? m / batch : 0)
    }

    // Both passes split the batch by images (`Parallel.forImages`, as the convolutions
    // around them do). The statistics are taken per half of the batch
    // (`Parallel.forHalves`) and combined, so they do not depend on the thread count.
    private func normalize(_ x: Tensor, adding residual: Tensor?, relu: Bool, training: Bool) -> Tensor {
        let xc = channelMajor(x)
        let m = xc.count / features
        let (batch, plane) = Self.batchAndPlane(x.shape, perChannel: m)
        var y = Tensor(uninitializedShape: xc.shape)
        var means = [Float](repeating: 0, count: features)
        var inverse = [Float](repeating: 0, count: features)
        var variances = [Float](repeating: 0, count: features)
        if training {
            precondition(m > 1, "BatchNorm in training needs more than one value per channel, got \(x.shape)")
            // Each half's mean and sum of squared deviations, then Chan et al.'s combination.
            var halfStats = [Float](repeating: 0, count: 2 * Parallel.halves * features)
            xc.storage.withUnsafeBufferPointer { px in
                halfStats.withUnsafeMutableBufferPointer { ps in
                    Parallel.forHalves(items: features, work: xc.count) { h, channels in
                        let images = Parallel.halfImages(h, batch: batch), n = images.count * plane
                        guard n > 0 else { return }
                        for c in channels {
                            let src = px.baseAddress! + c * m + images.lowerBound * plane
                            let mean = Vector.sum(src, count: n) / Float(n)
                            ps[2 * (h * features + c)] = mean
                            ps[2 * (h * features + c) + 1] = Vector.sumOfSquaredDeviations(src, from: mean, count: n)
                        }
                    }
                }
            }
            for c in 0..<features {
                var count = 0.0, mean = 0.0, squares = 0.0
                for h in 0..<Parallel.halves {
                    let n = Double(Parallel.halfImages(h, batch: batch).count * plane)
                    guard n > 0 else { continue }
                    let hm = Double(halfStats[2 * (h * features + c)]), hs = Double(halfStats[2 * (h * features + c) + 1])
                    let total = count + n, delta = hm - mean
                    mean += delta * n / total
                    squares += hs + delta * delta * count * n / total
                    count = total
                }
                means[c] = Float(mean)
                variances[c] = Float(squares / count)
                inverse[c] = 1 / (variances[c] + epsilon).squareRoot()
            }
        } else {
            for c in 0..<features {
                means[c] = runningMean.value.storage[c]
                inverse[c] = 1 / (runningVariance.value.storage[c] + epsilon).squareRoot()
            }
        }
        let rc = residual ?? Tensor(shape: [0])
        xc.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                rc.storage.withUnsafeBufferPointer { pr in
                    let gamma = scale.value.storage, beta = shift.value.storage
                    let hasResidual = residual != nil, features = features
                    Parallel.forImages(batch, work: xc.count) { images in
                        guard !images.isEmpty else { return }
                        let offset = images.lowerBound * plane, n = images.count * plane
                        for c in 0..<features {
                            let at = c * m + offset
                            Self.affine(px.baseAddress! + at, mean: means[c], inverse: inverse[c], scale: gamma[c],
                                        shift: beta[c], residual: hasResidual ? pr.baseAddress! + at : nil, relu: relu,
                                        into: py.baseAddress! + at, count: n)
                        }
                    }
                }
            }
        }
        if training {
            let unbias = Float(m) / Float(m - 1)
            for c in 0..<features {
                runningMean.value.storage[c] = (1 - momentum) * runningMean.value.storage[c] + momentum * means[c]
                runningVariance.value.storage[c] = (1 - momentum) * runningVariance.value.storage[c]
                    + momentum * variances[c] * unbias
            }
            input = xc
            batchMeans = means
            inverseStd = inverse
            inputShape = x.shape
        }
        return restore(y, like: x.shape)
    }

    /// `dst = [relu](γ·x̂ + β [+ r])` with `x̂ = (x − μ)·inv`.
    @inline(__always)
    private static func affine(_ x: UnsafePointer<Float>, mean: Float, inverse: Float, scale g: Float, shift b: Float,
                               residual r: UnsafePointer<Float>?, relu: Bool, into dst: UnsafeMutablePointer<Float>,
                               count m: Int) {
        let mv = SIMD16<Float>(repeating: mean), iv = SIMD16<Float>(repeating: inverse)
        let gv = SIMD16<Float>(repeating: g), bv = SIMD16<Float>(repeating: b), zero = SIMD16<Float>()
        var i = 0
        while i &+ 16 <= m {
            let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * iv
            var out = gv * v + bv
            if let r { out += UnsafeRawPointer(r + i).loadUnaligned(as: SIMD16<Float>.self) }
            if relu { out = out.replacing(with: zero, where: out .< zero) }
            UnsafeMutableRawPointer(dst + i).storeBytes(of: out, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < m {
            var out = g * ((x[i] - mean) * inverse) + b
            if let r { out += r[i] }
            dst[i] = relu ? max(out, 0) : out
            i &+= 1
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == inputShape, "BatchNorm.backward: gradient \(dy.shape) vs input \(inputShape)")
        let dyc = channelMajor(dy)
        let m = dyc.count / features
        let (batch, plane) = Self.batchAndPlane(inputShape, perChannel: m)
        var dx = Tensor(uninitializedShape: dyc.shape)
        // Each half's (Σ g, Σ g·x̂) per channel, added; then the input gradient.
        var halfSums = [Float](repeating: 0, count: 2 * Parallel.halves * features)
        var dGamma = [Float](repeating: 0, count: features)
        var dBeta = [Float](repeating: 0, count: features)
        let gamma = scale.value.storage, beta = shift.value.storage
        let inv = inverseStd, means = batchMeans, relu = fusedReLU, features = features
        func pass(_ c: Int, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>) -> BackwardPass {
            BackwardPass(x: x + c * m, dy: dy + c * m, mean: means[c], inverse: inv[c], scale: gamma[c], shift: beta[c],
                         relu: relu)
        }
        dyc.storage.withUnsafeBufferPointer { pdy in
            input.storage.withUnsafeBufferPointer { px in
                halfSums.withUnsafeMutableBufferPointer { ps in
                    Parallel.forHalves(items: features, work: dyc.count) { h, channels in
                        let images = Parallel.halfImages(h, batch: batch)
                        for c in channels {
                            let (sumDy, sumDyH) = pass(c, px.baseAddress!, pdy.baseAddress!)
                                .sums(from: images.lowerBound * plane, count: images.count * plane)
                            ps[2 * (h * features + c)] = sumDy
                            ps[2 * (h * features + c) + 1] = sumDyH
                        }
                    }
                }
                for c in 0..<features {
                    for h in 0..<Parallel.halves {
                        dBeta[c] += halfSums[2 * (h * features + c)]
                        dGamma[c] += halfSums[2 * (h * features + c) + 1]
                    }
                }
                dx.storage.withUnsafeMutableBufferPointer { pdx in
                    Parallel.forImages(batch, work: dyc.count) { images in
                        guard !images.isEmpty else { return }
                        for c in 0..<features {
                            pass(c, px.baseAddress!, pdy.baseAddress!)
                                .inputGradient(sumDy: dBeta[c], sumDyH: dGamma[c], total: m, into: pdx.baseAddress! + c * m,
                                               from: images.lowerBound * plane, count: images.count * plane)
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

/// One channel's backward: `x̂` is recomputed from the saved input, and with a fused
/// ReLU the gradient is masked where `γ·x̂ + β ≤ 0` (the forward's own expressions, so
/// the mask matches the forward output exactly).
private struct BackwardPass {
    let x: UnsafePointer<Float>, dy: UnsafePointer<Float>
    let mean: Float, inverse: Float, scale: Float, shift: Float, relu: Bool

    /// `(Σ g, Σ g·x̂)` for the (masked) gradient `g` over values `start ..< start + m`.
    @inline(__always)
    func sums(from start: Int, count m: Int) -> (Float, Float) {
        let x = x + start, dy = dy + start
        let mv = SIMD16<Float>(repeating: mean), iv = SIMD16<Float>(repeating: inverse)
        let gv = SIMD16<Float>(repeating: scale), bv = SIMD16<Float>(repeating: shift), zero = SIMD16<Float>()
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), h0 = SIMD16<Float>(), h1 = SIMD16<Float>()
        var i = 0
        while i &+ 32 <= m {
            let v0 = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * iv
            let v1 = (UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self) - mv) * iv
            var g0 = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD16<Float>.self)
            var g1 = UnsafeRawPointer(dy + i + 16).loadUnaligned(as: SIMD16<Float>.self)
            if relu {
                g0.replace(with: zero, where: gv * v0 + bv .<= zero)
                g1.replace(with: zero, where: gv * v1 + bv .<= zero)
            }
            s0 += g0; s1 += g1
            h0.addProduct(g0, v0); h1.addProduct(g1, v1)
            i &+= 32
        }
        var sum = (s0 + s1).sum(), sumH = (h0 + h1).sum()
        while i < m {
            let v = (x[i] - mean) * inverse
            let g = relu && !(scale * v + shift > 0) ? 0 : dy[i]
            sum += g; sumH += g * v
            i &+= 1
        }
        return (sum, sumH)
    }

    /// `dx = γ·inv/M · (M·g − Σg − x̂·Σg·x̂)` over values `start ..< start + m` of the
    /// channel's `total`.
    @inline(__always)
    func inputGradient(sumDy: Float, sumDyH: Float, total: Int, into out: UnsafeMutablePointer<Float>, from start: Int,
                       count m: Int) {
        let x = x + start, dy = dy + start, out = out + start
        let k = scale * inverse / Float(total), fm = Float(total)
        let mv = SIMD16<Float>(repeating: mean), iv = SIMD16<Float>(repeating: inverse)
        let gv = SIMD16<Float>(repeating: scale), bv = SIMD16<Float>(repeating: shift), zero = SIMD16<Float>()
        let kv = SIMD16<Float>(repeating: k), fmv = SIMD16<Float>(repeating: fm)
        let sv = SIMD16<Float>(repeating: sumDy), shv = SIMD16<Float>(repeating: sumDyH)
        var i = 0
        while i &+ 16 <= m {
            let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * iv
            var g = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD16<Float>.self)
            if relu { g.replace(with: zero, where: gv * v + bv .<= zero) }
            UnsafeMutableRawPointer(out + i).storeBytes(of: kv * (fmv * g - sv - v * shv), as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < m {
            let v = (x[i] - mean) * inverse
            let g = relu && !(scale * v + shift > 0) ? 0 : dy[i]
            out[i] = k * (fm * g - sumDy - v * sumDyH)
            i &+= 1
        }
    }
}
