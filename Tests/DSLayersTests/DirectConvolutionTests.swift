import CDenseKernels
import DSCore
import DSLayers
import DSTestSupport
import Testing

/// The direct 3×3 kernel against its plain-loop reference, and Conv2d on the direct
/// path against the reference convolution and finite differences.
@Suite struct DirectConvolutionTests {
    /// (cin, cout, images, height, width): widths covering one and two vectors, tails and
    /// several segments; planes narrower than a vector.
    @Test(arguments: [(3, 8, 2, 5, 16), (16, 16, 2, 8, 32), (5, 24, 1, 7, 20), (2, 8, 3, 4, 40), (4, 8, 2, 3, 7),
                      (1, 8, 1, 1, 1), (3, 2, 2, 4, 17), (6, 13, 1, 5, 33), (70, 8, 2, 3, 20)])
    func kernelEqualsTheReference(shape: (Int, Int, Int, Int, Int)) throws {
        guard DirectConvolution.isAvailable else { return }
        let (cin, cout, images, height, width) = shape
        let plane = height * width
        // Channel strides wider than the images used (a chunk of a larger batch).
        let xStride = (images + 1) * plane, yStride = (images + 2) * plane
        let x = randomTensor([cin * xStride], seed: 1).storage
        let wstride = (cout + 7) / 8 * 8
        var w = randomTensor([cin * 9 * wstride], seed: 2).storage
        for i in w.indices where i % wstride >= cout { w[i] = 0 }
        for accumulate in [Int32(0), 1] {
            var fast = randomTensor([cout * yStride], seed: 3).storage
            var slow = fast
            ds_conv3x3_same(x, Int64(xStride), w, Int64(wstride), &fast, Int64(yStride), Int64(cin), Int64(cout), Int64(images),
                            Int64(height), Int64(width), accumulate)
            ds_conv3x3_same_reference(x, Int64(xStride), w, Int64(wstride), &slow, Int64(yStride), Int64(cin), Int64(cout),
                                      Int64(images), Int64(height), Int64(width), accumulate)
            let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-4, "\(shape) accumulate \(accumulate): max difference \(worst)")
        }
    }

    @Test(arguments: [(3, 8, 2, 5, 16), (16, 16, 2, 8, 32), (5, 3, 1, 7, 20), (2, 5, 3, 4, 40), (1, 1, 1, 1, 1)])
    func weightGradientEqualsTheReference(shape: (Int, Int, Int, Int, Int)) {
        guard DirectConvolution.isAvailable else { return }
        let (cin, cout, images, height, width) = shape
        let plane = height * width
        let xStride = (images + 1) * plane, yStride = (images + 2) * plane
        let x = randomTensor([cin * xStride], seed: 4).storage
        let dy = randomTensor([cout * yStride], seed: 5).storage
        var fast = randomTensor([cout * cin * 9], seed: 6).storage   // added into
        var slow = fast
        ds_conv3x3_same_weight_gradient(x, Int64(xStride), dy, Int64(yStride), &fast, Int64(cin), Int64(cout),
                                        Int64(images), Int64(height), Int64(width))
        ds_conv3x3_same_weight_gradient_reference(x, Int64(xStride), dy, Int64(yStride), &slow, Int64(cin), Int64(cout),
                                                  Int64(images), Int64(height), Int64(width))
        let worst = zip(fast, slow).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-3, "\(shape): max difference \(worst)")
    }

    @Test func conv2dOnTheDirectPathMatchesTheReferenceConvolution() {
        var rng = Xoshiro256(seed: 40)
        let conv = Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1, bias: true, rng: &rng)
        let xNCHW = randomTensor([2, 3, 6, 18], seed: 41)
        let y = conv.forward(xNCHW.swappingOuterAxes(), training: false).swappingOuterAxes()
        let expected = Reference.conv2d(xNCHW, weight: conv.weight.value, bias: conv.bias!.value, stride: 1, padding: 1)
        #expect(y.shape == expected.shape)
        let worst = zip(y.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4)
    }

    @Test func conv2dOnTheDirectPathPassesTheGradientCheck() {
        var rng = Xoshiro256(seed: 42)
        // Neither channel count a multiple of 8: the kernel's partial channel groups.
        let conv = Conv2d(inputChannels: 2, outputChannels: 5, kernelSize: 3, padding: 1, bias: true, rng: &rng)
        let bad = GradientCheck().mismatches(conv, input: randomTensor([2, 2, 3, 17], seed: 43))
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // 64 input channels: the direct forward and input gradient with the GEMM weight gradient.
        let wide = Conv2d(inputChannels: 64, outputChannels: 8, kernelSize: 3, padding: 1, rng: &rng)
        let wideBad = GradientCheck().mismatches(wide, input: randomTensor([64, 1, 2, 16], seed: 44))
        #expect(wideBad.isEmpty, "\(wideBad.prefix(5))")
    }
}
