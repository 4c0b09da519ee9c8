import DSCore

/// 2-D convolution on channel-major input `x[Cin, N, H, W]` → `y[Cout, N, Ho, Wo]`.
///
/// Forward is one GEMM per batch: `y[Cout, N·Ho·Wo] = W[Cout, Cin·kh·kw] · col`,
/// with `col = im2col(x)`. The weight is stored `[Cout, Cin, kh, kw]`, which is the
/// `[nOut = Cout, fanIn = Cin·kh·kw]` matrix view sparsity works on.
public final class Conv2d: Layer {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// When false, `backward` skips `dL/dx` (for a network's first layer) and
    /// returns an empty tensor.
    public var computesInputGradient = true
    private var columns = Tensor(shape: [0])
    private var geometry: ConvGeometry?

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, bias hasBias: Bool = false,
                rng: inout Xoshiro256) {
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let fanIn = inputChannels * kernelSize * kernelSize
        weight = Parameter(name: "weight", role: .weight,
                           value: Initializer.kaimingNormal(
                               shape: [outputChannels, inputChannels, kernelSize, kernelSize],
                               fanIn: fanIn, rng: &rng),
                           matrixShape: (outputChannels, fanIn))
        bias = hasBias ? Parameter(name: "bias", role: .bias,
                                   value: Initializer.uniform(shape: [outputChannels],
                                                              bound: 1 / Float(fanIn).squareRoot(),
                                                              rng: &rng)) : nil
    }

    public var ownParameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// True for a 1×1, stride-1, unpadded convolution, whose column matrix is the input.
    private var isPointwise: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4 && x.shape[0] == inputChannels,
                     "Conv2d(\(inputChannels)→\(outputChannels)) expects [C, N, H, W] with C = \(inputChannels), got \(x.shape)")
        let g = ConvGeometry(channels: inputChannels, batch: x.shape[1], height: x.shape[2],
                             width: x.shape[3], kernelHeight: kernelSize, kernelWidth: kernelSize,
                             stride: stride, padding: padding)
        precondition(g.outputHeight > 0 && g.outputWidth > 0,
                     "Conv2d: input \(x.shape) is smaller than the \(kernelSize)x\(kernelSize) kernel")
        let col: Tensor
        if isPointwise {
            col = x
        } else {
            var c = Tensor(shape: [g.columnRows, g.columnCount])
            x.storage.withUnsafeBufferPointer { px in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    Im2Col.im2col(px.baseAddress!, g, into: pc.baseAddress!)
                }
            }
            col = c
        }
        let cols = g.columnCount
        var y = Tensor(shape: [outputChannels, g.batch, g.outputHeight, g.outputWidth])
        if let bias {
            y.storage.withUnsafeMutableBufferPointer { py in
                for o in 0..<outputChannels {
                    (py.baseAddress! + o * cols).update(repeating: bias.value.storage[o], count: cols)
                }
            }
        }
        col.storage.withUnsafeBufferPointer { pc in
            weight.value.storage.withUnsafeBufferPointer { pw in
                y.storage.withUnsafeMutableBufferPointer { py in
                    BLAS.gemm(m: outputChannels, n: cols, k: g.columnRows,
                              a: pw.baseAddress!, lda: g.columnRows,
                              b: pc.baseAddress!, ldb: cols,
                              beta: bias == nil ? 0 : 1, c: py.baseAddress!, ldc: cols)
                }
            }
        }
        if training {
            columns = col
            geometry = g
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let g = geometry else { preconditionFailure("Conv2d.backward without a training forward") }
        let cols = g.columnCount
        precondition(dy.count == outputChannels * cols, "Conv2d.backward: gradient \(dy.shape) does not match output")
        var dx = Tensor(shape: computesInputGradient ? [g.channels, g.batch, g.height, g.width] : [0])
        dy.storage.withUnsafeBufferPointer { pdy in
            // dW[Cout, CK] += dy[Cout, cols] · colᵀ[cols, CK]
            columns.storage.withUnsafeBufferPointer { pc in
                weight.gradient.storage.withUnsafeMutableBufferPointer { pdw in
                    BLAS.gemm(transposeB: true, m: outputChannels, n: g.columnRows, k: cols,
                              a: pdy.baseAddress!, lda: cols,
                              b: pc.baseAddress!, ldb: cols,
                              beta: 1, c: pdw.baseAddress!, ldc: g.columnRows)
                }
            }
            if let bias {
                bias.gradient.storage.withUnsafeMutableBufferPointer { pdb in
                    for o in 0..<outputChannels {
                        pdb[o] += Vector.sum(pdy.baseAddress! + o * cols, count: cols)
                    }
                }
            }
            guard computesInputGradient else { return }
            weight.value.storage.withUnsafeBufferPointer { pw in
                dx.storage.withUnsafeMutableBufferPointer { pdx in
                    if isPointwise {
                        // dx[Cin, cols] = Wᵀ[Cin, Cout] · dy[Cout, cols]
                        BLAS.gemm(transposeA: true, m: g.columnRows, n: cols, k: outputChannels,
                                  a: pw.baseAddress!, lda: g.columnRows,
                                  b: pdy.baseAddress!, ldb: cols,
                                  c: pdx.baseAddress!, ldc: cols)
                    } else {
                        var dcol = [Float](repeating: 0, count: g.columnRows * cols)
                        dcol.withUnsafeMutableBufferPointer { pdc in
                            BLAS.gemm(transposeA: true, m: g.columnRows, n: cols, k: outputChannels,
                                      a: pw.baseAddress!, lda: g.columnRows,
                                      b: pdy.baseAddress!, ldb: cols,
                                      c: pdc.baseAddress!, ldc: cols)
                            Im2Col.col2im(UnsafePointer(pdc.baseAddress!), g, addingInto: pdx.baseAddress!)
                        }
                    }
                }
            }
        }
        return dx
    }
}
