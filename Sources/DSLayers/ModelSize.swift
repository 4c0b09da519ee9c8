/// How big a registered model would be, worked out from its options without building
/// it (so an impossible size is reported instead of crashing an allocation). Counts are
/// `Double`, so no size overflows.
public struct ModelSize: Equatable, Sendable {
    /// Trainable values (weights, biases, norm scales and shifts).
    public var parameters: Double
    /// Activation values one sample keeps for the backward pass (layer outputs and
    /// the caches beside them), approximately.
    public var activationsPerSample: Double

    /// Bytes a training run needs: per parameter its value, gradient, two optimizer
    /// state tensors and the mask bookkeeping (about six floats), plus the activations
    /// of one batch.
    public func trainingBytes(batchSize: Int) -> Double {
        4 * (6 * parameters + activationsPerSample * Double(batchSize))
    }
}

extension ModelRegistry {
    /// The size of model `name` on `input` with `options` (nil for an unknown name).
    public static func size(_ name: String, input: ModelInput, options: ModelOptions) -> ModelSize? {
        let c = Double(input.channels), pixels = Double(input.height) * Double(input.width)
        let classes = Double(input.classes)
        func width(_ base: Int) -> Double { max(1, (Double(base) * options.widthMultiplier).rounded()) }
        switch name {
        case "mlp":
            var inputs = c * pixels, parameters = 0.0, activations = inputs
            for h in options.hidden.map(Double.init) + [classes] {
                parameters += (inputs + 1) * h
                activations += 3 * h   // linear output, ReLU output, dropout mask
                inputs = h
            }
            return ModelSize(parameters: parameters, activationsPerSample: activations)
        case "lenet5":
            let c1 = width(6), c2 = width(16)
            let flat = c2 * Double(max(0, (input.height / 2 - 4) / 2)) * Double(max(0, (input.width / 2 - 4) / 2))
            let parameters = 25 * c * c1 + c1 + 25 * c1 * c2 + c2 + (flat + 1) * 120 + 121 * 84 + 85 * classes
            return ModelSize(parameters: parameters, activationsPerSample: pixels * (3 * c1 + c2) + 25 * c * pixels)
        case "resnet20", "resnet32":
            let n = name == "resnet20" ? 3 : 5
            return residual(stem: width(16), widths: [16, 32, 64].map(width), blocks: [n, n, n],
                            strides: [1, 2, 2], channels: c, pixels: pixels, classes: classes)
        case "resnet18":
            return residual(stem: width(64), widths: [64, 128, 256, 512].map(width), blocks: [2, 2, 2, 2],
                            strides: [1, 2, 2, 2], channels: c, pixels: pixels, classes: classes)
        case "wrn-22-2":
            return residual(stem: width(16), widths: [32, 64, 128].map(width), blocks: [3, 3, 3],
                            strides: [1, 2, 2], channels: c, pixels: pixels, classes: classes)
        case "vit":
            let o = options.vit, d = Double(o.width), p = Double(max(o.patchSize, 1))
            let tokens = (pixels / (p * p)).rounded(.down) + 1, hidden = (d * o.mlpRatio).rounded()
            let block = 4 * (d * d + d) + (d + 1) * hidden + (hidden + 1) * d + 4 * d
            let parameters = (c * p * p + 1) * d + (tokens + 1) * d + Double(o.depth) * block + 2 * d + (d + 1) * classes
            // Per block: norms, projections, attention weights per head, the MLP.
            let perBlock = tokens * (10 * d + 3 * hidden) + Double(o.heads) * tokens * tokens * 2
            return ModelSize(parameters: parameters, activationsPerSample: c * pixels + tokens * d * 2 + Double(o.depth) * perBlock)
        default:
            return nil
        }
    }

    /// A 3×3 stem and stages of two-convolution residual blocks (with a 1×1 projection
    /// where the shape changes), then global pooling and the classifier.
    static func residual(stem: Double, widths: [Double], blocks: [Int], strides: [Int], channels: Double,
                         pixels: Double, classes: Double) -> ModelSize {
        var parameters = 9 * channels * stem + 2 * stem
        var activations = 3 * stem * pixels + 9 * channels * pixels
        var inWidth = stem, area = pixels
        for (s, w) in widths.enumerated() {
            for b in 0..<blocks[s] {
                let stride = b == 0 ? Double(strides[s]) : 1
                area /= stride * stride
                parameters += 9 * inWidth * w + 9 * w * w + 4 * w
                if stride != 1 || inWidth != w { parameters += inWidth * w + 2 * w }
                activations += 8 * w * area   // two convolutions, their norms, ReLUs and the sum
                inWidth = w
            }
        }
        parameters += (inWidth + 1) * classes
        return ModelSize(parameters: parameters, activationsPerSample: activations + inWidth + classes)
    }
}
