import DSCore
import DSData
import DSExperiment
import DSLayers
import DSSparsity
import DSTestSupport
import DSTraining
import Testing

/// Training through the sparse kernels gives what the masked dense path gives: the
/// same masks after every update and the same weights within float rounding, for every
/// strategy, both optimizers and models with Linear, strided, pointwise and residual
/// convolutions.
@Suite struct SparseKernelEquivalenceTests {
    /// Every registered strategy with its defaults, and RigL under N:M.
    static let strategies: [any SparsityScheduler] = StrategyRegistry.defaults + [StrategyRegistry.make("rigl", structure: .nOfM)!]

    /// 1×16×16 inputs, 4 classes. 16-wide planes put the masked path's 3×3 layers on the
    /// direct convolution, so both products are compared, not one with itself.
    static func model(_ name: String, rng: inout Xoshiro256) -> Sequential {
        switch name {
        case "mlp":
            return Sequential(named: [
                ("flatten", Flatten()), ("fc1", Linear(inputFeatures: 256, outputFeatures: 48, rng: &rng)), ("relu", ReLU()),
                ("fc2", Linear(inputFeatures: 48, outputFeatures: 4, rng: &rng)),
            ])
        case "conv":
            let first = Conv2d(inputChannels: 1, outputChannels: 8, kernelSize: 3, padding: 1, rng: &rng)
            first.computesInputGradient = false
            return Sequential(named: [
                ("conv1", first), ("relu1", ReLU()),
                ("conv2", Conv2d(inputChannels: 8, outputChannels: 8, kernelSize: 3, padding: 1, rng: &rng)), ("relu2", ReLU()),
                ("conv3", Conv2d(inputChannels: 8, outputChannels: 8, kernelSize: 3, stride: 2, padding: 1, bias: true, rng: &rng)),
                ("relu3", ReLU()),
                ("conv4", Conv2d(inputChannels: 8, outputChannels: 6, kernelSize: 1, rng: &rng)), ("relu4", ReLU()),
                ("flatten", Flatten()), ("fc", Linear(inputFeatures: 6 * 64, outputFeatures: 4, rng: &rng)),
            ])
        default:
            return Sequential(named: [
                ("conv1", Conv2d(inputChannels: 1, outputChannels: 8, kernelSize: 3, padding: 1, rng: &rng)), ("relu", ReLU()),
                ("block", BasicBlock(inputChannels: 8, outputChannels: 16, stride: 2, rng: &rng)),
                // 8×8 → 4×4: a stride-2 layer on 4×4 phase planes and a 4×4 one (the lane layout).
                ("block2", BasicBlock(inputChannels: 16, outputChannels: 16, stride: 2, rng: &rng)),
                ("pool", GlobalAvgPool()), ("fc", Linear(inputFeatures: 16, outputFeatures: 4, rng: &rng)),
            ])
        }
    }

    /// Eight steps (mask updates after steps 2, 4, 6 and 8); returns the trained parameters
    /// and the masks after each update.
    func train(_ modelName: String, _ strategy: any SparsityScheduler, optimizer name: String,
               kernels: SparseKernelMode) throws -> (parameters: [(String, [Float])], masks: [[SparseMask?]], choices: [KernelChoice]) {
        var rng = Xoshiro256(seed: 21)
        let model = Self.model(modelName, rng: &rng)
        let parameters = model.namedParameters().map(\.parameter)
        let classifier = modelName == "mlp" ? "fc2" : "fc"
        // The shortcuts stay dense: sparse, some of their neurons keep a single weight,
        // BatchNorm makes such a neuron's output independent of it, its gradient is
        // rounding noise (~1e-9), and AdamW turns noise into steps of a good part of the
        // learning rate, different on each path (measured: block2's shortcut sparse
        // differs by 1.2e-4 of its norm with the lane kernels, 4.2e-4 with the ones
        // before them). (Their 1×1 stride-2 product is the column-matrix path of the
        // conv model's stride-2 layer.)
        let settings = SparsitySettings(strategy: strategy, sparsity: 0.7, distribution: .uniform,
                                        denseLayers: modelName == "residual" ? ["block.shortcut.0", "block2.shortcut.0"] : [],
                                        protectedLayers: [classifier],
                                        schedule: UpdateSchedule(interval: 2, endStep: 12, initialDropFraction: 0.3),
                                        kernels: kernels)
        let sparse = try SparseModel(model: model, parameters: parameters, settings: settings, rng: &rng)
        let optimizer: Optimizer = name == "sgd"
            ? SGD(parameters: parameters, momentum: 0.9, nesterov: true, weightDecay: 1e-3)
            : AdamW(parameters: parameters, weightDecay: 1e-2)
        let trainer = Trainer(model: model, optimizer: optimizer, loss: CrossEntropy(),
                              schedule: LearningRateSchedule(base: name == "sgd" ? 0.05 : 0.01, decay: .constant,
                                                             totalEpochs: 1, stepsPerEpoch: 8),
                              sparse: sparse)
        // Rounding differs between the paths, so an activation that lands within rounding
        // of zero can pass a ReLU on one path and not on the other, and from then on the
        // runs differ by much more than rounding (measured: with data seed 3 and the
        // batch norm that sums each half of the batch on its own, a value of 3e-8 on one
        // path and -1e-7 on the other in the residual model's third step, then 8e-4 of
        // a tensor's norm; seeds 4, 5 and 6 pass every case, 7 flips one too). The data
        // seed is one without such a tie.
        let data = Fixtures.bandImages(count: 64, classes: 4, size: 16, seed: 4)
        let loader = BatchLoader(dataset: ImageDataset(pixels: data.pixels, labels: data.labels, channels: 1, height: 16, width: 16),
                                 batchSize: 8, mean: [0.5], std: [0.25])
        var dataRNG = Xoshiro256(seed: 1), maskRNG = Xoshiro256(seed: 2)
        var masks: [[SparseMask?]] = []
        for b in 0..<8 {
            let r = try trainer.trainStep(loader.batch(b, of: Array(0..<64), augmentWith: &dataRNG), sparsityRNG: &maskRNG)
            if !r.updates.isEmpty { masks.append(sparse.layers.map(\.mask)) }
        }
        return (model.namedParameters().map { ($0.name, $0.parameter.value.storage) }, masks, sparse.kernelChoices)
    }

    @Test(arguments: ["mlp", "conv", "residual"], ["sgd", "adamw"])
    func sparseKernelsTrainLikeTheMaskedPath(model: String, optimizer: String) throws {
        for strategy in Self.strategies {
            let masked = try train(model, strategy, optimizer: optimizer, kernels: .off)
            let sparse = try train(model, strategy, optimizer: optimizer, kernels: .on)
            let context = "\(model)/\(optimizer)/\(strategy.name)"
            #expect(sparse.choices.allSatisfy(\.sparse) && !sparse.choices.isEmpty, "\(context): every masked layer on sparse kernels")
            #expect(masked.masks.count == (strategy.isDynamic ? 4 : 0), "\(context): updates ran")
            for (u, (a, b)) in zip(masked.masks, sparse.masks).enumerated() {
                for (l, (ma, mb)) in zip(a, b).enumerated() where ma != mb {
                    let differing = zip(ma?.active ?? [], mb?.active ?? []).filter { $0 != $1 }.count
                    Issue.record("\(context): update \(u + 1), layer \(l): masks differ at \(differing) positions")
                }
            }
            // Relative to each tensor's norm.
            for ((name, a), (_, b)) in zip(masked.parameters, sparse.parameters) {
                let norm = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                let diff = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                #expect(diff <= 1e-4 * max(norm, 1e-6), "\(context): \(name) differs by \(diff) (norm \(norm))")
            }
        }
    }

    /// A layer that computes no input gradient (the conv model's first) gets a kernel
    /// without the pattern's column order, at the start and after every mask update;
    /// the others build it.
    @Test func onlyLayersWithAnInputGradientBuildTheColumnOrder() throws {
        var rng = Xoshiro256(seed: 6)
        let model = Self.model("conv", rng: &rng)
        let settings = SparsitySettings(strategy: RigLStrategy(), sparsity: 0.7, distribution: .uniform,
                                        schedule: UpdateSchedule(interval: 1, endStep: 12, initialDropFraction: 0.3),
                                        kernels: .on)
        let sparse = try SparseModel(model: model, parameters: model.namedParameters().map(\.parameter),
                                     settings: settings, rng: &rng)
        func check(_ context: String) throws {
            for layer in sparse.layers where layer.mask != nil {
                let kernel = try #require(layer.kernel, "\(layer.name) on a sparse kernel")
                let owner = try #require(model.namedLayers().first { $0.0 == layer.name }?.1 as? WeightLayer)
                #expect(kernel.needsColumnOrder == owner.computesInputGradient, "\(context): \(layer.name)")
                #expect(kernel.pattern.hasColumnOrder == owner.computesInputGradient, "\(context): \(layer.name)")
            }
            #expect(sparse.layers.contains { $0.kernel?.pattern.hasColumnOrder == false }, "\(context): the first layer")
        }
        try check("start")
        let x = Fixtures.bandImages(count: 8, classes: 4, size: 16, seed: 2)
        var input = Tensor(shape: [1, 8, 16, 16])
        for i in 0..<input.count { input.storage[i] = Float(x.pixels[i]) / 255 }
        model.zeroGradients()
        sparse.prepareBackward(forStep: 1)
        let r = CrossEntropy().evaluate(logits: model.forward(input, training: true), labels: x.labels.map(Int.init))
        _ = model.backward(r.gradient)
        sparse.prepareGradients(forStep: 1)
        var maskRNG = Xoshiro256(seed: 7)
        #expect(!sparse.afterStep(1, rng: &maskRNG).isEmpty, "an update ran")
        try check("after an update")
    }

    /// A 3×3 "same" convolution's kind follows the plane of its last forward pass: large
    /// from 32 columns, wide (the direct kernel, shifted copies) from 16 columns and at
    /// 8×even, else the general convolution crossover; strided layers are wide on even
    /// planes from 32 columns (phase planes 16 wide), else general.
    @Test func crossoverKindFollowsThePlane() {
        var rng = Xoshiro256(seed: 2)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, rng: &rng)
        #expect(SparseKernelCrossover.crossover(for: conv).value == SparseKernelCrossover.convolution, "no plane yet")
        let large = SparseKernelCrossover.largePlaneConvolution, wide = SparseKernelCrossover.wideConvolution
        let other = SparseKernelCrossover.convolution
        for (height, width, expected) in [(32, 32, large), (9, 40, large), (16, 16, wide), (28, 28, wide), (8, 8, wide),
                                          (6, 8, wide), (7, 8, other), (7, 7, other), (4, 4, other)] {
            _ = conv.forward(Tensor(shape: [2, 1, height, width], repeating: 1), training: false)
            #expect(SparseKernelCrossover.crossover(for: conv).value == expected, "\(height)x\(width)")
        }
        let strided = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        for (height, width, expected) in [(16, 16, other), (32, 32, wide), (8, 40, wide), (32, 31, other), (33, 32, other)] {
            _ = strided.forward(Tensor(shape: [2, 1, height, width], repeating: 1), training: false)
            #expect(SparseKernelCrossover.crossover(for: strided).value == expected, "strided \(height)x\(width)")
        }
    }

    /// `auto` puts exactly the layers at or below their kind's crossover on sparse
    /// kernels (3×3 on 16×16 planes, strided and 1×1 convolutions and a Linear layer
    /// under ERK, whose densities differ per layer) and installs the matching kernels.
    @Test func autoChoosesByTheMeasuredCrossover() throws {
        for sparsity in [0.5, 0.8, 0.95] {
            var rng = Xoshiro256(seed: 4)
            let model = Self.model("conv", rng: &rng)
            let settings = SparsitySettings(strategy: StaticStrategy(), sparsity: sparsity, distribution: .erk,
                                            schedule: UpdateSchedule(interval: 2, endStep: 12, initialDropFraction: 0.3),
                                            kernels: .auto)
            let sparse = try SparseModel(model: model, parameters: model.namedParameters().map(\.parameter),
                                         settings: settings, input: ModelInput(channels: 1, height: 16, width: 16, classes: 4),
                                         rng: &rng)
            let layers = Dictionary(uniqueKeysWithValues: model.namedLayers().compactMap { name, layer in
                (layer as? WeightLayer).map { (name, $0) }
            })
            for choice in sparse.kernelChoices {
                let layer = try #require(layers[choice.layer], "\(choice.layer) is a weight layer")
                let crossover = SparseKernelCrossover.crossover(for: layer).value
                #expect(choice.sparse == (choice.density <= crossover), "\(sparsity): \(choice)")
                #expect((layer.kernel is SparseWeightKernel) == choice.sparse, "\(sparsity): \(choice.layer) kernel")
            }
            // The probe pass told the stride-1 3×3 layers their 16×16 planes.
            #expect(SparseKernelCrossover.crossover(for: layers["conv2"]).value == SparseKernelCrossover.wideConvolution)
            #expect(SparseKernelCrossover.crossover(for: layers["conv3"]).value == SparseKernelCrossover.convolution)
            let onSparse = sparse.kernelChoices.filter(\.sparse).count
            if sparsity == 0.95 { #expect(onSparse > 0, "some layer is sparse at 95%") }
            if sparsity == 0.5 { #expect(onSparse < sparse.kernelChoices.count, "some layer is dense at 50%") }
        }
    }
}
