import DSCore
import DSLayers
import DSSparsity
import DSTestSupport
import Testing

/// The sparse training kernels against Double references: forward `W·x`, input
/// gradient `Wᵀ·dy` and the weight gradient (sampled at the active positions, or
/// dense), over both structures, both activation layouts, odd shapes and thread counts.
@Suite struct SparseKernelTests {
    /// A random mask: constant fan-in `k` (with ablated rows) or unstructured at `density`.
    func mask(rows: Int, columns: Int, constantFanIn k: Int?, density: Double, seed: UInt64) -> SparseMask {
        var rng = Xoshiro256(seed: seed)
        if let k {
            var indices: [Int] = []
            for r in 0..<rows where r % 5 != 1 {   // every fifth row ablated
                indices += Selection.random(k, of: Array(0..<columns), using: &rng).map { r * columns + $0 }
            }
            return SparseMask(rows: rows, columns: columns, activeIndices: indices)
        }
        return SparseMask(rows: rows, columns: columns,
                          active: (0..<(rows * columns)).map { _ in rng.uniformDouble() < density })
    }

    /// A weight parameter holding random values at `mask`'s active positions.
    func weight(_ mask: SparseMask, seed: UInt64) -> Parameter {
        var rng = Xoshiro256(seed: seed)
        let values = (0..<(mask.rows * mask.columns)).map { mask.active[$0] ? rng.normal() : 0 }
        return Parameter(name: "weight", role: .weight, value: Tensor(shape: [mask.rows, mask.columns], values: values),
                         matrixShape: (mask.rows, mask.columns))
    }

    /// `[features, n]` → `[n, features]`.
    func transposed(_ a: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: a.count)
        for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = a[r * columns + c] } }
        return out
    }

    /// (rows, fan-in, constant fan-in k or nil for unstructured at 15%).
    let shapes: [(Int, Int, Int?)] = [(12, 40, 4), (33, 300, nil), (17, 150, 1), (64, 1100, 30), (5, 9, nil)]

    @Test(arguments: [1, 5, 16, 37, 64, 130, 144])
    func productsEqualTheReference(columns n: Int) {
        for (rows, fanIn, k) in shapes {
            let m = mask(rows: rows, columns: fanIn, constantFanIn: k, density: 0.15, seed: UInt64(rows * fanIn))
            let w = weight(m, seed: 7)
            let kernel = SparseWeightKernel(weight: w, mask: m)
            #expect(kernel.pattern.count == m.count)
            #expect((kernel.pattern.constantFanIn != nil) == (k != nil))
            let x = randomTensor([fanIn, n], seed: 3).storage, dy = randomTensor([rows, n], seed: 4).storage
            let bias = randomTensor([rows], seed: 5).storage
            let yRef = SparseProducts.referenceProduct(weight: w.value.storage, outputs: rows, features: fanIn, x: x,
                                                       columns: n, bias: bias)
            let wT = transposed(w.value.storage, rows: rows, columns: fanIn)
            let dxRef = SparseProducts.referenceProduct(weight: wT, outputs: fanIn, features: rows, x: dy, columns: n,
                                                        bias: nil)
            let gRef = SparseProducts.referenceSampled(mask: m, dy: dy, x: x, columns: n)
            // The AVX-512 kernels (where the CPU has them) and the Swift ones; operands at
            // every 64-byte alignment class the kernels treat differently (offset floats).
            let variants = (SparseProducts.nativeKernels ? [(true, 0), (true, 5), (true, 12)] : []) + [(false, 0), (false, 5)]
            // The AVX-512 sampled gradient is the same to the bit whatever the operands'
            // alignment, layout and thread count.
            var nativeGradient: [Float]?
            for threads in [1, 2] {
                for batchMajor in [false, true] {
                  for (native, offset) in variants {
                    kernel.usesNativeKernels = native
                    let label = "\(rows)x\(fanIn) k=\(k.map(String.init) ?? "csr") n=\(n) threads \(threads) batch-major \(batchMajor) native \(native) offset \(offset)"
                    // Batch-major operands are the transposes of the feature-major ones.
                    let xs = batchMajor ? transposed(x, rows: fanIn, columns: n) : x
                    let dys = batchMajor ? transposed(dy, rows: rows, columns: n) : dy
                    func view(_ a: [Float], _ features: Int, _ body: (ActivationView) -> Void) {
                        let shifted = [Float](repeating: .nan, count: offset) + a
                        shifted.withUnsafeBufferPointer {
                            body(ActivationView($0.baseAddress! + offset, features: features, columns: n,
                                                leadingDimension: batchMajor ? features : n, batchMajor: batchMajor))
                        }
                    }
                    func output(_ features: Int, _ body: (MutableActivationView) -> Void) -> [Float] {
                        var out = [Float](repeating: .nan, count: features * n)
                        out.withUnsafeMutableBufferPointer {
                            body(MutableActivationView($0.baseAddress!, features: features, columns: n,
                                                       leadingDimension: batchMajor ? features : n, batchMajor: batchMajor))
                        }
                        return batchMajor ? transposed(out, rows: n, columns: features) : out
                    }
                    for parallel in [true, false] {
                        Parallel.withThreads(threads) {
                            let y = output(rows) { out in
                                view(xs, fanIn) { v in
                                    bias.withUnsafeBufferPointer {
                                        kernel.forward(v, bias: $0.baseAddress!, into: out, parallel: parallel)
                                    }
                                }
                            }
                            #expect(worstRelativeDifference(y, yRef) < 1e-5, "forward \(label)")
                            let dx = output(fanIn) { out in view(dys, rows) { kernel.backwardInput($0, into: out, parallel: parallel) } }
                            #expect(worstRelativeDifference(dx, dxRef) < 1e-5, "input gradient \(label)")
                            // Sampled weight gradient into the active gradient, added twice.
                            w.zeroGradient()
                            for _ in 0..<2 {
                                view(dys, rows) { d in view(xs, fanIn) { kernel.backwardWeight(d, $0, parallel: parallel) } }
                            }
                            let active = m.activeIndices.map { 2 * gRef[$0] }
                            #expect(worstRelativeDifference(w.activeGradient, active) < 1e-5, "sampled gradient \(label)")
                            #expect(w.gradient.storage.allSatisfy { $0 == 0 }, "no dense gradient \(label)")
                            if native {
                                if let first = nativeGradient {
                                    #expect(w.activeGradient == first, "sampled gradient to the bit \(label)")
                                } else {
                                    nativeGradient = w.activeGradient
                                }
                            }
                        }
                    }
                  }
                }
            }
            // Dense-gradient mode: the full dense gradient, and the active one taken from it.
            kernel.computesDenseGradient = true
            var dense = [Float](repeating: 0, count: rows * fanIn)
            for r in 0..<rows {
                for f in 0..<fanIn {
                    var s = 0.0
                    for c in 0..<n { s += Double(dy[r * n + c]) * Double(x[f * n + c]) }
                    dense[r * fanIn + f] = Float(s)
                }
            }
            w.zeroGradient()
            dy.withUnsafeBufferPointer { pdy in
                x.withUnsafeBufferPointer { px in
                    kernel.backwardWeight(ActivationView(pdy.baseAddress!, features: rows, columns: n, leadingDimension: n, batchMajor: false),
                                          ActivationView(px.baseAddress!, features: fanIn, columns: n, leadingDimension: n, batchMajor: false),
                                          parallel: true)
                }
            }
            #expect(w.holdsDenseGradient)
            #expect(worstRelativeDifference(w.gradient.storage, dense) < 1e-4, "dense gradient \(rows)x\(fanIn)")
            #expect(worstRelativeDifference(w.activeGradient, m.activeIndices.map { dense[$0] }) < 1e-4)
            w.zeroGradient()
            #expect(!w.holdsDenseGradient && w.gradient.storage.allSatisfy { $0 == 0 })
        }
    }

    /// A ReLU taken over by a kernel (`forward(rectify:)`, `backwardInput(maskedBy:)`)
    /// gives the ReLU layer's results bit for bit — NaN kept forward and stopped backward,
    /// zero and negative mask values stopping the gradient — on the AVX-512 kernel (which
    /// applies it as it stores), the Swift kernel and the dense kernel (passes after),
    /// in both layouts.
    @Test func aTakenOverReLUMatchesTheReLULayer() {
        let rows = 24, fanIn = 70, n = 37
        let m = mask(rows: rows, columns: fanIn, constantFanIn: nil, density: 0.2, seed: 11)
        var x = randomTensor([fanIn, n], seed: 12).storage
        x[5 * n + 3] = .nan   // a NaN input reaches the outputs of the rows that read feature 5
        var reluOutput = randomTensor([fanIn, n], seed: 13).storage.map { max($0, 0) }
        reluOutput[7] = .nan; reluOutput[8] = -0.0; reluOutput[9] = -1
        let dy = randomTensor([rows, n], seed: 14).storage
        // Positions whose bits differ (an empty list when the two agree bit for bit).
        let differing = { (a: [Float], b: [Float]) in a.indices.filter { a[$0].bitPattern != b[$0].bitPattern } }
        let kernels: [(String, (Parameter) -> WeightKernel)] = [
            ("native", { w in let k = SparseWeightKernel(weight: w, mask: m); k.usesNativeKernels = SparseProducts.nativeKernels; return k }),
            ("swift", { w in let k = SparseWeightKernel(weight: w, mask: m); k.usesNativeKernels = false; return k }),
            ("dense", { DenseWeightKernel(weight: $0) }),
        ]
        for (name, make) in kernels {
            let kernel = make(weight(m, seed: 15))
            for batchMajor in [false, true] {
                let label = "\(name) batch-major \(batchMajor)"
                let layout = { (a: [Float], features: Int) in batchMajor ? self.transposed(a, rows: features, columns: n) : a }
                func run(_ input: [Float], _ features: Int, _ outputs: Int,
                         _ body: (ActivationView, MutableActivationView) -> Void) -> [Float] {
                    var out = [Float](repeating: 0, count: outputs * n)
                    layout(input, features).withUnsafeBufferPointer { px in
                        out.withUnsafeMutableBufferPointer { po in
                            body(ActivationView(px.baseAddress!, features: features, columns: n,
                                                leadingDimension: batchMajor ? features : n, batchMajor: batchMajor),
                                 MutableActivationView(po.baseAddress!, features: outputs, columns: n,
                                                       leadingDimension: batchMajor ? outputs : n, batchMajor: batchMajor))
                        }
                    }
                    return out
                }
                let plain = run(x, fanIn, rows) { kernel.forward($0, bias: nil, into: $1, parallel: true) }
                let fused = run(x, fanIn, rows) { kernel.forward($0, bias: nil, rectify: true, into: $1, parallel: true) }
                #expect(plain.contains { $0.isNaN } && plain.contains { $0 < 0 }, "\(label): the case has NaN and negatives")
                let rectified = ReLU().forward(Tensor(shape: [plain.count], values: plain), training: false).storage
                #expect(differing(fused, rectified).isEmpty, "forward \(label)")
                let mask = layout(reluOutput, fanIn)
                let dxPlain = run(dy, rows, fanIn) { kernel.backwardInput($0, into: $1, parallel: true) }
                let dxFused = mask.withUnsafeBufferPointer { pm in
                    run(dy, rows, fanIn) { d, out in
                        kernel.backwardInput(d, maskedBy: ActivationView(pm.baseAddress!, features: fanIn, columns: n,
                                                                         leadingDimension: batchMajor ? fanIn : n,
                                                                         batchMajor: batchMajor),
                                             into: out, parallel: true)
                    }
                }
                let expected = ReLU.gradient(Tensor(shape: [dxPlain.count], values: dxPlain),
                                             output: Tensor(shape: [mask.count], values: mask)).storage
                #expect(differing(dxFused, expected).isEmpty, "input gradient \(label)")
            }
        }
    }

    @Test func patternOrdersAgree() {
        let m = mask(rows: 9, columns: 13, constantFanIn: nil, density: 0.3, seed: 2)
        let p = SparsePattern(mask: m)
        #expect(p.positions.map(Int.init) == m.activeIndices)
        // Column order lists the same entries, each column's rows ascending.
        var seen: [Int] = []
        for c in 0..<13 {
            let rows = (Int(p.columnStart[c])..<Int(p.columnStart[c + 1])).map { Int(p.rowIndex[$0]) }
            #expect(rows == rows.sorted())
            for (e, r) in zip(Int(p.columnStart[c])..<Int(p.columnStart[c + 1]), rows) {
                #expect(Int(p.transposedPositions[e]) == r * 13 + c && m.active[r * 13 + c])
                seen.append(r * 13 + c)
            }
        }
        #expect(seen.sorted() == m.activeIndices)
        #expect(p.structureName == "csr")
        let empty = SparsePattern(mask: SparseMask(rows: 3, columns: 4, active: [Bool](repeating: false, count: 12)))
        #expect(empty.count == 0 && empty.constantFanIn == nil)
    }

    /// Masks large enough to be built in parts on the threads (rows of one part empty,
    /// constant fan-in and not) give the patterns of one thread.
    @Test func largePatternsAreTheSameOnAnyThreadCount() {
        for (rows, columns, k) in [(300, 784, Optional(62)), (257, 300, nil), (5, 20_000, nil)] {
            var m = mask(rows: rows, columns: columns, constantFanIn: k, density: 0.08, seed: UInt64(rows))
            for c in 0..<columns { m.active[c] = false }   // an empty first row
            let one = Parallel.withThreads(1) { SparsePattern(mask: m) }
            #expect(one.positions.map(Int.init) == m.activeIndices, "\(rows)x\(columns)")
            for threads in [2, 3] {
                let p = Parallel.withThreads(threads) { SparsePattern(mask: m) }
                #expect(p == one && p.positions == one.positions && p.columnStart == one.columnStart
                        && p.transposedEntries == one.transposedEntries, "\(rows)x\(columns) threads \(threads)")
            }
        }
    }

    @Test(arguments: [true, false])
    func emptyLayerOutputsItsBias(native: Bool) {
        let m = SparseMask(rows: 3, columns: 4, active: [Bool](repeating: false, count: 12))
        let kernel = SparseWeightKernel(weight: weight(m, seed: 1), mask: m)
        kernel.usesNativeKernels = native && SparseProducts.nativeKernels
        let x = randomTensor([4, 2], seed: 1).storage, bias: [Float] = [1, 2, 3]
        var y = [Float](repeating: .nan, count: 6)
        x.withUnsafeBufferPointer { px in
            bias.withUnsafeBufferPointer { pb in
                y.withUnsafeMutableBufferPointer {
                    kernel.forward(ActivationView(px.baseAddress!, features: 4, columns: 2, leadingDimension: 2, batchMajor: false),
                                   bias: pb.baseAddress!,
                                   into: MutableActivationView($0.baseAddress!, features: 3, columns: 2, leadingDimension: 2,
                                                               batchMajor: false), parallel: true)
                }
            }
        }
        #expect(y == [1, 1, 2, 2, 3, 3])
    }

    /// One kernel on a Linear layer through batches of changing size, batch-major as the
    /// layer gives them: the transposed copies it keeps from step to step grow and are
    /// reused, and every output and gradient is the reference's.
    @Test func aKernelServesBatchesOfChangingSize() {
        let m = mask(rows: 20, columns: 50, constantFanIn: 6, density: 0, seed: 3)
        var rng = Xoshiro256(seed: 4)
        let layer = Linear(inputFeatures: 50, outputFeatures: 20, bias: false, rng: &rng)
        layer.weight.value = weight(m, seed: 5).value
        layer.kernel = SparseWeightKernel(weight: layer.weight, mask: m)
        for (step, n) in [3, 40, 7, 40, 1].enumerated() {
            let x = randomTensor([n, 50], seed: UInt64(10 + step)), dy = randomTensor([n, 20], seed: UInt64(20 + step))
            let xT = transposed(x.storage, rows: n, columns: 50), dyT = transposed(dy.storage, rows: n, columns: 20)
            layer.zeroGradients()
            let y = layer.forward(x, training: true)
            let dx = layer.backward(dy)
            let yRef = SparseProducts.referenceProduct(weight: layer.weight.value.storage, outputs: 20, features: 50, x: xT,
                                                       columns: n, bias: nil)
            let dxRef = SparseProducts.referenceProduct(weight: transposed(layer.weight.value.storage, rows: 20, columns: 50),
                                                        outputs: 50, features: 20, x: dyT, columns: n, bias: nil)
            let gRef = SparseProducts.referenceSampled(mask: m, dy: dyT, x: xT, columns: n)
            #expect(worstRelativeDifference(transposed(y.storage, rows: n, columns: 20), yRef) < 1e-5, "forward, batch \(n)")
            #expect(worstRelativeDifference(transposed(dx.storage, rows: n, columns: 50), dxRef) < 1e-5, "input gradient, batch \(n)")
            #expect(worstRelativeDifference(layer.weight.activeGradient, m.activeIndices.map { gRef[$0] }) < 1e-5,
                    "weight gradient, batch \(n)")
        }
    }

    /// An exported condensed layer as a layer kernel: the layer's weight becomes the
    /// export's, and its outputs match the reference at batch 1 and above.
    @Test func condensedKernelRunsAnExport() throws {
        let m = mask(rows: 20, columns: 90, constantFanIn: 7, density: 0, seed: 11)
        let w = weight(m, seed: 3)
        let c = try CondensedLinear(name: "fc", weight: w.value.storage, mask: m, bias: nil)
        var rng = Xoshiro256(seed: 1)
        let linear = Linear(inputFeatures: 90, outputFeatures: 20, rng: &rng)
        linear.kernel = CondensedWeightKernel(c, weight: linear.weight)
        #expect(linear.weight.value.storage == w.value.storage)
        for batch in [1, 3, 70] {
            let x = randomTensor([batch, 90], seed: UInt64(batch))
            let y = linear.forward(x, training: false).storage
            let ref = c.referenceForward(x.storage, batch: batch)
            let withBias = (0..<(batch * 20)).map { ref[$0] + linear.bias!.value.storage[$0 % 20] }
            #expect(worstRelativeDifference(y, withBias) < 1e-5, "batch \(batch)")
        }
    }
}

/// The column-matrix-free sparse convolution (3×3, stride 1, padding 1), both the
/// AVX-512 kernels on unpadded planes (where the plane size allows) and the padded-plane
/// products, against the same layer on the dense kernel with the masked weight:
/// outputs, input gradients and the weight gradient (sampled, and dense on update steps).
@Suite struct SparseConvolutionTests {
    // (Cin, Cout, batch, height, width, bias, constant fan-in)
    // Planes of any size run the AVX-512 kernels: whole blocks (8×8, 16×16, 32×32, 8×16),
    // partial last vectors and blocks (5×7, 1×9, 7×7, 14×14, 28×28, 4×4) and rows that
    // do not line up with blocks (6×48); shapes 11 and 12 take their weight gradient in
    // several tiles of images (inputs over 256 KB an image tile); shape 16 takes it in
    // units of four images and one left over (planes of four vectors). Planes of one
    // vector (4×4, 3×3, 2×8) run images side by side: shape 17 in units of 16 images and 8
    // with some left over, shape 19's weight gradient with its 72 channels in two groups.
    // Planes whose rows are whole vectors (16, 32 and 64 wide: shapes 2, 3, 11, 12, 20) go
    // by columns; 8-wide planes a multiple of 8 high (8×8, 16×8) by columns over two
    // images side by side, a lone last image when the count is odd (shapes 16, 21). The forward and input
    // gradient read shifted copies where a vector holds whole rows or a row whole
    // vectors (widths 4, 8, 16, 32, 48 here, and 2×8, 12×4), or rows padded to 8 (5×7,
    // 7×7, and 3×8, whose last vector runs past the plane), else masked loads.
    static let shapes: [(Int, Int, Int, Int, Int, Bool, Bool)] = [
        (3, 5, 2, 8, 8, true, false), (4, 6, 3, 5, 7, false, true), (8, 16, 2, 16, 16, false, true),
        (16, 8, 1, 32, 32, true, false), (2, 3, 4, 1, 9, false, false), (5, 4, 3, 8, 16, true, false),
        (6, 4, 3, 7, 7, false, true), (4, 5, 2, 14, 14, true, false), (3, 4, 2, 28, 28, false, true),
        (8, 6, 3, 4, 4, false, false), (3, 2, 2, 6, 48, true, false),
        (24, 4, 3, 32, 32, false, true), (64, 3, 5, 16, 16, true, false),
        (5, 3, 2, 2, 8, true, false), (4, 3, 3, 12, 4, false, true), (3, 4, 2, 3, 8, true, true),
        (6, 5, 5, 8, 8, false, true), (6, 4, 19, 4, 4, true, false), (4, 3, 9, 3, 3, false, true),
        (72, 8, 9, 4, 4, false, false), (40, 4, 2, 8, 64, true, false), (4, 3, 3, 16, 8, true, false),
    ]

    @Test(arguments: 0..<22)
    func directSparseConvolutionEqualsTheMaskedDenseOne(shape: Int) {
        let (cin, cout, batch, height, width, hasBias, constant) = Self.shapes[shape]
        Self.check(cin, cout, batch, height, width, hasBias: hasBias, constant: constant, stride: 1, seed: shape + 1)
    }

    // Stride 2 on the phase planes (8×8, 7×7, 14×14, 16×16 and 4×4 of them, with a bias,
    // constant fan-in, a partial last vector), and planes it does not take (odd: the columns).
    static let strided: [(Int, Int, Int, Int, Int, Bool, Bool)] = [
        (3, 5, 2, 16, 16, true, false), (4, 6, 3, 14, 14, false, true), (5, 3, 2, 28, 28, false, false),
        (2, 4, 2, 32, 32, false, true), (3, 4, 2, 15, 15, true, false), (6, 4, 2, 16, 20, false, false),
        (3, 4, 17, 8, 8, true, false),
    ]

    @Test(arguments: 0..<7)
    func stridedSparseConvolutionEqualsTheMaskedDenseOne(shape: Int) {
        let (cin, cout, batch, height, width, hasBias, constant) = Self.strided[shape]
        Self.check(cin, cout, batch, height, width, hasBias: hasBias, constant: constant, stride: 2, seed: shape + 40)
        // Even planes run on the phase planes where the CPU has AVX-512; odd ones never.
        var rng = Xoshiro256(seed: 1)
        let conv = Conv2d(inputChannels: cin, outputChannels: cout, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        let kernel = SparseWeightKernel(weight: conv.weight, mask: .dense(rows: cout, columns: cin * 9))
        let g = ConvGeometry(channels: cin, batch: batch, height: height, width: width, kernelHeight: 3, kernelWidth: 3,
                             stride: 2, padding: 1)
        #expect(kernel.supportsDirect(g) == (height % 2 == 0 && width % 2 == 0 && SparseProducts.nativeKernels))
    }

    /// Forward, input gradient and weight gradient (sampled, and dense on update steps)
    /// of a 3×3, padding-1 convolution on the sparse kernel against the dense kernel on
    /// the masked weight, on one and two threads, native kernels on and off.
    static func check(_ cin: Int, _ cout: Int, _ batch: Int, _ height: Int, _ width: Int, hasBias: Bool,
                      constant: Bool, stride: Int, seed: Int) {
        let shape = "\(cin)→\(cout) \(height)x\(width) stride \(stride)"
        var rng = Xoshiro256(seed: UInt64(seed))
        let dense = Conv2d(inputChannels: cin, outputChannels: cout, kernelSize: 3, stride: stride, padding: 1,
                           bias: hasBias, rng: &rng)
        let sparse = Conv2d(inputChannels: cin, outputChannels: cout, kernelSize: 3, stride: stride, padding: 1,
                            bias: hasBias, rng: &rng)
        let fanIn = cin * 9
        let mask: SparseMask
        if constant {
            var indices: [Int] = []
            for r in 0..<cout where r != 1 { indices += Selection.random(max(1, fanIn / 4), of: Array(0..<fanIn), using: &rng).map { r * fanIn + $0 } }
            mask = SparseMask(rows: cout, columns: fanIn, activeIndices: indices)
        } else {
            mask = SparseMask(rows: cout, columns: fanIn, active: (0..<(cout * fanIn)).map { _ in rng.uniformDouble() < 0.3 })
        }
        for i in 0..<mask.active.count where !mask.active[i] { dense.weight.value.storage[i] = 0 }
        sparse.weight.value = dense.weight.value
        if hasBias { sparse.bias!.value = dense.bias!.value }
        let kernel = SparseWeightKernel(weight: sparse.weight, mask: mask)
        sparse.kernel = kernel
        let x = randomTensor([cin, batch, height, width], seed: 4)
        let dy = randomTensor([cout, batch, (height - 1) / stride + 1, (width - 1) / stride + 1], seed: 5)
        // Native kernels with the weight gradient's blocked form as the pattern decides
        // (nil) and forced (these patterns are too small to choose it).
        let runs: [(Int, Bool, Bool?)] = [(1, true, nil), (2, true, nil), (1, true, true), (2, true, true),
                                          (1, false, nil), (2, false, nil)]
        var sampledOnOneThread: [String: [Float]] = [:]
        let g = ConvGeometry(channels: cin, batch: batch, height: height, width: width, kernelHeight: 3, kernelWidth: 3,
                             stride: stride, padding: 1)
        for (threads, native, blocked) in runs {
            for denseGradient in [false, true] {
                let label = "\(shape) threads \(threads) native \(native) blocked \(String(describing: blocked)) dense gradient \(denseGradient)"
                kernel.computesDenseGradient = denseGradient
                kernel.usesNativeConvolution = native
                kernel.blockedConvolutionGradient = blocked
                dense.zeroGradients(); sparse.zeroGradients()
                let (yd, ys, dxd, dxs) = Parallel.withThreads(threads) { () -> (Tensor, Tensor, Tensor, Tensor) in
                    let yd = dense.forward(x, training: true), ys = sparse.forward(x, training: true)
                    return (yd, ys, dense.backward(dy), sparse.backward(dy))
                }
                #expect(worstRelativeDifference(ys.storage, yd.storage) < 1e-5, "forward \(label)")
                #expect(worstRelativeDifference(dxs.storage, dxd.storage) < 1e-5, "input gradient \(label)")
                let expected = mask.activeIndices.map { dense.weight.gradient.storage[$0] }
                #expect(worstRelativeDifference(sparse.weight.activeGradient, expected) < 1e-4, "weight gradient \(label)")
                // The direct kernels' sampled gradient does not depend on the thread count,
                // to the bit (layers on im2col columns sum per-chunk parts whose chunks
                // follow the thread count).
                let form = "\(native) \(String(describing: blocked))"
                if !denseGradient && kernel.supportsDirect(g) {
                    if let oneThread = sampledOnOneThread[form] {
                        #expect(sparse.weight.activeGradient == oneThread, "thread-independent weight gradient \(label)")
                    } else {
                        sampledOnOneThread[form] = sparse.weight.activeGradient
                    }
                }
                if denseGradient {
                    #expect(worstRelativeDifference(sparse.weight.gradient.storage, dense.weight.gradient.storage) < 1e-4, "dense gradient \(label)")
                }
                if hasBias { #expect(worstRelativeDifference(sparse.bias!.gradient.storage, dense.bias!.gradient.storage) < 1e-5) }
                // Evaluation reuses nothing from training.
                #expect(worstRelativeDifference(sparse.forward(x, training: false).storage, yd.storage) < 1e-5)
            }
        }
    }
}
