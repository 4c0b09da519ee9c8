import CDenseKernels
import DSCore

/// 2-D convolution on channel-major input `x[Cin, N, H, W]` → `y[Cout, N, Ho, Wo]`.
///
/// Forward is one GEMM per batch: `y[Cout, N·Ho·Wo] = W[Cout, Cin·kh·kw] · col`,
/// with `col = im2col(x)`. The weight is stored `[Cout, Cin, kh, kw]`, which is the
/// `[nOut = Cout, fanIn = Cin·kh·kw]` matrix view sparsity works on.
public final class Conv2d: TimedLayer {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// How the layer multiplies its column matrices by the weight, in training and
    /// evaluation: the dense kernel (GEMMs, and the direct 3×3 convolution where it
    /// applies) unless a sparse or condensed kernel is installed.
    public var kernel: WeightKernel
    /// When false, `backward` skips `dL/dx` (for a network's first layer) and
    /// returns an empty tensor.
    public var computesInputGradient = true
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
        kernel = DenseWeightKernel(weight: weight)
    }

    public var ownParameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// True for a 1×1 unpadded convolution: its column matrix is the input (strided:
    /// the input's subsampled positions, `Im2Col.subsample`, which the passes then
    /// treat as a stride-1 input).
    private var isPointwise: Bool { kernelSize == 1 && padding == 0 }
    /// For a strided 1×1 convolution, the plane of its last training input (backward
    /// spreads the gradient of the subsampled positions back over it).
    private var subsampledPlane: (height: Int, width: Int)?

    /// Whether the direct 3×3 kernel (`DirectConvolution`) computes this convolution's
    /// output (and, through the flipped kernel, its input gradient) for inputs of
    /// width `width`: a "same" 3×3 convolution with channel counts the kernel takes,
    /// on planes wide enough to fill its 16-wide vectors.
    private func usesDirect(width: Int) -> Bool {
        kernelSize == 3 && stride == 1 && padding == 1 && width >= DirectConvolution.minimumWidth
            && DirectConvolution.isAvailable && kernel.isDense
    }
    /// The last training forward's input (backward recomputes its columns).
    private var input = Tensor(shape: [0])
    /// The plane size of the last input (any forward), e.g. for choosing kernels.
    public private(set) var inputPlane: (height: Int, width: Int)?

    /// Images per work chunk: a chunk's column matrix stays near 1M floats (cache
    /// sized), and there are at least two chunks per thread when the batch allows.
    private func imagesPerChunk(_ g: ConvGeometry) -> Int {
        let plane = g.outputHeight * g.outputWidth
        let bySize = max(1, (1 << 24) / max(g.columnRows * plane, 1))
        let byThreads = max(1, g.batch / (2 * Parallel.threads))
        return min(bySize, byThreads)
    }

    /// Calls `body(chunkIndex, images)` for consecutive image ranges, in parallel: each
    /// thread takes a contiguous run of chunks (`Parallel.forImages`), so it works on the
    /// images it ran in the layers before and after.
    private func forEachChunk(_ g: ConvGeometry, _ body: (Int, Range<Int>) -> Void) {
        let per = imagesPerChunk(g)
        let chunks = (g.batch + per - 1) / per
        Parallel.forImages(chunks, work: g.columnRows * g.columnCount) { run in
            for i in run { body(i, (i * per)..<min((i + 1) * per, g.batch)) }
        }
    }

    /// Column matrices of the last training forward, one per chunk, kept so backward
    /// does not recompute them; backward then reuses each for its column gradient.
    private let stored = ColumnStore()

    /// Runs `body` with the column matrix of `images` (`[Cin·kh·kw, images·Ho·Wo]`) and
    /// its leading dimension. Pointwise convolutions read the input in place; with
    /// `keep`, the matrix is built into chunk `chunk`'s stored buffer.
    private func withColumns(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ images: Range<Int>,
                             chunk: Int, keep: Bool, _ body: (UnsafePointer<Float>, Int) -> Void) {
        let plane = g.outputHeight * g.outputWidth
        if isPointwise {
            body(x + images.lowerBound * plane, g.batch * plane)
            return
        }
        if keep {
            Im2Col.im2col(x, g, images: images, into: stored.buffers[chunk])
            body(stored.buffers[chunk], images.count * plane)
            return
        }
        let col = UnsafeMutablePointer<Float>.allocate(capacity: g.columnRows * images.count * plane)
        defer { col.deallocate() }
        Im2Col.im2col(x, g, images: images, into: col)
        body(col, images.count * plane)
    }

    /// Chunk `i`'s image range.
    private func chunkSizes(_ g: ConvGeometry) -> [Int] {
        let per = imagesPerChunk(g)
        return Swift.stride(from: 0, to: g.batch, by: per).map { min(per, g.batch - $0) }
    }

    /// Set by a profiler to collect the time of each pass (nil: not timed).
    public var timing: LayerTiming?

    public func untimedForward(_ source: Tensor, training: Bool) -> Tensor {
        precondition(source.rank == 4 && source.shape[0] == inputChannels,
                     "Conv2d(\(inputChannels)→\(outputChannels)) expects [C, N, H, W] with C = \(inputChannels), got \(source.shape)")
        inputPlane = (source.shape[2], source.shape[3])
        // A strided 1×1 convolution is the stride-1 one of the positions it reads.
        let x = isPointwise && stride > 1 ? subsampled(source) : source
        if training { subsampledPlane = isPointwise && stride > 1 ? inputPlane : nil }   // evaluation keeps it
        let g = ConvGeometry(channels: inputChannels, batch: x.shape[1], height: x.shape[2],
                             width: x.shape[3], kernelHeight: kernelSize, kernelWidth: kernelSize,
                             stride: isPointwise ? 1 : stride, padding: padding)
        precondition(g.outputHeight > 0 && g.outputWidth > 0,
                     "Conv2d: input \(x.shape) is smaller than the \(kernelSize)x\(kernelSize) kernel")
        let cols = g.columnCount, plane = g.outputHeight * g.outputWidth
        var y = Tensor(uninitializedShape: [outputChannels, g.batch, g.outputHeight, g.outputWidth])
        let biasValues = bias?.value.storage ?? []
        stored.release()
        if let whole = kernel as? ConvolutionKernel, whole.supportsDirect(g) {
            // The kernel convolves whole tensors (and keeps what its backward needs).
            x.storage.withUnsafeBufferPointer { px in
                biasValues.withUnsafeBufferPointer { pb in
                    y.storage.withUnsafeMutableBufferPointer { py in
                        whole.convolve(px.baseAddress!, g, bias: bias == nil ? nil : pb.baseAddress, into: py.baseAddress!,
                                       keepInput: training)
                    }
                }
            }
            if training { geometry = g; input = x }
            return y
        }
        let direct = usesDirect(width: g.width)
        if let bias, direct {
            y.storage.withUnsafeMutableBufferPointer { py in
                for o in 0..<outputChannels {
                    (py.baseAddress! + o * cols).update(repeating: bias.value.storage[o], count: cols)
                }
            }
        }
        let directWeight = direct ? DirectConvolution.arrange(weight.value.storage, outputs: outputChannels,
                                                              inputs: inputChannels, flipped: false) : []
        let keep = training && !isPointwise && !direct
        if keep { stored.allocate(chunkSizes(g).map { g.columnRows * $0 * plane }) }
        x.storage.withUnsafeBufferPointer { px in
            biasValues.withUnsafeBufferPointer { pb in
                y.storage.withUnsafeMutableBufferPointer { py in
                    let out = py.baseAddress!
                    // y[:, images] = W · col(images), written in place (ldc = N·Ho·Wo).
                    forEachChunk(g) { chunk, images in
                        if direct {
                            DirectConvolution.run(px.baseAddress!, channels: inputChannels, weight: directWeight,
                                                  into: out, outputs: outputChannels, g, images: images,
                                                  accumulate: bias != nil)
                            return
                        }
                        withColumns(px.baseAddress!, g, images, chunk: chunk, keep: keep) { col, ld in
                            let n = images.count * plane
                            kernel.forward(ActivationView(col, features: g.columnRows, columns: n, leadingDimension: ld,
                                                          batchMajor: false),
                                           bias: bias == nil ? nil : pb.baseAddress,
                                           into: MutableActivationView(out + images.lowerBound * plane, features: outputChannels,
                                                                       columns: n, leadingDimension: cols, batchMajor: false),
                                           parallel: false)
                        }
                    }
                }
            }
        }
        if training {
            geometry = g
            input = isPointwise || direct ? x : Tensor(shape: [0])
        }
        return y
    }

    /// Geometry of the stride-1 backward-data convolution over `dy [Cout, N, Ho, Wo]`:
    /// kernel `k`, padding `k − 1 − p`, giving `[Cin, N, H, W]`.
    private func transposedGeometry(_ g: ConvGeometry) -> ConvGeometry? {
        let pad = kernelSize - 1 - padding
        guard pad >= 0 else { return nil }
        let t = ConvGeometry(channels: outputChannels, batch: g.batch, height: g.outputHeight, width: g.outputWidth,
                             kernelHeight: kernelSize, kernelWidth: kernelSize, stride: 1, padding: pad)
        return t.outputHeight == g.height && t.outputWidth == g.width ? t : nil
    }

    /// `W'[ci, (co·k + a)·k + b] = W[co, ci, k−1−a, k−1−b]`, shape `[Cin, Cout·k·k]`.
    private func flippedWeight() -> [Float] {
        let k = kernelSize, kk = k * k
        var out = [Float](repeating: 0, count: weight.value.count)
        weight.value.storage.withUnsafeBufferPointer { w in
            for co in 0..<outputChannels {
                for ci in 0..<inputChannels {
                    for a in 0..<k {
                        for b in 0..<k {
                            out[ci * outputChannels * kk + (co * k + a) * k + b] =
                                w[(co * inputChannels + ci) * kk + (k - 1 - a) * k + (k - 1 - b)]
                        }
                    }
                }
            }
        }
        return out
    }

    public func untimedBackward(_ dy: Tensor) -> Tensor {
        guard let g = geometry else { preconditionFailure("Conv2d.backward without a training forward") }
        let cols = g.columnCount, plane = g.outputHeight * g.outputWidth
        precondition(dy.count == outputChannels * cols, "Conv2d.backward: gradient \(dy.shape) does not match output")
        if let whole = kernel as? ConvolutionKernel, whole.supportsDirect(g) {
            return wholeBackward(whole, dy, g)
        }
        let fanIn = g.columnRows
        let per = imagesPerChunk(g)
        let chunks = (g.batch + per - 1) / per
        // One partial weight gradient per chunk (in the kernel's layout), summed in
        // chunk order. The chunks' size follows the thread count (`imagesPerChunk`: at
        // least two chunks a thread), so the sum may differ in the last bits between
        // thread counts.
        let blockSize = kernel.gradientCount
        var partials = [Float](repeating: 0, count: chunks * blockSize)
        // With the dense kernel, stride-1 convolutions get dL/dx as a forward
        // convolution of dy with the flipped, transposed kernel (one efficient GEMM,
        // no scatter-add); others use col2im on Wᵀ·dy.
        let direct = usesDirect(width: g.width)
        let transposed = stride == 1 && !isPointwise && !direct && kernel.isDense ? transposedGeometry(g) : nil
        let flipped = transposed != nil && computesInputGradient ? flippedWeight() : []
        let directFlipped = direct && computesInputGradient
            ? DirectConvolution.arrange(weight.value.storage, outputs: outputChannels, inputs: inputChannels, flipped: true)
            : []
        let inPlane = g.height * g.width
        var dx = !computesInputGradient ? Tensor(shape: [0])
            : transposed != nil || direct || isPointwise
                ? Tensor(uninitializedShape: [g.channels, g.batch, g.height, g.width])
                : Tensor(shape: [g.channels, g.batch, g.height, g.width])
        let wantInput = computesInputGradient
        addBiasGradient(dy, columns: cols)
        dy.storage.withUnsafeBufferPointer { pdy in
            input.storage.withUnsafeBufferPointer { px in
                partials.withUnsafeMutableBufferPointer { pp in
                    dx.storage.withUnsafeMutableBufferPointer { pdx in
                        let partial = pp.baseAddress!, dxBase = pdx.baseAddress, dyBase = pdy.baseAddress!
                        forEachChunk(g) { chunk, images in
                            let dyChunk = pdy.baseAddress! + images.lowerBound * plane
                            let n = images.count * plane
                            let gradOut = ActivationView(dyChunk, features: outputChannels, columns: n,
                                                         leadingDimension: cols, batchMajor: false)
                            if direct && DirectConvolution.weightGradientIsFaster(inputChannels: inputChannels) {
                                DirectConvolution.weightGradient(px.baseAddress!, channels: inputChannels, dyBase,
                                                                 outputs: outputChannels,
                                                                 into: partial + chunk * blockSize,
                                                                 g, images: images)
                            } else {
                                // A direct layer kept its input, not its columns: build them here.
                                let built: UnsafeMutablePointer<Float>? = direct ? .allocate(capacity: fanIn * n) : nil
                                defer { built?.deallocate() }
                                if let built { Im2Col.im2col(px.baseAddress!, g, images: images, into: built) }
                                let col = isPointwise ? px.baseAddress! + images.lowerBound * plane
                                                      : UnsafePointer(built ?? stored.buffers[chunk])
                                let ld = isPointwise ? cols : n
                                kernel.weightGradient(gradOut, ActivationView(col, features: fanIn, columns: n,
                                                                              leadingDimension: ld, batchMajor: false),
                                                      into: partial + chunk * blockSize, parallel: false)
                            }
                            guard wantInput, let dxBase else { return }
                            if direct {
                                // dx = the same-size convolution of dy with the flipped, transposed kernel.
                                DirectConvolution.run(dyBase, channels: outputChannels, weight: directFlipped,
                                                      into: dxBase, outputs: g.channels, g, images: images,
                                                      accumulate: false)
                            } else if let tg = transposed {
                                // dx[:, chunk] = W'[Cin, Cout·kh·kw] · im2col'(dy chunk)
                                let tn = images.count * inPlane
                                let count = tg.columnRows * tn
                                let reuse = count <= g.columnRows * n
                                let dcol = reuse ? stored.buffers[chunk] : .allocate(capacity: count)
                                defer { if !reuse { dcol.deallocate() } }
                                Im2Col.im2col(dyBase, tg, images: images, into: dcol)
                                flipped.withUnsafeBufferPointer { pf in
                                    BLAS.gemm(m: g.channels, n: tn, k: tg.columnRows,
                                              a: pf.baseAddress!, lda: tg.columnRows, b: dcol, ldb: tn,
                                              c: dxBase + images.lowerBound * inPlane, ldc: g.batch * inPlane,
                                              parallel: false)
                                }
                            } else if isPointwise {
                                // dx[:, chunk] = Wᵀ · dy[:, chunk], in place.
                                kernel.backwardInput(gradOut, into: MutableActivationView(
                                    dxBase + images.lowerBound * plane, features: fanIn, columns: n,
                                    leadingDimension: cols, batchMajor: false), parallel: false)
                            } else {
                                let dcol = stored.buffers[chunk]   // its columns are no longer needed
                                kernel.backwardInput(gradOut, into: MutableActivationView(
                                    dcol, features: fanIn, columns: n, leadingDimension: n, batchMajor: false),
                                                     parallel: false)
                                Im2Col.col2im(dcol, g, images: images, addingInto: dxBase)
                            }
                        }
                    }
                }
            }
        }
        partials.withUnsafeMutableBufferPointer { pp in
            let total = pp.baseAddress!
            for chunk in 1..<max(chunks, 1) {
                let src = total + chunk * blockSize
                for i in 0..<blockSize { total[i] += src[i] }
            }
            kernel.addGradient(total)
        }
        geometry = nil
        input = Tensor(shape: [0])
        stored.release()
        if let plane = subsampledPlane, computesInputGradient {
            subsampledPlane = nil
            var full = Tensor(uninitializedShape: [g.channels, g.batch, plane.height, plane.width])
            dx.storage.withUnsafeBufferPointer { d in
                full.storage.withUnsafeMutableBufferPointer { f in
                    Im2Col.upsample(d.baseAddress!, channels: g.channels, batch: g.batch, height: plane.height,
                                    width: plane.width, stride: stride, into: f.baseAddress!)
                }
            }
            return full
        }
        subsampledPlane = nil
        return dx
    }

    /// The positions a strided 1×1 convolution reads, `[C, N, ⌈H/s⌉, ⌈W/s⌉]`.
    private func subsampled(_ x: Tensor) -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        var out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], (h - 1) / stride + 1, (w - 1) / stride + 1])
        x.storage.withUnsafeBufferPointer { px in
            out.storage.withUnsafeMutableBufferPointer { po in
                Im2Col.subsample(px.baseAddress!, channels: x.shape[0], batch: x.shape[1], height: h, width: w, stride: stride,
                                 into: po.baseAddress!)
            }
        }
        return out
    }
}

extension Conv2d {
    /// Backward through a kernel that convolves whole tensors.
    private func wholeBackward(_ whole: ConvolutionKernel, _ dy: Tensor, _ g: ConvGeometry) -> Tensor {
        addBiasGradient(dy, columns: g.columnCount)
        var dx = Tensor(uninitializedShape: computesInputGradient ? [g.channels, g.batch, g.height, g.width] : [0])
        dy.storage.withUnsafeBufferPointer { pdy in
            input.storage.withUnsafeBufferPointer { px in
                dx.storage.withUnsafeMutableBufferPointer { pdx in
                    whole.convolveBackward(pdy.baseAddress!, input: px.baseAddress!, g,
                                           inputGradient: computesInputGradient ? pdx.baseAddress : nil)
                }
            }
        }
        geometry = nil
        input = Tensor(shape: [0])
        return dx
    }

    /// `bias.gradient[o] += Σ dy[o, :]`.
    func addBiasGradient(_ dy: Tensor, columns: Int) {
        guard let bias else { return }
        dy.storage.withUnsafeBufferPointer { pdy in
            bias.gradient.storage.withUnsafeMutableBufferPointer { pdb in
                for o in 0..<outputChannels { pdb[o] += Vector.sum(pdy.baseAddress! + o * columns, count: columns) }
            }
        }
    }
}

/// Raw buffers that outlive one call (freed on `release` or with the owner).
final class ColumnStore {
    private(set) var buffers: [UnsafeMutablePointer<Float>] = []

    func allocate(_ counts: [Int]) {
        release()
        buffers = counts.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0, 1)) }
    }

    func release() {
        for b in buffers { b.deallocate() }
        buffers = []
    }

    deinit { release() }
}
