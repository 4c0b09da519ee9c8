import CSparseKernels
import DSCore
import DSLayers

/// The products behind `SparseWeightKernel`, on feature-major activations
/// (`x [features, ld]`): a sparse × dense product (the forward pass, and with the
/// transposed pattern the input gradient) and a sampled dense × denseᵀ product (the
/// weight gradient at the active positions). Each has a Double reference for tests.
public enum SparseProducts {
    /// `y[o][c] = bias[o] + Σ_{e ∈ row o} values[e] · x[index[e]][c]` for `c < columns`
    /// (`start` has `outputs + 1` entries; rows without entries get their bias).
    public static func product(start: [Int32], index: [Int32], values: [Float], bias: UnsafePointer<Float>?,
                               outputs: Int, features: Int, x: UnsafePointer<Float>, ldX: Int, columns: Int,
                               y: UnsafeMutablePointer<Float>, ldY: Int, parallel: Bool) {
        guard columns > 0, outputs > 0 else { return }
        guard !values.isEmpty else {   // every row empty: y is the bias
            for o in 0..<outputs { (y + o * ldY).update(repeating: bias?[o] ?? 0, count: columns) }
            return
        }
        values.withUnsafeBufferPointer { pv in
            index.withUnsafeBufferPointer { pi in
                start.withUnsafeBufferPointer { ps in
                    let v = pv.baseAddress!, i = pi.baseAddress!
                    SparseKernels.columns(rows: outputs, columns: columns, features: features,
                                          work: parallel ? threadWork(values.count * columns) : 0, x: x, ldX: ldX) { r, c in
                        let s = Int(ps[r])
                        return SparseKernels.Row(values: v + s, indices: i + s, count: Int(ps[r + 1]) - s,
                                                 bias: bias?[r] ?? 0, out: y + (r &* ldY &+ c))
                    }
                }
            }
        }
    }

    /// Whether this CPU runs the AVX-512 kernels of the two products below (else they
    /// run the Swift loops; tests run both).
    public static let nativeKernels = ds_sparse_linear_supported() != 0

    /// `product` with the values `v[e]`, or `v[entries[e]]` (the column order of a row-order
    /// array) when `entries` is given, read in place. With `native` (the AVX-512 kernel),
    /// threads take 16-column slices of wide products, else row ranges; the sums are the
    /// same either way. `epilogue` is applied to each result as it is stored.
    public static func product(start: [Int32], index: [Int32], entries: [Int32]?, values v: UnsafeBufferPointer<Float>,
                               bias: UnsafePointer<Float>?, outputs: Int, features: Int, x: UnsafePointer<Float>,
                               ldX: Int, columns: Int, y: UnsafeMutablePointer<Float>, ldY: Int, parallel: Bool,
                               epilogue: Epilogue = Epilogue(), native: Bool = nativeKernels) {
        let count = index.count
        guard native && nativeStrides(ldX, ldY) && (epilogue.mask == nil || nativeStrides(epilogue.ldMask)) else {
            let values = entries.map { e in e.map { v[Int($0)] } } ?? Array(v)
            product(start: start, index: index, values: values, bias: bias, outputs: outputs, features: features,
                    x: x, ldX: ldX, columns: columns, y: y, ldY: ldY, parallel: parallel)
            epilogue.apply(to: y, ld: ldY, rows: outputs, columns: columns)
            return
        }
        let rectify: Int32 = epilogue.rectify ? 1 : 0, mask = epilogue.mask, ldMask = Int64(epilogue.ldMask)
        guard columns > 0, outputs > 0 else { return }
        start.withUnsafeBufferPointer { ps in
            index.withUnsafeBufferPointer { pi in
                (entries ?? []).withUnsafeBufferPointer { pe in
                    let pp = entries == nil ? nil : pe.baseAddress
                    let work = parallel ? threadWork(count * columns) : 0
                    // Slices of 16 columns on x's 64-byte boundaries (the kernel's blocks).
                    let shift = ldX % 16 == 0 ? (Int(bitPattern: x) / 4) % 16 : 0
                    let slices = (columns + shift + 15) / 16
                    // Up to one 128-column block (a batch, feature-major): row ranges, eight
                    // per thread; wider (im2col columns): column slices, so each thread
                    // reads its part of x once.
                    if slices >= 2 * Parallel.threads && (columns > 128 || outputs < 8 * Parallel.threads) {
                        Parallel.forRanges(slices, work: work) { range in
                            ds_sparse_rows_product(ps.baseAddress!, pi.baseAddress, pp, v.baseAddress, bias, 0,
                                                   Int64(outputs), x, Int64(ldX),
                                                   Int64(max(range.lowerBound * 16 - shift, 0)),
                                                   Int64(min(range.upperBound * 16 - shift, columns)), y, Int64(ldY),
                                                   rectify, mask, ldMask)
                        }
                    } else {
                        Parallel.forRanges(outputs, work: work, split: 8) { range in
                            ds_sparse_rows_product(ps.baseAddress!, pi.baseAddress, pp, v.baseAddress, bias,
                                                   Int64(range.lowerBound), Int64(range.upperBound), x, Int64(ldX), 0,
                                                   Int64(columns), y, Int64(ldY), rectify, mask, ldMask)
                        }
                    }
                }
            }
        }
    }

    /// What a product does to each result as it stores it: a ReLU (`rectify`; NaN kept,
    /// as `max(v, 0)`), and zero where `mask` (feature-major, `ldMask` apart, the output
    /// of a ReLU) is not above 0, the gradient through that ReLU.
    public struct Epilogue {
        public var rectify = false
        public var mask: UnsafePointer<Float>?
        public var ldMask = 0
        public init(rectify: Bool = false, mask: UnsafePointer<Float>? = nil, ldMask: Int = 0) {
            self.rectify = rectify; self.mask = mask; self.ldMask = ldMask
        }

        /// The epilogue on `y [rows, ld]`'s first `columns` columns, as passes after it.
        public func apply(to y: UnsafeMutablePointer<Float>, ld: Int, rows: Int, columns: Int) {
            let block = MutableActivationView(y, features: rows, columns: columns, leadingDimension: ld, batchMajor: false)
            if rectify { block.rectify() }
            if let mask {
                block.zeroWhereNotPositive(ActivationView(mask, features: rows, columns: columns, leadingDimension: ldMask,
                                                          batchMajor: false))
            }
        }
    }

    /// Whether rows `ld` floats apart suit the AVX-512 kernels, which read 128-column
    /// blocks in place: short rows, or strides that are not a multiple of 4 KB (such
    /// rows would share a few cache sets; the Swift kernels copy their tiles first).
    static func nativeStrides(_ lds: Int...) -> Bool {
        lds.allSatisfy { $0 <= 128 || ($0 * 4) % 4096 != 0 }
    }

    /// The `work` figure `Parallel` sees for `fmas` multiply-adds: a second thread pays
    /// for its wake-up from about half a million (below that, one thread is faster).
    static func threadWork(_ fmas: Int) -> Int { fmas / 8 }

    /// Columns of `x` per pass of the sampled product: the pass's slices of `dy` and `x`
    /// (`rows + features` rows of it) stay within about 1 MB (L2), at least 64 wide.
    static func sampledTile(rows: Int, features: Int, columns: Int) -> Int {
        let fit = (262_144 / max(rows + features, 1)) / 16 * 16
        return min(columns, max(64, fit))
    }

    /// `g[e] = Σ_c dy[r][c] · x[index[e]][c]` for every entry `e` of every row `r`
    /// (`dy [rows, ldDY]`, `x [features, ldX]`, both feature-major), overwriting
    /// `g[0..<start[rows]]`, or added to it (`accumulate`). Rows are split over threads,
    /// columns go in fixed tiles (blocks of 128 in the AVX-512 kernel): the sums do not
    /// depend on the thread count. `scratch` holds the AVX-512 kernel's copy of an `x`
    /// whose rows do not share one alignment, kept for the next pass.
    public static func sampled(start: [Int32], index: [Int32], rows: Int, features: Int,
                               dy: UnsafePointer<Float>, ldDY: Int, x: UnsafePointer<Float>, ldX: Int, columns: Int,
                               into g: UnsafeMutablePointer<Float>, accumulate: Bool = false, parallel: Bool,
                               native: Bool = nativeKernels, scratch: AlignedBuffer? = nil) {
        let count = Int(start[rows])
        if !accumulate { g.update(repeating: 0, count: count) }
        guard columns > 0, count > 0 else { return }
        if native && nativeStrides(ldDY, ldX) {
            // The kernel reads a row of x per entry. When x's rows share one alignment
            // (ld a multiple of 16) its loads start on 64-byte lines, whatever x's
            // address; other strides would make every load straddle two lines, so such
            // an x is copied first.
            withAligned(x, rows: features, columns: columns, ld: ldX, scratch: scratch) { x, ldX in
                start.withUnsafeBufferPointer { ps in
                    index.withUnsafeBufferPointer { pi in
                        Parallel.forRanges(rows, work: parallel ? threadWork(count * columns) : 0, split: 8) { range in
                            ds_sparse_rows_sampled(ps.baseAddress!, pi.baseAddress!, Int64(range.lowerBound),
                                                   Int64(range.upperBound), dy, Int64(ldDY), x, Int64(ldX),
                                                   Int64(columns), g)
                        }
                    }
                }
            }
            return
        }
        let tile = sampledTile(rows: rows, features: features, columns: columns)
        start.withUnsafeBufferPointer { ps in
            index.withUnsafeBufferPointer { pi in
                Parallel.forRanges(rows, work: parallel ? threadWork(count * columns) : 0) { range in
                    var c0 = 0
                    while c0 < columns {
                        let width = min(tile, columns - c0)
                        for r in range {
                            let d = dy + (r &* ldDY &+ c0)
                            var e = Int(ps[r])
                            let end = Int(ps[r + 1])
                            while e &+ 4 <= end {
                                let s = dot4(d, x + (Int(pi[e]) &* ldX &+ c0), x + (Int(pi[e &+ 1]) &* ldX &+ c0),
                                             x + (Int(pi[e &+ 2]) &* ldX &+ c0), x + (Int(pi[e &+ 3]) &* ldX &+ c0), width)
                                g[e] += s[0]; g[e &+ 1] += s[1]; g[e &+ 2] += s[2]; g[e &+ 3] += s[3]
                                e &+= 4
                            }
                            while e < end {
                                g[e] += dot(d, x + (Int(pi[e]) &* ldX &+ c0), width)
                                e &+= 1
                            }
                        }
                        c0 += width
                    }
                }
            }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    /// `Σ_c d[c] · a_k[c]` for four rows `a_k` at once (four accumulator chains).
    @inline(__always)
    static func dot4(_ d: UnsafePointer<Float>, _ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>,
                     _ a2: UnsafePointer<Float>, _ a3: UnsafePointer<Float>, _ n: Int) -> SIMD4<Float> {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
        var c = 0
        while c &+ 16 <= n {
            let dv = load(d + c)
            s0.addProduct(dv, load(a0 + c)); s1.addProduct(dv, load(a1 + c))
            s2.addProduct(dv, load(a2 + c)); s3.addProduct(dv, load(a3 + c))
            c &+= 16
        }
        var out = SIMD4<Float>(s0.sum(), s1.sum(), s2.sum(), s3.sum())
        while c < n {
            out += SIMD4(a0[c], a1[c], a2[c], a3[c]) * d[c]
            c &+= 1
        }
        return out
    }

    @inline(__always)
    static func dot(_ d: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ n: Int) -> Float {
        var s = SIMD16<Float>()
        var c = 0
        while c &+ 16 <= n { s.addProduct(load(d + c), load(a + c)); c &+= 16 }
        var out = s.sum()
        while c < n { out += d[c] * a[c]; c &+= 1 }
        return out
    }

    /// Runs `body(x, ld)` on `x [rows, ld]` itself when its rows share one alignment
    /// (`ld` a multiple of 16 floats), else on a copy of its first `columns` columns whose
    /// rows start on 64-byte boundaries (in `scratch` when given, else in a buffer of
    /// its own).
    static func withAligned(_ x: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int, scratch: AlignedBuffer? = nil,
                            _ body: (UnsafePointer<Float>, Int) -> Void) {
        if ld % 16 == 0 { body(x, ld); return }
        let ldCopy = (columns + 15) / 16 * 16
        let own = scratch == nil ? allocateAligned(rows * ldCopy) : nil
        defer { own?.deallocate() }
        let copy = own ?? scratch!.reserve(rows * ldCopy)
        for r in 0..<rows { (copy + r * ldCopy).update(from: x + r * ld, count: columns) }
        body(copy, ldCopy)
    }

    /// A 64-byte aligned buffer of floats kept from pass to pass (no allocation per pass).
    public final class AlignedBuffer {
        private var data: UnsafeMutablePointer<Float>?
        private var capacity = 0

        public init() {}
        deinit { data?.deallocate() }

        /// The buffer, with room for at least `count` floats (its contents are kept only
        /// when it does not grow).
        func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
            if count > capacity || data == nil {
                data?.deallocate()
                data = allocateAligned(count)
                capacity = max(count, 16)
            }
            return data!
        }
    }

    /// `count` floats on a 64-byte boundary (free with `deallocate()`).
    static func allocateAligned(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 16) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 16))
    }

    /// Runs `body(x, ldX, y, ldY)` on feature-major views of `x` and `y`, transposing
    /// batch-major ones into scratch buffers (and the result back into `y`).
    static func featureMajor(_ x: ActivationView, _ y: MutableActivationView,
                             _ body: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        withFeatureMajor(x) { px, ldX in
            guard y.batchMajor else { body(px, ldX, y.base, y.leadingDimension); return }
            let yT = allocateAligned(y.features * y.columns)
            defer { yT.deallocate() }
            body(px, ldX, yT, y.columns)
            BLAS.transpose(rows: y.features, columns: y.columns, yT, lda: y.columns, into: y.base,
                           ldb: y.leadingDimension)
        }
    }

    /// Runs `body(x, ld)` on a feature-major form of `x`.
    static func withFeatureMajor(_ x: ActivationView, _ body: (UnsafePointer<Float>, Int) -> Void) {
        guard x.batchMajor else { body(x.base, x.leadingDimension); return }
        let xT = allocateAligned(x.features * x.columns)
        defer { xT.deallocate() }
        BLAS.transpose(rows: x.columns, columns: x.features, x.base, lda: x.leadingDimension, into: xT, ldb: x.columns)
        body(xT, x.columns)
    }

    // MARK: References (Double, obviously correct loops)

    /// `y [outputs, n] = W · x + bias` for the dense `W [outputs, features]` and
    /// feature-major `x [features, n]`.
    public static func referenceProduct(weight: [Float], outputs: Int, features: Int, x: [Float], columns n: Int,
                                        bias: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: outputs * n)
        for o in 0..<outputs {
            for c in 0..<n {
                var s = Double(bias?[o] ?? 0)
                for f in 0..<features { s += Double(weight[o * features + f]) * Double(x[f * n + c]) }
                y[o * n + c] = Float(s)
            }
        }
        return y
    }

    /// `g [rows, features] = dy · xᵀ` at the active positions of `mask`, 0 elsewhere
    /// (`dy [rows, n]`, `x [features, n]` feature-major).
    public static func referenceSampled(mask: SparseMask, dy: [Float], x: [Float], columns n: Int) -> [Float] {
        var g = [Float](repeating: 0, count: mask.rows * mask.columns)
        for r in 0..<mask.rows {
            for f in 0..<mask.columns where mask.active[r * mask.columns + f] {
                var s = 0.0
                for c in 0..<n { s += Double(dy[r * n + c]) * Double(x[f * n + c]) }
                g[r * mask.columns + f] = Float(s)
            }
        }
        return g
    }
}
