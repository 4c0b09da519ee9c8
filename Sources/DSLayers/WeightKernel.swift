import DSCore

/// A read-only `features × columns` block of activations as a weight kernel sees it:
/// feature-major (`x[f · ld + c]`, a convolution's im2col columns) or batch-major
/// (`x[c · ld + f]`, a Linear layer's `[N, features]` input).
public struct ActivationView {
    public var base: UnsafePointer<Float>
    public var features: Int
    public var columns: Int
    /// Distance between consecutive features (feature-major) or columns (batch-major).
    public var leadingDimension: Int
    public var batchMajor: Bool

    public init(_ base: UnsafePointer<Float>, features: Int, columns: Int, leadingDimension: Int, batchMajor: Bool) {
        self.base = base; self.features = features; self.columns = columns
        self.leadingDimension = leadingDimension; self.batchMajor = batchMajor
    }
}

/// A writable block of activations, laid out like `ActivationView`.
public struct MutableActivationView {
    public var base: UnsafeMutablePointer<Float>
    public var features: Int
    public var columns: Int
    public var leadingDimension: Int
    public var batchMajor: Bool

    public init(_ base: UnsafeMutablePointer<Float>, features: Int, columns: Int, leadingDimension: Int,
                batchMajor: Bool) {
        self.base = base; self.features = features; self.columns = columns
        self.leadingDimension = leadingDimension; self.batchMajor = batchMajor
    }

    /// Calls `body(row, index, count)` for each stored row (a column of a batch-major
    /// block, a feature of a feature-major one) with its `count` contiguous values.
    @inline(__always)
    public func forEachRow(_ body: (UnsafeMutablePointer<Float>, Int, Int) -> Void) {
        let rows = batchMajor ? columns : features, count = batchMajor ? features : columns
        for r in 0..<rows { body(base + r * leadingDimension, r, count) }
    }

    /// `v = max(v, 0)` on every value (a ReLU in place; NaN stays NaN, −0 becomes 0).
    public func rectify() {
        forEachRow { p, _, n in for i in 0..<n { p[i] = max(p[i], 0) } }
    }

    /// Zeroes the values where `reluOutput` (laid out as this block) is not above 0: the
    /// gradient through the ReLU that produced it.
    public func zeroWhereNotPositive(_ reluOutput: ActivationView) {
        let m = reluOutput
        precondition(m.features == features && m.columns == columns && m.batchMajor == batchMajor,
                     "ReLU mask \(m.features)x\(m.columns) for a \(features)x\(columns) gradient")
        forEachRow { p, row, n in
            let q = m.base + row * m.leadingDimension
            for i in 0..<n where !(q[i] > 0) { p[i] = 0 }
        }
    }

    public var readOnly: ActivationView {
        ActivationView(base, features: features, columns: columns, leadingDimension: leadingDimension,
                       batchMajor: batchMajor)
    }
}

/// How a Linear or Conv2d layer multiplies by its weight `W [nOut, fanIn]`, in training
/// and in evaluation. The dense kernel (GEMMs) is every layer's default; the sparse
/// kernels (DSSparsity) work on the active weights only.
///
/// A kernel owns the layout of the weight gradient it produces: `weightGradient` writes
/// `gradientCount` floats (every weight for a dense gradient, or the active weights in
/// the kernel's own order), and `addGradient` adds such a block into the parameter.
/// Layers that split a batch over threads sum per-chunk blocks in chunk order, so the
/// result does not depend on the thread count.
public protocol WeightKernel: AnyObject {
    /// `y = W · x + bias` (`bias` nil = 0); `x` has `fanIn` features, `y` has `nOut`.
    /// `parallel: false` keeps the work on the calling thread.
    func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, into y: MutableActivationView, parallel: Bool)
    /// `dx = Wᵀ · dy`, overwriting `dx`.
    func backwardInput(_ dy: ActivationView, into dx: MutableActivationView, parallel: Bool)
    /// Floats `weightGradient` writes in the kernel's current mode.
    var gradientCount: Int { get }
    /// `dy · xᵀ` in the kernel's gradient layout, overwriting `gradient[0..<gradientCount]`.
    func weightGradient(_ dy: ActivationView, _ x: ActivationView, into gradient: UnsafeMutablePointer<Float>,
                        parallel: Bool)
    /// Adds a block written by `weightGradient` into the weight's gradient.
    func addGradient(_ gradient: UnsafePointer<Float>)
    /// Adds `dy · xᵀ` into the weight's gradient (`weightGradient` then `addGradient`,
    /// unless the kernel can accumulate in place).
    func backwardWeight(_ dy: ActivationView, _ x: ActivationView, parallel: Bool)
    /// True for the dense GEMM kernel (layers may then use their own whole-image dense
    /// methods, such as the direct 3×3 convolution).
    var isDense: Bool { get }
    /// `forward`, then `y = max(y, 0)` when `rectify` (a Linear layer whose ReLU it
    /// took over); a kernel may apply it as it stores `y`.
    func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, rectify: Bool, into y: MutableActivationView,
                 parallel: Bool)
    /// `backwardInput`, then `dx` zeroed where `reluOutput` (the layer's input, laid out as
    /// `dx`, the output of the ReLU before it) is not above 0: the gradient through that
    /// ReLU too. A kernel may apply it as it stores `dx`.
    func backwardInput(_ dy: ActivationView, maskedBy reluOutput: ActivationView?, into dx: MutableActivationView,
                       parallel: Bool)
}

extension WeightKernel {
    public var isDense: Bool { false }

    public func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, rectify: Bool, into y: MutableActivationView,
                        parallel: Bool) {
        forward(x, bias: bias, into: y, parallel: parallel)
        if rectify { y.rectify() }
    }

    public func backwardInput(_ dy: ActivationView, maskedBy reluOutput: ActivationView?, into dx: MutableActivationView,
                              parallel: Bool) {
        backwardInput(dy, into: dx, parallel: parallel)
        if let reluOutput { dx.zeroWhereNotPositive(reluOutput) }
    }

    public func backwardWeight(_ dy: ActivationView, _ x: ActivationView, parallel: Bool) {
        backwardWeightThroughBlock(dy, x, parallel: parallel)
    }

    /// `weightGradient` into a block of `gradientCount` floats, then `addGradient`.
    public func backwardWeightThroughBlock(_ dy: ActivationView, _ x: ActivationView, parallel: Bool) {
        let block = UnsafeMutablePointer<Float>.allocate(capacity: max(gradientCount, 1))
        defer { block.deallocate() }
        weightGradient(dy, x, into: block, parallel: parallel)
        addGradient(block)
    }
}

/// The default kernel: `W` as a dense matrix, every product a GEMM.
public final class DenseWeightKernel: WeightKernel {
    public let weight: Parameter

    public init(weight: Parameter) { self.weight = weight }

    public var isDense: Bool { true }
    private var rows: Int { weight.matrixShape.rows }
    private var fanIn: Int { weight.matrixShape.columns }

    public func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, into y: MutableActivationView,
                        parallel: Bool) {
        precondition(x.features == fanIn && y.features == rows && x.columns == y.columns,
                     "DenseWeightKernel.forward: \(x.features)x\(x.columns) → \(y.features)x\(y.columns) for W \(rows)x\(fanIn)")
        DenseWeightKernel.fillBias(bias, y)
        let beta: Float = bias == nil ? 0 : 1
        weight.value.storage.withUnsafeBufferPointer { pw in
            if y.batchMajor {
                // y[N, out] = x[N, in] · Wᵀ (x stored [N, in], or [in, N] feature-major)
                BLAS.gemm(transposeA: !x.batchMajor, transposeB: true, m: y.columns, n: rows, k: fanIn,
                          a: x.base, lda: x.leadingDimension, b: pw.baseAddress!, ldb: fanIn, beta: beta,
                          c: y.base, ldc: y.leadingDimension, parallel: parallel)
            } else {
                // y[out, cols] = W · x[in, cols]
                BLAS.gemm(transposeB: x.batchMajor, m: rows, n: y.columns, k: fanIn, a: pw.baseAddress!, lda: fanIn,
                          b: x.base, ldb: x.leadingDimension, beta: beta, c: y.base, ldc: y.leadingDimension,
                          parallel: parallel)
            }
        }
    }

    /// Writes `bias[f]` into every column of feature `f` of `y` (nothing when nil).
    public static func fillBias(_ bias: UnsafePointer<Float>?, _ y: MutableActivationView) {
        guard let bias else { return }
        if y.batchMajor {
            for c in 0..<y.columns { (y.base + c * y.leadingDimension).update(from: bias, count: y.features) }
        } else {
            for f in 0..<y.features { (y.base + f * y.leadingDimension).update(repeating: bias[f], count: y.columns) }
        }
    }

    public func backwardInput(_ dy: ActivationView, into dx: MutableActivationView, parallel: Bool) {
        weight.value.storage.withUnsafeBufferPointer { pw in
            if dx.batchMajor {
                // dx[N, in] = dy[N, out] · W[out, in]
                BLAS.gemm(transposeA: !dy.batchMajor, m: dx.columns, n: fanIn, k: rows, a: dy.base,
                          lda: dy.leadingDimension, b: pw.baseAddress!, ldb: fanIn, c: dx.base,
                          ldc: dx.leadingDimension, parallel: parallel)
            } else {
                // dx[in, cols] = Wᵀ · dy[out, cols]
                BLAS.gemm(transposeA: true, transposeB: dy.batchMajor, m: fanIn, n: dx.columns, k: rows,
                          a: pw.baseAddress!, lda: fanIn, b: dy.base, ldb: dy.leadingDimension, c: dx.base,
                          ldc: dx.leadingDimension, parallel: parallel)
            }
        }
    }

    public var gradientCount: Int { weight.value.count }

    public func weightGradient(_ dy: ActivationView, _ x: ActivationView, into gradient: UnsafeMutablePointer<Float>,
                               parallel: Bool) {
        DenseWeightKernel.gemmGradient(dy, x, rows: rows, fanIn: fanIn, beta: 0, into: gradient, parallel: parallel)
    }

    /// `g[out, in] = beta · g + dy · xᵀ`, each operand in either layout:
    /// `dy[out, cols] · x[in, cols]ᵀ`, a batch-major operand read transposed.
    public static func gemmGradient(_ dy: ActivationView, _ x: ActivationView, rows: Int, fanIn: Int, beta: Float,
                                    into g: UnsafeMutablePointer<Float>, parallel: Bool) {
        BLAS.gemm(transposeA: dy.batchMajor, transposeB: !x.batchMajor, m: rows, n: fanIn, k: dy.columns,
                  a: dy.base, lda: dy.leadingDimension, b: x.base, ldb: x.leadingDimension, beta: beta,
                  c: g, ldc: fanIn, parallel: parallel)
    }

    public func addGradient(_ gradient: UnsafePointer<Float>) {
        weight.gradient.storage.withUnsafeMutableBufferPointer { g in
            for i in 0..<g.count { g[i] += gradient[i] }
        }
    }

    /// Accumulates straight into the parameter (no intermediate block).
    public func backwardWeight(_ dy: ActivationView, _ x: ActivationView, parallel: Bool) {
        weight.gradient.storage.withUnsafeMutableBufferPointer { g in
            DenseWeightKernel.gemmGradient(dy, x, rows: rows, fanIn: fanIn, beta: 1, into: g.baseAddress!,
                                           parallel: parallel)
        }
    }
}

/// A weight kernel that also runs whole convolutions on channel-major `[C, N, H, W]`
/// tensors, without a column matrix, for the geometries it supports (the sparse
/// kernels: 3×3, stride 1, padding 1).
public protocol ConvolutionKernel: WeightKernel {
    func supportsDirect(_ g: ConvGeometry) -> Bool
    /// `y [Cout, N, H, W] = W ⋆ x + bias`; `keepInput` keeps what the backward needs.
    func convolve(_ x: UnsafePointer<Float>, _ g: ConvGeometry, bias: UnsafePointer<Float>?,
                  into y: UnsafeMutablePointer<Float>, keepInput: Bool)
    /// Adds the weight gradient (the kernel's mode decides sparse or dense) and, when
    /// `inputGradient` is given, writes `dx [Cin, N, H, W]`; `x` is the forward's input.
    func convolveBackward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ g: ConvGeometry,
                          inputGradient: UnsafeMutablePointer<Float>?)
}

/// A layer with one prunable weight multiplied through a `WeightKernel` (Linear, Conv2d).
public protocol WeightLayer: Layer {
    var weight: Parameter { get }
    var kernel: WeightKernel { get set }
    /// Whether backward computes the gradient of the layer's input (false for a
    /// network's first layer).
    var computesInputGradient: Bool { get }
}

extension Linear: WeightLayer {}
extension Conv2d: WeightLayer {}
