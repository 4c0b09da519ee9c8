import DSCore

/// What a dataset tells a model: input channels, image size and class count.
public struct ModelInput: Equatable, Sendable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classes: Int
    public init(channels: Int, height: Int, width: Int, classes: Int) {
        self.channels = channels; self.height = height; self.width = width; self.classes = classes
    }
}

/// Architecture options from the config's `model` section.
public struct ModelOptions: Equatable, Sendable {
    /// Hidden layer sizes (`mlp` only).
    public var hidden: [Int]
    /// Multiplies every convolution's channel count (rounded, at least 1).
    public var widthMultiplier: Double
    /// Dropout probability (`mlp` between hidden layers, `wrn-22-2` inside blocks).
    public var dropout: Float
    /// `vit` only.
    public var vit: VisionTransformerOptions
    public init(hidden: [Int] = [300, 100], widthMultiplier: Double = 1, dropout: Float = 0,
                vit: VisionTransformerOptions = VisionTransformerOptions()) {
        self.hidden = hidden; self.widthMultiplier = widthMultiplier; self.dropout = dropout; self.vit = vit
    }
}

/// The shape of a vision transformer (`model.vit`).
public struct VisionTransformerOptions: Equatable, Sendable {
    /// Side of the square, non-overlapping patches; must divide the image size.
    public var patchSize: Int
    /// Transformer blocks.
    public var depth: Int
    /// Token width `D`.
    public var width: Int
    /// Attention heads; must divide `width`.
    public var heads: Int
    /// MLP hidden width as a multiple of `width`.
    public var mlpRatio: Double
    /// Dropout after the embedding, the attention output and in the MLP.
    public var dropout: Float
    /// Dropout on the attention weights.
    public var attentionDropout: Float
    /// GELU's tanh approximation instead of the exact erf form.
    public var approximateGELU: Bool
    public init(patchSize: Int = 7, depth: Int = 4, width: Int = 64, heads: Int = 4, mlpRatio: Double = 2,
                dropout: Float = 0, attentionDropout: Float = 0, approximateGELU: Bool = false) {
        self.patchSize = patchSize; self.depth = depth; self.width = width; self.heads = heads
        self.mlpRatio = mlpRatio; self.dropout = dropout; self.attentionDropout = attentionDropout
        self.approximateGELU = approximateGELU
    }
}

/// A model that cannot take the dataset's images.
public struct ModelInputError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A model registry error.
public struct UnknownModelError: Error, CustomStringConvertible {
    public let name: String
    public let validNames: [String]
    public init(name: String, validNames: [String]) { self.name = name; self.validNames = validNames }
    public var description: String {
        "unknown model '\(name)'; valid models: \(validNames.joined(separator: ", "))"
    }
}

/// The model registry: a plain dictionary from name to builder, so every model can
/// be listed, and built by a test.
public enum ModelRegistry {
    public typealias Builder = (ModelInput, ModelOptions, inout Xoshiro256) -> Sequential

    public static let builders: [String: Builder] = [
        "mlp": { input, options, rng in mlp(input, options, &rng) },
        "lenet5": { input, options, rng in lenet5(input, options, &rng) },
        "resnet20": { input, options, rng in cifarResNet(blocksPerStage: 3, input, options, &rng) },
        "resnet32": { input, options, rng in cifarResNet(blocksPerStage: 5, input, options, &rng) },
        "resnet18": { input, options, rng in resnet18(input, options, &rng) },
        "wrn-22-2": { input, options, rng in wideResNet(depth: 22, widen: 2, input, options, &rng) },
        "vit": { input, options, rng in visionTransformer(input, options.vit, &rng) },
    ]

    /// Smallest image side a model accepts (others take any size).
    static let minimumImageSize = ["lenet5": 12]

    /// Every registered name, sorted.
    public static var names: [String] { builders.keys.sorted() }

    /// Builds the named model; the generator supplies every initial weight.
    public static func build(_ name: String, input: ModelInput, options: ModelOptions = ModelOptions(),
                             rng: inout Xoshiro256) throws -> Sequential {
        guard let builder = builders[name] else {
            throw UnknownModelError(name: name, validNames: names)
        }
        if let minimum = minimumImageSize[name], min(input.height, input.width) < minimum {
            throw ModelInputError(message: "model \(name) needs images of at least \(minimum)x\(minimum), "
                                  + "the dataset has \(input.height)x\(input.width)")
        }
        if name == "vit" {
            let p = options.vit.patchSize
            guard p > 0, input.height % p == 0, input.width % p == 0 else {
                throw ModelInputError(message: "model.vit.patch_size: \(p) does not divide the \(input.height)x\(input.width) images")
            }
        }
        let model = builder(input, options, &rng)
        // Nothing upstream of the first weight layer needs its input gradient.
        switch model.namedLayers().first(where: { !$0.layer.ownParameters.isEmpty })?.layer {
        case let conv as Conv2d: conv.computesInputGradient = false
        case let linear as Linear: linear.computesInputGradient = false
        default: break
        }
        return model
    }

    static func channels(_ base: Int, _ options: ModelOptions) -> Int {
        max(1, Int((Double(base) * options.widthMultiplier).rounded()))
    }

    /// `flatten → [linear → relu (→ dropout)]* → linear`.
    static func mlp(_ input: ModelInput, _ options: ModelOptions, _ rng: inout Xoshiro256) -> Sequential {
        var layers: [(String, Layer)] = [("flatten", Flatten())]
        var width = input.channels * input.height * input.width
        for (i, h) in options.hidden.enumerated() {
            layers.append(("fc\(i + 1)", Linear(inputFeatures: width, outputFeatures: h, rng: &rng)))
            layers.append(("relu\(i + 1)", ReLU()))
            if options.dropout > 0 {
                layers.append(("dropout\(i + 1)", Dropout(probability: options.dropout, rng: &rng)))
            }
            width = h
        }
        layers.append(("fc\(options.hidden.count + 1)",
                       Linear(inputFeatures: width, outputFeatures: input.classes, rng: &rng)))
        return Sequential(named: layers)
    }

    /// LeNet-5 with ReLU and max-pooling: conv5(6, pad 2) → pool → conv5(16) → pool →
    /// fc 120 → fc 84 → classifier.
    static func lenet5(_ input: ModelInput, _ options: ModelOptions, _ rng: inout Xoshiro256) -> Sequential {
        let c1 = channels(6, options), c2 = channels(16, options)
        let h = ((input.height / 2) - 4) / 2, w = ((input.width / 2) - 4) / 2
        return Sequential(named: [
            ("conv1", Conv2d(inputChannels: input.channels, outputChannels: c1, kernelSize: 5,
                             padding: 2, bias: true, rng: &rng)),
            ("relu1", ReLU()), ("pool1", MaxPool2d(kernelSize: 2)),
            ("conv2", Conv2d(inputChannels: c1, outputChannels: c2, kernelSize: 5, bias: true, rng: &rng)),
            ("relu2", ReLU()), ("pool2", MaxPool2d(kernelSize: 2)),
            ("flatten", Flatten()),
            ("fc1", Linear(inputFeatures: c2 * h * w, outputFeatures: 120, rng: &rng)), ("relu3", ReLU()),
            ("fc2", Linear(inputFeatures: 120, outputFeatures: 84, rng: &rng)), ("relu4", ReLU()),
            ("fc3", Linear(inputFeatures: 84, outputFeatures: input.classes, rng: &rng)),
        ])
    }

    /// Stem of the CIFAR-style ResNets: 3×3 conv, then batch norm with its ReLU fused.
    static func stem(_ input: ModelInput, _ width: Int, _ rng: inout Xoshiro256) -> [(String, Layer)] {
        [("conv1", Conv2d(inputChannels: input.channels, outputChannels: width, kernelSize: 3,
                          padding: 1, rng: &rng)),
         ("bn1", BatchNorm(features: width, fusedReLU: true))]
    }

    static func stages(widths: [Int], blocks: [Int], strides: [Int], inputWidth: Int,
                       _ rng: inout Xoshiro256) -> [(String, Layer)] {
        var layers: [(String, Layer)] = []
        var inWidth = inputWidth
        for (s, (width, count)) in zip(widths, blocks).enumerated() {
            var stage: [(String, Layer)] = []
            for b in 0..<count {
                stage.append((String(b), BasicBlock(inputChannels: inWidth, outputChannels: width,
                                                    stride: b == 0 ? strides[s] : 1, rng: &rng)))
                inWidth = width
            }
            layers.append(("layer\(s + 1)", Sequential(named: stage)))
        }
        return layers
    }

    /// ResNet-20/32 for CIFAR (He et al. 2016, §4.2): 16-32-64 channels, `n` basic
    /// blocks per stage, projection shortcuts where the shape changes.
    static func cifarResNet(blocksPerStage n: Int, _ input: ModelInput, _ options: ModelOptions,
                            _ rng: inout Xoshiro256) -> Sequential {
        let widths = [16, 32, 64].map { channels($0, options) }
        var layers = stem(input, widths[0], &rng)
        layers += stages(widths: widths, blocks: [n, n, n], strides: [1, 2, 2], inputWidth: widths[0], &rng)
        layers += [("avgpool", GlobalAvgPool()),
                   ("fc", Linear(inputFeatures: widths[2], outputFeatures: input.classes, rng: &rng))]
        return Sequential(named: layers)
    }

    /// ResNet-18, CIFAR variant: 3×3 stem, no max-pool, 64-128-256-512, [2, 2, 2, 2].
    static func resnet18(_ input: ModelInput, _ options: ModelOptions, _ rng: inout Xoshiro256) -> Sequential {
        let widths = [64, 128, 256, 512].map { channels($0, options) }
        var layers = stem(input, widths[0], &rng)
        layers += stages(widths: widths, blocks: [2, 2, 2, 2], strides: [1, 2, 2, 2],
                         inputWidth: widths[0], &rng)
        layers += [("avgpool", GlobalAvgPool()),
                   ("fc", Linear(inputFeatures: widths[3], outputFeatures: input.classes, rng: &rng))]
        return Sequential(named: layers)
    }

    /// Wide ResNet WRN-d-k: `(d − 4) / 6` pre-activation blocks per stage,
    /// 16 → 16k-32k-64k channels, then batch norm, ReLU, pooling and the classifier.
    static func wideResNet(depth: Int, widen: Int, _ input: ModelInput, _ options: ModelOptions,
                           _ rng: inout Xoshiro256) -> Sequential {
        let n = (depth - 4) / 6
        let stemWidth = channels(16, options)
        let widths = [16 * widen, 32 * widen, 64 * widen].map { channels($0, options) }
        var layers: [(String, Layer)] = [
            ("conv1", Conv2d(inputChannels: input.channels, outputChannels: stemWidth, kernelSize: 3,
                             padding: 1, rng: &rng)),
        ]
        var inWidth = stemWidth
        for (s, width) in widths.enumerated() {
            var stage: [(String, Layer)] = []
            for b in 0..<n {
                stage.append((String(b), PreActivationBlock(
                    inputChannels: inWidth, outputChannels: width, stride: (b == 0 && s > 0) ? 2 : 1,
                    dropout: options.dropout, rng: &rng)))
                inWidth = width
            }
            layers.append(("layer\(s + 1)", Sequential(named: stage)))
        }
        layers += [("bn", BatchNorm(features: inWidth, fusedReLU: true)), ("avgpool", GlobalAvgPool()),
                   ("fc", Linear(inputFeatures: inWidth, outputFeatures: input.classes, rng: &rng))]
        return Sequential(named: layers)
    }

    /// A vision transformer (Dosovitskiy et al. 2021), pre-norm: `p × p` patches →
    /// Linear patch embedding → class token and position embedding (→ dropout) →
    /// `depth` transformer blocks → LayerNorm → the class token → the classifier. Its
    /// Linear layers start Xavier-uniform with zero biases (as common ViT code does).
    static func visionTransformer(_ input: ModelInput, _ o: VisionTransformerOptions,
                                  _ rng: inout Xoshiro256) -> Sequential {
        let tokens = (input.height / o.patchSize) * (input.width / o.patchSize)
        var layers: [(String, Layer)] = [
            ("patches", PatchTokens(patchSize: o.patchSize)),
            ("patch_embed", Linear(inputFeatures: input.channels * o.patchSize * o.patchSize, outputFeatures: o.width, rng: &rng)),
            ("embed", ClassTokenAndPosition(tokens: tokens, width: o.width, rng: &rng)),
        ]
        if o.dropout > 0 { layers.append(("embed_drop", Dropout(probability: o.dropout, rng: &rng))) }
        let blocks = (0..<o.depth).map { i in
            (String(i), TransformerBlock(width: o.width, heads: o.heads, mlpRatio: o.mlpRatio, dropout: o.dropout,
                                         attentionDropout: o.attentionDropout, approximateGELU: o.approximateGELU,
                                         rng: &rng) as Layer)
        }
        layers += [("blocks", Sequential(named: blocks)), ("norm", LayerNorm(features: o.width)),
                   ("pool", ClassTokenPool()),
                   ("head", Linear(inputFeatures: o.width, outputFeatures: input.classes, rng: &rng))]
        let model = Sequential(named: layers)
        for case let linear as Linear in model.namedLayers().map(\.layer) {
            linear.weight.value = Initializer.xavierUniform(shape: linear.weight.value.shape, fanIn: linear.inputFeatures,
                                                            fanOut: linear.outputFeatures, rng: &rng)
            linear.bias?.value.zero()
        }
        return model
    }
}
