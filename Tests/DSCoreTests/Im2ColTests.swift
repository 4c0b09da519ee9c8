import DSCore
import DSTestSupport
import Testing

@Suite struct Im2ColTests {
    /// Convolution by im2col + GEMM in `[C, N, H, W]` layout equals the direct loop.
    @Test(arguments: [(1, 0), (1, 1), (2, 1), (2, 0), (3, 2)])
    func convolutionMatchesDirectLoop(stride: Int, padding: Int) {
        let (n, c, h, w, co, k) = (2, 3, 7, 6, 4, 3)
        let xNCHW = randomTensor([n, c, h, w], seed: 5)
        let weight = randomTensor([co, c, k, k], seed: 6)
        let g = ConvGeometry(channels: c, batch: n, height: h, width: w, kernelHeight: k, kernelWidth: k,
                             stride: stride, padding: padding)
        let x = xNCHW.swappingOuterAxes()
        var col = Tensor(shape: [g.columnRows, g.columnCount])
        x.storage.withUnsafeBufferPointer { px in
            col.storage.withUnsafeMutableBufferPointer { pc in Im2Col.im2col(px.baseAddress!, g, into: pc.baseAddress!) }
        }
        let y = Tensor.matmul(weight.reshaped([co, c * k * k]), col)
            .reshaped([co, n, g.outputHeight, g.outputWidth]).swappingOuterAxes()
        let expected = Reference.conv2d(xNCHW, weight: weight, bias: nil, stride: stride, padding: padding)
        #expect(y.shape == expected.shape)
        for (a, b) in zip(y.storage, expected.storage) { #expect(abs(a - b) < 1e-4) }
    }

    /// col2im is the adjoint of im2col: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩.
    @Test(arguments: [(1, 1), (2, 1), (2, 0)])
    func col2imIsAdjoint(stride: Int, padding: Int) {
        let g = ConvGeometry(channels: 2, batch: 3, height: 5, width: 6, kernelHeight: 3, kernelWidth: 3,
                             stride: stride, padding: padding)
        let x = randomTensor([2, 3, 5, 6], seed: 8)
        let y = randomTensor([g.columnRows, g.columnCount], seed: 9)
        var col = Tensor(shape: y.shape)
        var back = Tensor(shape: x.shape)
        x.storage.withUnsafeBufferPointer { px in
            col.storage.withUnsafeMutableBufferPointer { pc in Im2Col.im2col(px.baseAddress!, g, into: pc.baseAddress!) }
        }
        y.storage.withUnsafeBufferPointer { py in
            back.storage.withUnsafeMutableBufferPointer { pb in Im2Col.col2im(py.baseAddress!, g, addingInto: pb.baseAddress!) }
        }
        let lhs = zip(col.storage, y.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.storage, back.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) < 1e-3 * max(1, abs(lhs)))
    }
}
