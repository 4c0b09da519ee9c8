import CDenseKernels
import DSCore

/// The direct 3×3 "same" convolution (stride 1, padding 1) of the C target
/// `CDenseKernels`: AVX-512 vectors along the image width, 8 output channels × 32
/// pixels of a row in registers, the weights broadcast from a `[Cin][3][3][Cout]`
/// copy. It reads each input row once per 8 output channels and writes no column
/// matrix, where im2col + GEMM moves 9 copies of the input through memory — the cost
/// that dominates convolutions of 16–64 channels.
public enum DirectConvolution {
    /// The CPU can run the kernel (AVX-512 F).
    public static let isAvailable = ds_direct_conv_supported() != 0

    /// Narrower planes leave most of a 16-wide vector empty; GEMM serves them better.
    public static let minimumWidth = 16

    /// Whether the direct weight gradient beats im2col + GEMM: measured on ResNet-20
    /// and ResNet-18 (CIFAR), it does for 16–32 input channels (where GEMM's packing of
    /// the column matrix dominates) and loses from 64 on, where GEMM runs near peak.
    static func weightGradientIsFaster(inputChannels: Int) -> Bool { inputChannels < 64 }

    /// The weight stride the kernel reads for `channels` output channels (whole groups of 8).
    static func paddedStride(_ channels: Int) -> Int { (channels + 7) / 8 * 8 }

    /// The weight `W[Cout, Cin, 3, 3]` as the kernel reads it, `[Cin][3][3][Cout′]`
    /// (Cout′ = Cout rounded up to 8, zeros past Cout); with `flipped`, the kernel of
    /// the input gradient instead: `[Cout][3][3][Cin′]` holding `W[co, ci, 2 − a, 2 − b]`.
    public static func arrange(_ w: [Float], outputs: Int, inputs: Int, flipped: Bool) -> [Float] {
        let stride = paddedStride(flipped ? inputs : outputs)
        var out = [Float](repeating: 0, count: (flipped ? outputs : inputs) * 9 * stride)
        w.withUnsafeBufferPointer { w in
            for co in 0..<outputs {
                for ci in 0..<inputs {
                    for a in 0..<3 {
                        for b in 0..<3 {
                            let value = w[((co * inputs + ci) * 3 + a) * 3 + b]
                            if flipped {
                                out[((co * 3 + (2 - a)) * 3 + (2 - b)) * stride + ci] = value
                            } else {
                                out[((ci * 3 + a) * 3 + b) * stride + co] = value
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `dw[Cout, Cin·9] += Σ over images of dy ⋆ x` (the weight gradient), for the
    /// channel-major `x [channels, N, H, W]` and `dy [outputs, N, H, W]` of `g`.
    static func weightGradient(_ x: UnsafePointer<Float>, channels: Int, _ dy: UnsafePointer<Float>, outputs: Int,
                               into dw: UnsafeMutablePointer<Float>, _ g: ConvGeometry, images: Range<Int>) {
        let plane = g.height * g.width, stride = g.batch * plane
        ds_conv3x3_same_weight_gradient(x + images.lowerBound * plane, Int64(stride), dy + images.lowerBound * plane,
                                        Int64(stride), dw, Int64(channels), Int64(outputs), Int64(images.count),
                                        Int64(g.height), Int64(g.width))
    }

    /// `y[:, images] (+)= conv3x3(x[:, images])` on channel-major `[C, N, H, W]` tensors
    /// of `g`'s batch and plane size; `weight` from `arrange`.
    static func run(_ x: UnsafePointer<Float>, channels: Int, weight: [Float], into y: UnsafeMutablePointer<Float>,
                    outputs: Int, _ g: ConvGeometry, images: Range<Int>, accumulate: Bool) {
        let plane = g.height * g.width, stride = g.batch * plane
        weight.withUnsafeBufferPointer { w in
            ds_conv3x3_same(x + images.lowerBound * plane, Int64(stride), w.baseAddress!, Int64(paddedStride(outputs)),
                            y + images.lowerBound * plane, Int64(stride), Int64(channels), Int64(outputs),
                            Int64(images.count), Int64(g.height), Int64(g.width), accumulate ? 1 : 0)
        }
    }
}
