/// Geometry of a 2-D convolution or pooling window over `[C, N, H, W]` input.
public struct ConvGeometry: Equatable, Sendable {
    public var channels: Int
    public var batch: Int
    public var height: Int
    public var width: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var stride: Int
    public var padding: Int

    public init(channels: Int, batch: Int, height: Int, width: Int,
                kernelHeight: Int, kernelWidth: Int, stride: Int, padding: Int) {
        self.channels = channels; self.batch = batch
        self.height = height; self.width = width
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.stride = stride; self.padding = padding
    }

    /// `floor((H + 2p - kh) / s) + 1`.
    public var outputHeight: Int { (height + 2 * padding - kernelHeight) / stride + 1 }
    /// `floor((W + 2p - kw) / s) + 1`.
    public var outputWidth: Int { (width + 2 * padding - kernelWidth) / stride + 1 }
    /// Rows of the column matrix: `C · kh · kw`.
    public var columnRows: Int { channels * kernelHeight * kernelWidth }
    /// Columns of the column matrix: `N · Ho · Wo`.
    public var columnCount: Int { batch * outputHeight * outputWidth }
}

/// im2col / col2im for the channel-major `[C, N, H, W]` layout.
///
/// The column matrix is `[C·kh·kw, N·Ho·Wo]`: row `(c·kh + i)·kw + j`, column
/// `(n·Ho + oh)·Wo + ow` holds `x[c, n, oh·s − p + i, ow·s − p + j]` (0 outside).
/// A convolution is then one GEMM, `W[Cout, C·kh·kw] · col = y[Cout, N, Ho, Wo]`.
public enum Im2Col {
    /// The output positions `o` whose input index `o·stride − padding + k` lies in
    /// `0..<extent`, for kernel offset `k`.
    @inlinable
    static func validRange(extent: Int, outputs: Int, stride: Int, padding: Int, offset k: Int) -> Range<Int> {
        let shift = padding - k
        let lo = shift <= 0 ? 0 : (shift + stride - 1) / stride
        let top = extent - 1 + shift
        let hi = top < 0 ? 0 : min(outputs, top / stride + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// `dst[j] = src[j + shift]` over the valid output rows and columns of a plane,
    /// zero elsewhere (the flat copy wraps across row ends; those cells are cleared).
    @inlinable
    static func shiftedPlane(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                             rows: Range<Int>, cols: Range<Int>, height: Int, width w: Int, shift: Int) {
        let plane = height &* w
        if rows.isEmpty || cols.isEmpty {
            dst.update(repeating: 0, count: plane)
            return
        }
        let lo = rows.lowerBound &* w, hi = rows.upperBound &* w
        if lo > 0 { dst.update(repeating: 0, count: lo) }
        if hi < plane { (dst + hi).update(repeating: 0, count: plane &- hi) }
        // Keep every source index inside the plane: skip the first/last cell when the
        // shift would step outside it (those cells are invalid columns anyway).
        let start = lo &+ max(0, -(lo &+ shift)), end = hi &- max(0, hi &+ shift &- plane)
        if start < end { (dst + start).update(from: src + (start &+ shift), count: end &- start) }
        if start > lo { (dst + lo).update(repeating: 0, count: start &- lo) }
        if end < hi { (dst + end).update(repeating: 0, count: hi &- end) }
        if cols.lowerBound > 0 || cols.upperBound < w {
            for r in rows {
                let line = dst + r &* w
                for j in 0..<cols.lowerBound { line[j] = 0 }
                for j in cols.upperBound..<w { line[j] = 0 }
            }
        }
    }

    /// Fills `col` (`geometry.columnRows × geometry.columnCount`) from `x`.
    public static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry,
                              into col: UnsafeMutablePointer<Float>) {
        Parallel.forEach(g.channels, work: g.columnRows * g.columnCount) { c in
            im2col(x, g, images: 0..<g.batch, channel: c, into: col)
        }
    }

    /// The column matrix of the images `images` only (`[C·kh·kw, images.count·Ho·Wo]`),
    /// channels split over threads (serially inside a parallel loop, such as the
    /// per-chunk loops of `Conv2d`).
    public static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                              into col: UnsafeMutablePointer<Float>) {
        let work = g.columnRows * images.count * g.outputHeight * g.outputWidth
        Parallel.forEach(g.channels, work: work) { c in im2col(x, g, images: images, channel: c, into: col) }
    }

    @inlinable
    static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>, channel c: Int,
                       into col: UnsafeMutablePointer<Float>) {
        let ho = g.outputHeight, wo = g.outputWidth
        let kk = g.kernelHeight * g.kernelWidth
        let plane = g.height * g.width
        let colCount = images.count * ho * wo
        let s = g.stride, p = g.padding, w = g.width
        for ki in 0..<g.kernelHeight {
            let rows = validRange(extent: g.height, outputs: ho, stride: s, padding: p, offset: ki)
            for kj in 0..<g.kernelWidth {
                let cols = validRange(extent: w, outputs: wo, stride: s, padding: p, offset: kj)
                let row = c &* kk &+ ki &* g.kernelWidth &+ kj
                let shift = kj &- p
                var dst = col + row &* colCount
                if s == 1 && wo == w && ho == g.height {
                    // "Same" stride-1 convolution: each image's row of the column
                    // matrix is the input plane shifted by (ki − p)·W + (kj − p).
                    // One flat copy per plane, then zero what fell outside.
                    let shiftFlat = (ki &- p) &* w &+ shift
                    for n in images {
                        shiftedPlane(x + (c &* g.batch &+ n) &* plane, into: dst, rows: rows, cols: cols,
                                     height: ho, width: w, shift: shiftFlat)
                        dst += plane
                    }
                    continue
                }
                for n in images {
                    let src = x + (c &* g.batch &+ n) &* plane
                    for oh in 0..<ho {
                        if rows.contains(oh) {
                            let srow = src + (oh &* s &- p &+ ki) &* w
                            if cols.lowerBound > 0 { dst.update(repeating: 0, count: cols.lowerBound) }
                            if s == 1 {
                                (dst + cols.lowerBound).update(from: srow + (cols.lowerBound &+ shift), count: cols.count)
                            } else {
                                for ow in cols { dst[ow] = srow[ow &* s &+ shift] }
                            }
                            if cols.upperBound < wo {
                                (dst + cols.upperBound).update(repeating: 0, count: wo &- cols.upperBound)
                            }
                        } else {
                            dst.update(repeating: 0, count: wo)
                        }
                        dst += wo
                    }
                }
            }
        }
    }

    /// Adds the column-matrix gradient back into `dx` (`[C, N, H, W]`), the adjoint
    /// of `im2col`. `dx` is accumulated into, not overwritten.
    public static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry,
                              addingInto dx: UnsafeMutablePointer<Float>) {
        Parallel.forEach(g.channels, work: g.columnRows * g.columnCount) { c in
            col2im(col, g, images: 0..<g.batch, channel: c, addingInto: dx)
        }
    }

    /// `col2im` for the column matrix of the images `images` only, on the calling thread.
    public static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                              addingInto dx: UnsafeMutablePointer<Float>) {
        for c in 0..<g.channels { col2im(col, g, images: images, channel: c, addingInto: dx) }
    }

    @inlinable
    static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>, channel c: Int,
                       addingInto dx: UnsafeMutablePointer<Float>) {
        let ho = g.outputHeight, wo = g.outputWidth
        let kk = g.kernelHeight * g.kernelWidth
        let plane = g.height * g.width
        let colCount = images.count * ho * wo
        let s = g.stride, p = g.padding, w = g.width
        for ki in 0..<g.kernelHeight {
            let rows = validRange(extent: g.height, outputs: ho, stride: s, padding: p, offset: ki)
            for kj in 0..<g.kernelWidth {
                let cols = validRange(extent: w, outputs: wo, stride: s, padding: p, offset: kj)
                let row = c &* kk &+ ki &* g.kernelWidth &+ kj
                let shift = kj &- p
                for n in images {
                    let dst = dx + (c &* g.batch &+ n) &* plane
                    let base = col + (row &* colCount &+ (n &- images.lowerBound) &* ho &* wo)
                    for oh in rows {
                        let src = base + oh &* wo
                        let drow = dst + (oh &* s &- p &+ ki) &* w
                        if s == 1 {
                            let d = drow + shift
                            for ow in cols { d[ow] += src[ow] }
                        } else {
                            for ow in cols { drow[ow &* s &+ shift] += src[ow] }
                        }
                    }
                }
            }
        }
    }
}

extension Im2Col {
    /// The positions a strided 1×1 unpadded convolution reads: `out[p][i][j] =
    /// x[p][i·s][j·s]` for each of the `channels · batch` planes of H×W of a channel-major
    /// `[C, N, H, W]` input (`out` planes of ⌈H/s⌉×⌈W/s⌉), over threads by images.
    public static func subsample(_ x: UnsafePointer<Float>, channels: Int, batch: Int, height: Int, width: Int,
                                 stride s: Int, into out: UnsafeMutablePointer<Float>) {
        let oh = (height - 1) / s + 1, ow = (width - 1) / s + 1
        Parallel.forImageRuns(channels: channels, batch: batch, plane: 1, work: channels * batch * oh * ow) { range in
            for p in range {
                let src = x + p * height * width, dst = out + p * oh * ow
                for i in 0..<oh {
                    let row = src + i * s * width, o = dst + i * ow
                    for j in 0..<ow { o[j] = row[j &* s] }
                }
            }
        }
    }

    /// The input gradient of that convolution: `dx[p][i·s][j·s] = d[p][i][j]`, zero at
    /// every other position.
    public static func upsample(_ d: UnsafePointer<Float>, channels: Int, batch: Int, height: Int, width: Int,
                                stride s: Int, into dx: UnsafeMutablePointer<Float>) {
        let oh = (height - 1) / s + 1, ow = (width - 1) / s + 1
        Parallel.forImageRuns(channels: channels, batch: batch, plane: 1, work: channels * batch * height * width) { range in
            for p in range {
                let dst = dx + p * height * width, src = d + p * oh * ow
                dst.update(repeating: 0, count: height * width)
                for i in 0..<oh {
                    let row = dst + i * s * width, v = src + i * ow
                    for j in 0..<ow { row[j &* s] = v[j] }
                }
            }
        }
    }
}
