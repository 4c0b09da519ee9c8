import DSCore

/// Fully connected layer: `y[N, out] = x[N, in] · Wᵀ + b`, `W` stored `[out, in]`. An
/// input of higher rank `[..., in]` has its leading dimensions folded into `N` (a token
/// sequence `[N, T, D]` is `N·T` rows) and gives `[..., out]`.
public final class Linear: TimedLayer {
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// `[out, in]`; matrix view `[nOut = out, fanIn = in]`.
    public let weight: Parameter
    /// `[out]`, or nil.
    public let bias: Parameter?
    private var input = Tensor(shape: [0])
    /// How the layer multiplies by its weight, in training and evaluation: the dense
    /// GEMM kernel unless a sparse or condensed kernel is installed.
    public var kernel: WeightKernel
    /// When false, `backward` skips `dL/dx` (for a network's first layer) and
    /// returns an empty tensor.
    public var computesInputGradient = true

    /// Kaiming-normal weights (fan-in, ReLU gain); bias uniform in `±1/sqrt(in)`.
    public init(inputFeatures: Int, outputFeatures: Int, bias hasBias: Bool = true,
                rng: inout Xoshiro256) {
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        weight = Parameter(name: "weight", role: .weight,
                           value: Initializer.kaimingNormal(shape: [outputFeatures, inputFeatures],
                                                            fanIn: inputFeatures, rng: &rng),
                           matrixShape: (outputFeatures, inputFeatures))
        bias = hasBias ? Parameter(name: "bias", role: .bias,
                                   value: Initializer.uniform(shape: [outputFeatures],
                                                              bound: 1 / Float(inputFeatures).squareRoot(),
                                                              rng: &rng)) : nil
        kernel = DenseWeightKernel(weight: weight)
    }

    public var ownParameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// The layout of the input and of the output: batch-major `[..., features]`, or
    /// feature-major `[features, N]` (rank 2 only). `SparseModel` links consecutive
    /// Linear layers feature-major (`linkFeatureMajor`), so sparse kernels, which
    /// work on feature-major blocks, need no transposes between them.
    public var inputLayout = ActivationLayout.batchMajor
    public var outputLayout = ActivationLayout.batchMajor
    /// Set by `Sequential.linkFeatureMajor` for a Linear → ReLU → Linear run: the first
    /// layer applies the ReLU to its output (`rectifiesOutput`; the ReLU then passes
    /// values and gradients through) and the second stops its input gradient where its
    /// input, the ReLU's output, is 0 (`masksInputGradient`). Sparse kernels do both as
    /// they store their results, which saves the ReLU's two passes.
    public var rectifiesOutput = false
    public var masksInputGradient = false

    /// `[features, n]` view of `p` in `layout`.
    private func view(_ p: UnsafePointer<Float>, _ features: Int, _ n: Int, _ layout: ActivationLayout) -> ActivationView {
        let batchMajor = layout == .batchMajor
        return ActivationView(p, features: features, columns: n, leadingDimension: batchMajor ? features : n,
                              batchMajor: batchMajor)
    }

    private func mutableView(_ p: UnsafeMutablePointer<Float>, _ features: Int, _ n: Int,
                             _ layout: ActivationLayout) -> MutableActivationView {
        let batchMajor = layout == .batchMajor
        return MutableActivationView(p, features: features, columns: n, leadingDimension: batchMajor ? features : n,
                                     batchMajor: batchMajor)
    }

    /// Set by a profiler to collect the time of each pass (nil: not timed).
    public var timing: LayerTiming?

    public func untimedForward(_ x: Tensor, training: Bool) -> Tensor {
        let linked = inputLayout == .featureMajor || outputLayout == .featureMajor
        precondition(x.rank >= 2 && (linked ? x.rank == 2 : true)
                     && (inputLayout == .featureMajor ? x.shape[0] : x.shape.last) == inputFeatures,
                     "Linear(\(inputFeatures)→\(outputFeatures), \(inputLayout) input) got input \(x.shape)")
        let n = x.count / inputFeatures
        let outputShape = outputLayout == .featureMajor ? [outputFeatures, n]
            : inputLayout == .featureMajor ? [n, outputFeatures] : x.shape.dropLast() + [outputFeatures]
        var y = Tensor(uninitializedShape: outputShape)
        let biasValues = bias?.value.storage ?? []
        x.storage.withUnsafeBufferPointer { px in
            biasValues.withUnsafeBufferPointer { pb in
                y.storage.withUnsafeMutableBufferPointer { py in
                    kernel.forward(view(px.baseAddress!, inputFeatures, n, inputLayout),
                                   bias: bias == nil ? nil : pb.baseAddress, rectify: rectifiesOutput,
                                   into: mutableView(py.baseAddress!, outputFeatures, n, outputLayout), parallel: true)
                }
            }
        }
        if training { input = x }
        return y
    }

    public func untimedBackward(_ dy: Tensor) -> Tensor {
        let n = dy.count / outputFeatures
        let linked = inputLayout == .featureMajor || outputLayout == .featureMajor
        precondition(input.count == n * inputFeatures && dy.count == n * outputFeatures
                     && (linked || input.shape.dropLast() == dy.shape.dropLast()),
                     "Linear.backward without a matching forward")
        var dx = Tensor(uninitializedShape: computesInputGradient ? input.shape : [0])
        dy.storage.withUnsafeBufferPointer { pdy in
            let gradOut = view(pdy.baseAddress!, outputFeatures, n, outputLayout)
            input.storage.withUnsafeBufferPointer { px in
                let x = view(px.baseAddress!, inputFeatures, n, inputLayout)
                kernel.backwardWeight(gradOut, x, parallel: true)
                if computesInputGradient {
                    dx.storage.withUnsafeMutableBufferPointer { pdx in
                        kernel.backwardInput(gradOut, maskedBy: masksInputGradient ? x : nil,
                                             into: mutableView(pdx.baseAddress!, inputFeatures, n, inputLayout),
                                             parallel: true)
                    }
                }
            }
            if let bias {
                bias.gradient.storage.withUnsafeMutableBufferPointer { pdb in
                    if outputLayout == .featureMajor {
                        for o in 0..<outputFeatures { pdb[o] += Vector.sum(pdy.baseAddress! + o * n, count: n) }
                    } else {
                        for r in 0..<n {
                            for o in 0..<outputFeatures { pdb[o] += pdy[r * outputFeatures + o] }
                        }
                    }
                }
            }
        }
        return dx
    }
}

/// How a rank-2 block of activations is laid out: `[N, features]` (batch-major, every
/// layer's default) or `[features, N]` (feature-major, between linked Linear layers).
public enum ActivationLayout: String, Sendable {
    case batchMajor = "batch-major"
    case featureMajor = "feature-major"
}
