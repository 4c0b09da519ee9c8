import CSparseKernels
import DSCore
import DSLayers

/// Channel-major planes `[C, N, H, W]` copied into zero-padded planes of `(H+2)×(W+2)`,
/// one long row per channel: element `(c, n, h, w)` sits at
/// `c·channelStride + guardSize + n·P + (h+1)·Wp + (w+1)` with `Wp = W+2`, `P = (H+2)·Wp`.
///
/// In this layout the 3×3 tap `(a, b)` of a "same" convolution is a constant shift,
/// `(a−1)·Wp + (b−1)`, so a sparse convolution is a sparse product over contiguous
/// runs, with no column matrix (docs/algorithms.md §6). A run of one image is its `H`
/// real rows including their two pad columns (`H·Wp` floats); outputs at pad columns
/// are computed and discarded.
struct PaddedPlanes {
    let channels: Int, batch: Int, height: Int, width: Int
    var paddedWidth: Int { width + 2 }
    var plane: Int { (height + 2) * (width + 2) }
    /// Room before the first and after the last plane for shifted reads (a whole run
    /// of the widest block past the end, plus a row).
    var guardSize: Int { 64 + 2 * paddedWidth + 2 }
    var channelStride: Int { batch * plane + 2 * guardSize }
    /// Floats of one image's run.
    var run: Int { height * paddedWidth }
    /// Offset of image `n`'s run from a channel's start.
    func runStart(_ n: Int) -> Int { guardSize + n * plane + paddedWidth }

    let storage: UnsafeMutablePointer<Float>

    /// Uninitialised planes (`fill` writes every float of them; an output's pads are
    /// never read).
    init(channels: Int, batch: Int, height: Int, width: Int) {
        self.channels = channels; self.batch = batch; self.height = height; self.width = width
        storage = .allocate(capacity: channels * (batch * (height + 2) * (width + 2) + 2 * (64 + 2 * (width + 2) + 2)))
    }

    func deallocate() { storage.deallocate() }

    /// Copies channel-major `x [C, N, H, W]` in, writing zeros at every pad and guard.
    func fill(from x: UnsafePointer<Float>, parallel: Bool) {
        let hw = height * width, wp = paddedWidth, g = guardSize, w = width
        Parallel.forRanges(channels, work: parallel ? channels * batch * hw : 0) { range in
            for c in range {
                let base = storage + c * channelStride
                Self.zero(base, g + wp)                                       // guard, image 0's top row
                for n in 0..<batch {
                    let src = x + (c * batch + n) * hw, dst = base + runStart(n)
                    for h in 0..<height {
                        let row = dst + h * wp
                        row[0] = 0
                        Self.copy(src + h * w, to: row + 1, w)
                        row[w + 1] = 0
                    }
                    // Bottom pad row, and the next image's top row (or the end guard).
                    Self.zero(dst + height * wp, n + 1 < batch ? 2 * wp : wp + g)
                }
            }
        }
    }

    @inline(__always)
    static func zero(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        p.update(repeating: 0, count: count)
    }

    /// `count` floats from `src` to `dst`, 16 at a time (rows are 8–64 floats: a
    /// library copy's call costs as much as the copy).
    @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i &+ 16 <= count {
            UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self),
                                                        as: SIMD16<Float>.self)
            i &+= 16
        }
        while i &+ 8 <= count {
            UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self),
                                                        as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count { dst[i] = src[i]; i &+= 1 }
    }

    /// Copies the real positions out into channel-major `y [C, N, H, W]`.
    func extract(into y: UnsafeMutablePointer<Float>, parallel: Bool) {
        let hw = height * width, wp = paddedWidth, w = width
        Parallel.forRanges(channels, work: parallel ? channels * batch * hw : 0) { range in
            for c in range {
                for n in 0..<batch {
                    let src = storage + c * channelStride + runStart(n) + 1, dst = y + (c * batch + n) * hw
                    for h in 0..<height { Self.copy(src + h * wp, to: dst + h * w, w) }
                }
            }
        }
    }

    /// The shift of tap `(a, b)` (flipped: the tap of the transposed convolution).
    func shift(tap: Int, flipped: Bool) -> Int {
        let a = tap / 3, b = tap % 3, s = (a - 1) * paddedWidth + (b - 1)
        return flipped ? -s : s
    }
}

/// The 3×3, stride-1, padding-1 convolution on a sparse weight, over padded planes.
enum SparseConvolution {
    /// `out[o][run] = bias[o] + Σ_{e ∈ row o} values[e] · input[channel(e)][run + shift(e)]`
    /// for every image's run; `start`/`index` is a pattern's row (or column) order with
    /// entries `ci·9 + tap`.
    static func product(start: [Int32], index: [Int32], values: [Float], bias: UnsafePointer<Float>?, flipped: Bool,
                        input: PaddedPlanes, output: PaddedPlanes, parallel: Bool) {
        let rows = output.channels
        // Each entry's offset from a channel-0 run position of the input.
        let offsets = index.map { e -> Int in
            let c = Int(e) / 9
            return c * input.channelStride + input.shift(tap: Int(e) % 9, flipped: flipped)
        }
        let run = input.run
        let work = parallel ? values.count * run * input.batch : 0
        values.withUnsafeBufferPointer { pv in
            offsets.withUnsafeBufferPointer { po in
                start.withUnsafeBufferPointer { ps in
                    Parallel.forRanges(input.batch, work: work) { images in
                        for n in images {
                            let x = UnsafePointer(input.storage) + input.runStart(n)
                            var c0 = 0
                            while c0 < run {
                                let width = run - c0 >= 64 ? 64 : run - c0 >= 16 ? 16 : 1
                                var r = 0
                                while r < rows {
                                    let s = Int(ps[r]), count = Int(ps[r + 1]) - s
                                    let out = output.storage + r * output.channelStride + output.runStart(n) + c0
                                    let b = bias?[r] ?? 0
                                    let v = pv.baseAddress.map { $0 + s }, o = po.baseAddress.map { $0 + s }
                                    switch width {
                                    case 64: block64(v, o, count, x + c0, b, out)
                                    case 16: block16(v, o, count, x + c0, b, out)
                                    default:
                                        var sum = b
                                        for e in 0..<count { sum += v![e] * x[c0 + o![e]] }
                                        out.pointee = sum
                                    }
                                    r += 1
                                }
                                c0 += width
                            }
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    static func block64(_ v: UnsafePointer<Float>?, _ o: UnsafePointer<Int>?, _ count: Int, _ x: UnsafePointer<Float>,
                        _ bias: Float, _ out: UnsafeMutablePointer<Float>) {
        var acc = SparseKernels.Accumulator64()
        if let v, let o {
            for e in 0..<count { acc.add(v[e], x + o[e]) }
        }
        acc.store(bias: bias, to: out)
    }

    @inline(__always)
    static func block16(_ v: UnsafePointer<Float>?, _ o: UnsafePointer<Int>?, _ count: Int, _ x: UnsafePointer<Float>,
                        _ bias: Float, _ out: UnsafeMutablePointer<Float>) {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        if let v, let o {
            var e = 0
            while e + 2 <= count {
                a0.addProduct(SIMD16(repeating: v[e]), SparseProducts.load(x + o[e]))
                a1.addProduct(SIMD16(repeating: v[e + 1]), SparseProducts.load(x + o[e + 1]))
                e += 2
            }
            if e < count { a0.addProduct(SIMD16(repeating: v[e]), SparseProducts.load(x + o[e])) }
        }
        UnsafeMutableRawPointer(out).storeBytes(of: a0 + a1 + SIMD16(repeating: bias), as: SIMD16<Float>.self)
    }

    /// `g[e] = Σ_n Σ_run dy[row(e)][run] · x[channel(e)][run + shift(e)]` over the
    /// pattern's row order (pads of `dy` are zero, so pad columns add nothing). Rows are
    /// split over threads and images summed in order: the result does not depend on
    /// the thread count.
    static func sampled(start: [Int32], index: [Int32], x: PaddedPlanes, dy: PaddedPlanes,
                        into g: UnsafeMutablePointer<Float>, parallel: Bool) {
        let rows = dy.channels, count = Int(start[rows])
        g.update(repeating: 0, count: count)
        guard count > 0 else { return }
        let offsets = index.map { e -> Int in
            Int(e) / 9 * x.channelStride + x.shift(tap: Int(e) % 9, flipped: false)
        }
        let run = x.run
        offsets.withUnsafeBufferPointer { po in
            start.withUnsafeBufferPointer { ps in
                Parallel.forRanges(rows, work: parallel ? count * run * x.batch : 0) { range in
                    for n in 0..<x.batch {
                        let xb = UnsafePointer(x.storage) + x.runStart(n)
                        for r in range {
                            let d = UnsafePointer(dy.storage) + r * dy.channelStride + dy.runStart(n)
                            var e = Int(ps[r])
                            let end = Int(ps[r + 1])
                            while e + 4 <= end {
                                let s = SparseProducts.dot4(d, xb + po[e], xb + po[e + 1], xb + po[e + 2], xb + po[e + 3], run)
                                g[e] += s[0]; g[e + 1] += s[1]; g[e + 2] += s[2]; g[e + 3] += s[3]
                                e += 4
                            }
                            while e < end { g[e] += SparseProducts.dot(d, xb + po[e], run); e += 1 }
                        }
                    }
                }
            }
        }
    }
}

extension SparseWeightKernel: ConvolutionKernel {
    /// The pattern's transposed convolution (made by the first input gradient after each
    /// pattern change).
    func transposedConvolution() -> TransposedConvolution {
        if let t = transposedConvolutionCache { return t }
        let t = TransposedConvolution(pattern, channels: pattern.columns / 9)
        transposedConvolutionCache = t
        return t
    }

    /// A 3×3 product on the AVX-512 kernels: `start`/`entries` its pattern (`flipped`:
    /// the transposed convolution's), `source` the layer entry of each (nil: the layer's
    /// own order). Planes that go by columns use the kernel's plan for the product
    /// (`transposed` or not), made once per pattern and plane size; the layer's values go
    /// in as they are either way.
    func nativeProduct(transposed: Bool, start: [Int32], entries: [Int32], flipped: Bool, source: [Int32]?,
                       bias: UnsafePointer<Float>?, rows: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                       _ g: ConvGeometry) {
        let key = ColumnPlan.Key(transposed: transposed, height: g.height, width: g.width)
        if let plan = columnPlans[key] ?? ColumnPlan(start: start, entries: entries, flipped: flipped, source: source,
                                                     rows: rows, g) {
            columnPlans[key] = plan
            plan.product(values: weight.activeValues, bias: bias, x: x, y: y, g)
            return
        }
        let active = weight.activeValues
        SparseConvolution.nativeProduct(start: start, entries: entries, flipped: flipped,
                                        values: source.map { $0.map { active[Int($0)] } } ?? active, bias: bias,
                                        rows: rows, x: x, y: y, g)
    }

    public func supportsDirect(_ g: ConvGeometry) -> Bool {
        // Planes narrower than 8 make runs too short for the 16-wide blocks (ResNet-18's
        // 4×4 stage measured 10x slower here than on the column matrix); the AVX-512
        // kernels take 7×7 planes (Fashion-MNIST ResNets' last stage), measured faster
        // than the column matrix there, and planes of at most 16 positions (4×4, in the
        // lane layout: 16 images per vector, a vector per position). Stride 2 runs them on the
        // input's phase planes (PhaseForm), half as wide.
        guard g.kernelHeight == 3 && g.kernelWidth == 3 && g.padding == 1 && pattern.columns == g.channels * 9 else {
            return false
        }
        if g.stride == 2 { return PhaseForm.fits(g) && runsNative(PhaseForm.geometry(g)) }
        return g.stride == 1 && (g.width >= 8 || (g.width >= 7 && runsNative(g)) || (g.height * g.width <= 16 && runsNative(g)))
    }

    /// Whether this geometry runs the AVX-512 kernels on unpadded planes (else the
    /// padded-plane products above).
    func runsNative(_ g: ConvGeometry) -> Bool {
        usesNativeConvolution && SparseConvolution.nativeSupported(height: g.height, width: g.width)
    }

    public func convolve(_ x: UnsafePointer<Float>, _ g: ConvGeometry, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, keepInput: Bool) {
        keptInput?.deallocate()
        keptInput = nil
        let p = pattern
        if g.stride == 2 {
            phaseConvolve(x, g, bias: bias, into: y, keepInput: keepInput)
            return
        }
        if runsNative(g) {
            nativeProduct(transposed: false, start: p.rowStart, entries: p.columnIndex, flipped: false, source: nil,
                          bias: bias, rows: p.rows, x: x, y: y, g)
            return
        }
        let input = PaddedPlanes(channels: g.channels, batch: g.batch, height: g.height, width: g.width)
        input.fill(from: x, parallel: true)
        let output = PaddedPlanes(channels: pattern.rows, batch: g.batch, height: g.height, width: g.width)
        defer { output.deallocate() }
        SparseConvolution.product(start: p.rowStart, index: p.columnIndex, values: weight.activeValues, bias: bias,
                                  flipped: false, input: input, output: output, parallel: true)
        output.extract(into: y, parallel: true)
        if keepInput { keptInput = input } else { input.deallocate() }
    }

    public func convolveBackward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ g: ConvGeometry,
                                 inputGradient dx: UnsafeMutablePointer<Float>?) {
        let p = pattern
        if g.stride == 2 {
            phaseBackward(dy, input: x, g, inputGradient: dx)
            return
        }
        if runsNative(g) {
            // On update steps the dense gradient by GEMMs on column matrices (the sampled
            // kernel over every position would run at its sparse rate); else sampled.
            var block = [Float](repeating: 0, count: computesDenseGradient ? p.rows * p.columns : p.count)
            block.withUnsafeMutableBufferPointer {
                if computesDenseGradient {
                    SparseConvolution.denseGradient(x: x, dy: dy, g, rows: p.rows, into: $0.baseAddress!)
                } else {
                    SparseConvolution.nativeSampled(start: p.rowStart, entries: p.columnIndex, x: x, dy: dy, g,
                                                    blocked: blockedConvolutionGradient, into: $0.baseAddress!)
                }
            }
            block.withUnsafeBufferPointer { addGradient($0.baseAddress!) }
            guard let dx else { return }
            let t = transposedConvolution()
            nativeProduct(transposed: true, start: t.starts, entries: t.entries, flipped: true, source: t.source,
                          bias: nil, rows: g.channels, x: dy, y: dx, g)
            return
        }
        let input: PaddedPlanes
        if let kept = keptInput {
            input = kept
        } else {
            input = PaddedPlanes(channels: g.channels, batch: g.batch, height: g.height, width: g.width)
            input.fill(from: x, parallel: true)
        }
        keptInput = nil
        defer { input.deallocate() }
        let gradOut = PaddedPlanes(channels: pattern.rows, batch: g.batch, height: g.height, width: g.width)
        defer { gradOut.deallocate() }
        gradOut.fill(from: dy, parallel: true)
        // On update steps the dense gradient: every tap of every channel pair.
        let gradientPattern = computesDenseGradient ? SparsePattern(mask: .dense(rows: p.rows, columns: p.columns)) : p
        var block = [Float](repeating: 0, count: gradientPattern.count)
        block.withUnsafeMutableBufferPointer {
            SparseConvolution.sampled(start: gradientPattern.rowStart, index: gradientPattern.columnIndex, x: input,
                                      dy: gradOut, into: $0.baseAddress!, parallel: true)
        }
        block.withUnsafeBufferPointer { addGradient($0.baseAddress!) }
        guard let dx else { return }
        let gradIn = PaddedPlanes(channels: g.channels, batch: g.batch, height: g.height, width: g.width)
        defer { gradIn.deallocate() }
        let t = transposedConvolution()
        SparseConvolution.product(start: t.starts, index: t.entries, values: t.values(weight.activeValues), bias: nil,
                                  flipped: true, input: gradOut, output: gradIn, parallel: true)
        gradIn.extract(into: dx, parallel: true)
    }
}

extension SparseConvolution {
    static func nativeSupported(height: Int, width: Int) -> Bool {
        ds_conv3x3_sparse_supported(Int64(height), Int64(width)) != 0
    }

    /// Splits pattern entries `ci·9 + tap` into channel and tap arrays (the tap flipped
    /// for the transposed convolution).
    static func channelsAndTaps(_ entries: [Int32], flipped: Bool) -> ([Int32], [UInt8]) {
        (entries.map { $0 / 9 }, entries.map { UInt8(flipped ? 8 - $0 % 9 : $0 % 9) })
    }

    /// `y = W ⋆ x (+ bias)` on unpadded planes by the AVX-512 kernel, images split over
    /// threads (each output depends on one image only).
    static func nativeProduct(start: [Int32], entries: [Int32], flipped: Bool, values: [Float],
                              bias: UnsafePointer<Float>?, rows: Int, x: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let (channel, tap) = channelsAndTaps(entries, flipped: flipped)
        let starts = start.map(Int64.init)
        let plane = g.height * g.width
        starts.withUnsafeBufferPointer { ps in
            channel.withUnsafeBufferPointer { pc in
                tap.withUnsafeBufferPointer { pt in
                    values.withUnsafeBufferPointer { pv in
                        Parallel.forImages(g.batch, work: values.count * plane * g.batch) { images in
                            ds_conv3x3_sparse(ps.baseAddress!, pc.baseAddress, pt.baseAddress, pv.baseAddress, bias,
                                              Int64(rows), x, y, Int64(g.batch), Int64(g.height), Int64(g.width),
                                              Int64(images.lowerBound), Int64(images.upperBound))
                        }
                    }
                }
            }
        }
    }
}

/// A 3×3 pattern gathered into columns for the AVX-512 kernels, or on 4×4 planes its
/// entries ordered by tap for the lane layout (`ds_conv3x3_plan`): made
/// from the pattern, so a kernel keeps it until the next mask update; each product sets
/// its weights first.
final class ColumnPlan {
    struct Key: Hashable { let transposed: Bool, height: Int, width: Int }
    let plan: OpaquePointer

    init?(start: [Int32], entries: [Int32], flipped: Bool, source: [Int32]?, rows: Int, _ g: ConvGeometry) {
        guard ds_conv3x3_plan_fits(Int64(g.height), Int64(g.width)) != 0 else { return nil }
        let (channel, tap) = SparseConvolution.channelsAndTaps(entries, flipped: flipped)
        let starts = start.map(Int64.init)
        let made = starts.withUnsafeBufferPointer { ps in
            channel.withUnsafeBufferPointer { pc in
                tap.withUnsafeBufferPointer { pt in
                    source.withUnsafeBufferPointerIfAny { psource in
                        ds_conv3x3_plan_make(ps.baseAddress!, pc.baseAddress, pt.baseAddress, psource, Int64(rows),
                                             Int64(g.height), Int64(g.width))
                    }
                }
            }
        }
        guard let made else { return nil }
        plan = made
    }

    deinit { ds_conv3x3_plan_free(plan) }

    /// `y = W ⋆ x (+ bias)`: the plan's weights set from `values`, then images split over
    /// threads.
    func product(values: [Float], bias: UnsafePointer<Float>?, x: UnsafePointer<Float>,
                 y: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let plan = plan, plane = g.height * g.width
        values.withUnsafeBufferPointer { ds_conv3x3_plan_weights(plan, $0.baseAddress) }
        Parallel.forImages(g.batch, work: values.count * plane * g.batch) { images in
            ds_conv3x3_sparse_planned(plan, bias, x, y, Int64(g.batch), Int64(images.lowerBound),
                                      Int64(images.upperBound))
        }
    }
}

private extension Optional where Wrapped == [Int32] {
    func withUnsafeBufferPointerIfAny<R>(_ body: (UnsafePointer<Int32>?) -> R) -> R {
        guard let array = self else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}

extension SparseConvolution {
    /// The dense weight gradient `dW [rows, C·9] = Σ_n dy_n · col(x_n)ᵀ` of a 3×3, padding-1
    /// convolution (stride 1 or 2), over chunks of images whose column matrix holds about 4M
    /// floats, in image order (overwrites `gradient`).
    static func denseGradient(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, _ g: ConvGeometry, rows: Int,
                              into gradient: UnsafeMutablePointer<Float>) {
        let plane = g.outputHeight * g.outputWidth, columnRows = g.columnRows
        let per = max(1, min(g.batch, (1 << 22) / max(columnRows * plane, 1)))
        let col = UnsafeMutablePointer<Float>.allocate(capacity: columnRows * per * plane)
        defer { col.deallocate() }
        gradient.update(repeating: 0, count: rows * columnRows)
        for n0 in stride(from: 0, to: g.batch, by: per) {
            let images = n0..<min(n0 + per, g.batch)
            Im2Col.im2col(x, g, images: images, into: col)
            let k = images.count * plane
            BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: columnRows, k: k,
                      a: dy + n0 * plane, lda: g.batch * plane, b: col, ldb: k, beta: 1, c: gradient, ldc: columnRows)
        }
    }

    /// Whether the sampled weight gradient goes by cache-sized units and channel groups
    /// (`ds_conv3x3_sparse_sampled_blocked`, on the planes it takes): always on planes of
    /// one vector (read in place, no copies); on planes of whole vectors with enough
    /// entries per input channel to pay for copying each image's inputs — at least 32
    /// on planes 16 and more wide, 64 on narrower ones (measured on two threads:
    /// 16→16 at 32×32 with 40 a channel 1.15x faster, 32→32 at 16×16 with 37 1.25x;
    /// 8×8 planes, run over two images side by side, with the blocked form's 4-lane
    /// sums and prefetched gradient rows: 40–58 a channel even (128→128, 256→256,
    /// 512→256), 64→64 with 115 a channel 1.2–1.4x and ResNet-18's stride-2 phase
    /// planes (512 phase channels, about 100 a channel) 1.2x faster). Decided from the
    /// whole pattern, so the sums do not depend on the thread count.
    static func takesBlockedGradient(entries: Int, _ g: ConvGeometry) -> Bool {
        g.height * g.width <= 16 || entries >= (g.width >= 16 ? 32 : 64) * g.channels
    }

    /// The sampled weight gradient on unpadded planes by the AVX-512 kernel: blocked
    /// (`blocked`, or as `takesBlockedGradient` decides when nil) with input channels split
    /// over threads, else with output channels split over threads. Each half of the batch
    /// is summed on its own (`Parallel.forHalves`: on two threads each thread takes the
    /// images it ran forward and backward) and the halves are added: each entry's sum has a
    /// fixed order, so the result does not depend on the thread count.
    static func nativeSampled(start: [Int32], entries: [Int32], x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                              _ g: ConvGeometry, blocked: Bool?, into gradient: UnsafeMutablePointer<Float>) {
        let (channel, tap) = channelsAndTaps(entries, flipped: false)
        let starts = start.map(Int64.init)
        let rows = start.count - 1, plane = g.height * g.width, count = entries.count, work = count * plane * g.batch
        let byGroups = (blocked ?? takesBlockedGradient(entries: count, g))
            && ds_conv3x3_sparse_blocked_supported(Int64(g.height), Int64(g.width)) != 0
        let secondHalf = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        defer { secondHalf.deallocate() }
        starts.withUnsafeBufferPointer { ps in
            channel.withUnsafeBufferPointer { pc in
                tap.withUnsafeBufferPointer { pt in
                    Parallel.forHalves(items: byGroups ? g.channels : rows, work: work) { half, range in
                        let images = Parallel.halfImages(half, batch: g.batch)
                        // Each kernel writes every entry of its range, zeros for a half of no
                        // images (a batch of one).
                        let out = half == 0 ? gradient : secondHalf
                        if byGroups {
                            ds_conv3x3_sparse_sampled_blocked(ps.baseAddress!, pc.baseAddress, pt.baseAddress, Int64(rows),
                                                              Int64(range.lowerBound), Int64(range.upperBound), x, dy,
                                                              Int64(g.batch), Int64(images.lowerBound),
                                                              Int64(images.upperBound), Int64(g.height), Int64(g.width),
                                                              out)
                        } else {
                            ds_conv3x3_sparse_sampled(ps.baseAddress!, pc.baseAddress, pt.baseAddress,
                                                      Int64(range.lowerBound), Int64(range.upperBound), x, dy,
                                                      Int64(g.batch), Int64(images.lowerBound), Int64(images.upperBound),
                                                      Int64(g.height), Int64(g.width), out)
                        }
                    }
                }
            }
        }
        for e in 0..<count { gradient[e] += secondHalf[e] }
    }
}

/// A 3×3 pattern's transposed convolution (the input gradient's product): input channel
/// ci's entries at `starts[ci] ..< starts[ci + 1]`, each `row·9 + tap` (the tap flipped
/// by the caller), ascending in output channel and then tap, so the product can take
/// them by channel groups; `source` is the layer's row-order entry whose weight each
/// takes. Made once per pattern (one pass over the row order).
struct TransposedConvolution {
    let starts: [Int32], entries: [Int32], source: [Int32]

    /// `sourceOf`: the layer entry of each of `p`'s row-order entries (a phase form's
    /// `source`), nil when `p` is the layer's own pattern.
    init(_ p: SparsePattern, channels: Int, sourceOf: [Int32]? = nil) {
        let rowStart = p.rowStart, columnIndex = p.columnIndex, count = columnIndex.count
        var starts = [Int32](repeating: 0, count: channels + 1)
        for c in columnIndex { starts[Int(c) / 9 + 1] += 1 }
        for ci in 0..<channels { starts[ci + 1] += starts[ci] }
        var next = Array(starts.dropLast())
        var entries = [Int32](repeating: 0, count: count), source = [Int32](repeating: 0, count: count)
        for r in 0..<p.rows {
            for e in Int(rowStart[r])..<Int(rowStart[r + 1]) {
                let column = Int(columnIndex[e]), ci = column / 9, k = Int(next[ci])
                entries[k] = Int32(r * 9 + column % 9)
                source[k] = sourceOf.map { $0[e] } ?? Int32(e)
                next[ci] += 1
            }
        }
        self.starts = starts; self.entries = entries; self.source = source
    }

    /// The layer's active values (row order) in this order.
    func values(_ active: [Float]) -> [Float] { source.map { active[Int($0)] } }
}
