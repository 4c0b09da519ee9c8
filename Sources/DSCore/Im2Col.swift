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
    /// Fills `col` (`geometry.columnRows × geometry.columnCount`) from `x`.
    public static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry,
                              into col: UnsafeMutablePointer<Float>) {
        let ho = g.outputHeight, wo = g.outputWidth
        let kk = g.kernelHeight * g.kernelWidth
        let plane = g.height * g.width
        let colCount = g.columnCount
        Parallel.forEach(g.channels, work: g.columnRows * colCount) { c in
            for ki in 0..<g.kernelHeight {
                for kj in 0..<g.kernelWidth {
                    let row = c &* kk &+ ki &* g.kernelWidth &+ kj
                    var dst = col + row &* colCount
                    for n in 0..<g.batch {
                        let src = x + (c &* g.batch &+ n) &* plane
                        for oh in 0..<ho {
                            let ih = oh &* g.stride &- g.padding &+ ki
                            if ih < 0 || ih >= g.height {
                                dst.update(repeating: 0, count: wo)
                            } else {
                                let srow = src + ih &* g.width
                                for ow in 0..<wo {
                                    let iw = ow &* g.stride &- g.padding &+ kj
                                    dst[ow] = (iw >= 0 && iw < g.width) ? srow[iw] : 0
                                }
                            }
                            dst += wo
                        }
                    }
                }
            }
        }
    }

    /// Adds the column-matrix gradient back into `dx` (`[C, N, H, W]`), the adjoint
    /// of `im2col`. `dx` is accumulated into, not overwritten.
    public static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry,
                              addingInto dx: UnsafeMutablePointer<Float>) {
        let ho = g.outputHeight, wo = g.outputWidth
        let kk = g.kernelHeight * g.kernelWidth
        let plane = g.height * g.width
        let colCount = g.columnCount
        Parallel.forEach(g.channels, work: g.columnRows * colCount) { c in
            for ki in 0..<g.kernelHeight {
                for kj in 0..<g.kernelWidth {
                    let row = c &* kk &+ ki &* g.kernelWidth &+ kj
                    var src = col + row &* colCount
                    for n in 0..<g.batch {
                        let dst = dx + (c &* g.batch &+ n) &* plane
                        for oh in 0..<ho {
                            let ih = oh &* g.stride &- g.padding &+ ki
                            if ih >= 0 && ih < g.height {
                                let drow = dst + ih &* g.width
                                for ow in 0..<wo {
                                    let iw = ow &* g.stride &- g.padding &+ kj
                                    if iw >= 0 && iw < g.width { drow[iw] += src[ow] }
                                }
                            }
                            src += wo
                        }
                    }
                }
            }
        }
    }
}
