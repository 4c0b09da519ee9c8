import DSCore

/// Fully connected layer: `y[N, out] = x[N, in] · Wᵀ + b`, `W` stored `[out, in]`.
public final class Linear: Layer {
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// `[out, in]`; matrix view `[nOut = out, fanIn = in]`.
    public let weight: Parameter
    /// `[out]`, or nil.
    public let bias: Parameter?
    private var input = Tensor(shape: [0])
    /// An evaluation-mode replacement for the dense product (e.g. a condensed sparse
    /// kernel): `(x [N, in]) → y [N, out]`, bias included. Training ignores it.
    public var inferenceKernel: ((Tensor) -> Tensor)?
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
    }

    public var ownParameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == inputFeatures,
                     "Linear(\(inputFeatures)→\(outputFeatures)) got input \(x.shape)")
        if !training, let kernel = inferenceKernel { return kernel(x) }
        let n = x.shape[0]
        var y = Tensor(shape: [n, outputFeatures])
        if let bias {
            y.storage.withUnsafeMutableBufferPointer { py in
                bias.value.storage.withUnsafeBufferPointer { pb in
                    for r in 0..<n { (py.baseAddress! + r * outputFeatures).update(from: pb.baseAddress!, count: outputFeatures) }
                }
            }
        }
        x.storage.withUnsafeBufferPointer { px in
            weight.value.storage.withUnsafeBufferPointer { pw in
                y.storage.withUnsafeMutableBufferPointer { py in
                    BLAS.gemm(transposeB: true, m: n, n: outputFeatures, k: inputFeatures,
                              a: px.baseAddress!, lda: inputFeatures,
                              b: pw.baseAddress!, ldb: inputFeatures,
                              beta: bias == nil ? 0 : 1, c: py.baseAddress!, ldc: outputFeatures)
                }
            }
        }
        if training { input = x }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let n = dy.shape[0]
        precondition(input.shape == [n, inputFeatures], "Linear.backward without a matching forward")
        var dx = Tensor(shape: computesInputGradient ? [n, inputFeatures] : [0])
        dy.storage.withUnsafeBufferPointer { pdy in
            input.storage.withUnsafeBufferPointer { px in
                // dW[out, in] += dyᵀ[out, N] · x[N, in]
                weight.gradient.storage.withUnsafeMutableBufferPointer { pdw in
                    BLAS.gemm(transposeA: true, m: outputFeatures, n: inputFeatures, k: n,
                              a: pdy.baseAddress!, lda: outputFeatures,
                              b: px.baseAddress!, ldb: inputFeatures,
                              beta: 1, c: pdw.baseAddress!, ldc: inputFeatures)
                }
            }
            if computesInputGradient {
                // dx[N, in] = dy[N, out] · W[out, in]
                weight.value.storage.withUnsafeBufferPointer { pw in
                    dx.storage.withUnsafeMutableBufferPointer { pdx in
                        BLAS.gemm(m: n, n: inputFeatures, k: outputFeatures,
                                  a: pdy.baseAddress!, lda: outputFeatures,
                                  b: pw.baseAddress!, ldb: inputFeatures,
                                  c: pdx.baseAddress!, ldc: inputFeatures)
                    }
                }
            }
            if let bias {
                bias.gradient.storage.withUnsafeMutableBufferPointer { pdb in
                    for r in 0..<n {
                        for o in 0..<outputFeatures { pdb[o] += pdy[r * outputFeatures + o] }
                    }
                }
            }
        }
        return dx
    }
}
