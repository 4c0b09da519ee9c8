import DSCore
import DSData
import DSExperiment
import DSLayers
import DSSparsity
import DSTestSupport
import DSTraining
import Testing

/// Masks inside real training steps: every strategy keeps inactive weights, their
/// gradients and optimizer state at zero, and grown weights start from zero.
@Suite struct SparseTrainingTests {
    /// Every registered strategy with its defaults, and some under other structures.
    static let strategies: [any SparsityScheduler] = StrategyRegistry.defaults + [
        StrategyRegistry.make("set", structure: .constantFanIn)!, StrategyRegistry.make("rigl", structure: .nOfM, n: 1, m: 4)!,
        StrategyRegistry.make("gmp", structure: .nOfM, n: 2, m: 4)!,
    ]

    func setup(_ strategy: any SparsityScheduler, sparsity: Double, optimizer name: String,
               accumulation: Int = 1, kernels: SparseKernelMode = .off) throws -> (Trainer, SparseModel, BatchLoader) {
        var rng = Xoshiro256(seed: 11)
        let input = ModelInput(channels: 1, height: 8, width: 8, classes: 4)
        let model = Sequential(named: [
            ("conv", Conv2d(inputChannels: 1, outputChannels: 6, kernelSize: 5, padding: 2, rng: &rng)),
            ("relu", ReLU()), ("flatten", Flatten()),
            ("fc1", Linear(inputFeatures: 6 * 64, outputFeatures: 40, rng: &rng)), ("relu1", ReLU()),
            ("fc2", Linear(inputFeatures: 40, outputFeatures: input.classes, rng: &rng)),
        ])
        let parameters = model.namedParameters().map(\.parameter)
        // The classifier is 4×40, so at 99% it keeps one weight (a layer keeping none is refused).
        let settings = SparsitySettings(strategy: strategy, sparsity: sparsity, distribution: .uniform,
                                        protectedLayers: ["fc2"],
                                        schedule: UpdateSchedule(interval: 2, endStep: 12, initialDropFraction: 0.3),
                                        gradientAccumulation: accumulation, kernels: kernels)
        let sparse = try SparseModel(model: model, parameters: parameters, settings: settings, rng: &rng)
        let optimizer: Optimizer = name == "sgd"
            ? SGD(parameters: parameters, momentum: 0.9, nesterov: true, weightDecay: 1e-3)
            : AdamW(parameters: parameters, weightDecay: 1e-2)
        let trainer = Trainer(model: model, optimizer: optimizer, loss: CrossEntropy(),
                              schedule: LearningRateSchedule(base: 0.05, decay: .constant, totalEpochs: 1, stepsPerEpoch: 16),
                              sparse: sparse)
        let data = Fixtures.bandImages(count: 64, classes: 4, size: 8, seed: 3)
        let ds = ImageDataset(pixels: data.pixels, labels: data.labels, channels: 1, height: 8, width: 8)
        return (trainer, sparse, BatchLoader(dataset: ds, batchSize: 8, mean: [0.5], std: [0.25]))
    }

    /// On the masked dense path and on the sparse kernels alike.
    @Test(arguments: ["sgd", "adamw"], [0.5, 0.9, 0.99])
    func inactiveWeightsAndStateStayZero(optimizer name: String, sparsity: Double) throws {
        for kernels in [SparseKernelMode.off, .on] {
            try inactiveWeightsAndStateStayZero(optimizer: name, sparsity: sparsity, kernels: kernels)
        }
    }

    func inactiveWeightsAndStateStayZero(optimizer name: String, sparsity: Double, kernels: SparseKernelMode) throws {
        for strategy in Self.strategies {
            // At 99% the 6×25 conv keeps one weight: constant fan-in must refuse it.
            if strategy.structure is ConstantFanIn && sparsity == 0.99 {
                #expect(throws: SparsityError.self) { _ = try setup(strategy, sparsity: sparsity, optimizer: name) }
                continue
            }
            let (trainer, sparse, loader) = try setup(strategy, sparsity: sparsity, optimizer: name, kernels: kernels)
            #expect(sparse.kernelChoices.allSatisfy { $0.sparse == (kernels == .on) })
            var dataRNG = Xoshiro256(seed: 1), maskRNG = Xoshiro256(seed: 2)
            let initialCounts = sparse.layers.map(\.activeCount)
            var updatesSeen = 0
            for b in 0..<16 {
                let before = sparse.layers.map { $0.mask }
                let r = try trainer.trainStep(loader.batch(b % loader.batchesPerEpoch, of: Array(0..<64), augmentWith: &dataRNG),
                                          sparsityRNG: &maskRNG)
                updatesSeen += r.updates.isEmpty ? 0 : 1
                for (layer, old) in zip(sparse.layers, before) {
                    guard let mask = layer.mask else { continue }
                    let context = "\(strategy.name)/\(name)/\(kernels) step \(trainer.step) \(layer.name)"
                    for i in mask.active.indices where !mask.active[i] {
                        #expect(layer.parameter.value.storage[i] == 0, "\(context): inactive weight \(i)")
                        for state in trainer.optimizer.stateNames {
                            #expect(trainer.optimizer.state(state, parameter: layer.parameterIndex).storage[i] == 0,
                                    "\(context): \(state) at inactive \(i)")
                        }
                    }
                    if let change = r.updates.first(where: { $0.layer === layer })?.change {
                        for i in change.grown {
                            #expect(old!.active[i] == false)
                            #expect(layer.parameter.value.storage[i] == 0, "\(context): grown weight starts at 0")
                            for state in trainer.optimizer.stateNames {
                                #expect(trainer.optimizer.state(state, parameter: layer.parameterIndex).storage[i] == 0)
                            }
                        }
                    }
                }
            }
            let label = "\(strategy.name) \(strategy.structure.label)"
            if strategy.structure is ConstantFanIn {
                for layer in sparse.layers where layer.mask != nil {
                    let active = layer.rowCounts.filter { $0 > 0 }
                    #expect(Set(active).count == 1, "\(label) \(layer.name): constant fan-in")
                    #expect(layer.activeCount <= layer.density.budget)
                }
            }
            if strategy is GMPStrategy {
                // The last update (after step 10, T_end = 12) reaches each layer's target.
                for layer in sparse.layers where layer.mask != nil {
                    let target = strategy.structure.groupCounts(rows: layer.rows, columns: layer.columns,
                                                                total: layer.density.budget).reduce(0, +)
                    #expect(layer.activeCount == target, "\(label) \(layer.name): pruned to the target")
                }
            } else if !(strategy is SRigLStrategy) {
                #expect(sparse.layers.map(\.activeCount) == initialCounts, "\(label): active counts preserved")
            }
            #expect(updatesSeen == (strategy.isDynamic ? 5 : 0), "\(strategy.name): updates after steps 2, 4, …, 10")
            let itop = SparsityStatistics(sparse).itop
            let initialDensity = Double(initialCounts.reduce(0, +)) / Double(sparse.layers.reduce(0) { $0 + $1.parameter.value.count })
            if strategy is GMPStrategy {
                #expect(itop == 1, "\(label): every weight was active at the start")
            } else if strategy.isDynamic && sparsity < 0.99 {
                #expect(itop > initialDensity, "\(strategy.name): dynamic masks explore")
            } else if !strategy.isDynamic {
                #expect(abs(itop - initialDensity) < 1e-9)
            }
        }
    }

    @Test func realisedSparsityAndNeuronsAreReported() throws {
        let (_, sparse, _) = try setup(SRigLStrategy(), sparsity: 0.8, optimizer: "sgd")
        let stats = SparsityStatistics(sparse)
        let total = sparse.layers.reduce(0) { $0 + $1.parameter.value.count }
        let budget = sparse.layers.reduce(0) { $0 + $1.density.budget }
        #expect(stats.sparsity >= 0.8 && stats.sparsity < 0.8 + 0.02)
        #expect(stats.sparsity <= 1 - Double(sparse.layers.reduce(0) { $0 + $1.activeCount }) / Double(total) + 1e-12)
        #expect(budget <= total / 5 + 1)
        #expect(stats.activeNeurons == 6 + 40 + 4 && stats.ablatedNeurons == 0)
    }

    @Test func sparseKaimingDrawsForTheSparseFanIn() throws {
        var rng = Xoshiro256(seed: 3)
        let fc = Linear(inputFeatures: 2000, outputFeatures: 50, rng: &rng)
        let model = Sequential(named: [("fc", fc)])
        let settings = SparsitySettings(strategy: SRigLStrategy(), sparsity: 0.95, distribution: .uniform,
                                        schedule: UpdateSchedule(interval: 1, endStep: 0, initialDropFraction: 0))
        let sparse = try SparseModel(model: model, parameters: model.namedParameters().map(\.parameter),
                                     settings: settings, rng: &rng)
        let mask = sparse.layers[0].mask!
        let values = mask.activeIndices.map { Double(fc.weight.value.storage[$0]) }
        let variance = values.map { $0 * $0 }.reduce(0, +) / Double(values.count)
        #expect(Set(mask.rowCounts) == [100])
        #expect(abs(variance - 2.0 / 100) / (2.0 / 100) < 0.1, "variance \(variance) vs 2/k = 0.02")
    }

    @Test(arguments: [1, 2])
    func denseGradientIsAveragedOverTheLastPasses(accumulation: Int) throws {
        var rng = Xoshiro256(seed: 4)
        let fc = Linear(inputFeatures: 4, outputFeatures: 1, bias: false, rng: &rng)
        let model = Sequential(named: [("fc", fc)])
        let settings = SparsitySettings(strategy: RigLStrategy(), sparsity: 0.5, distribution: .uniform,
                                        schedule: UpdateSchedule(interval: 2, endStep: 1000, initialDropFraction: 0.6),
                                        gradientAccumulation: accumulation)
        let sparse = try SparseModel(model: model, parameters: [fc.weight], settings: settings, rng: &rng)
        let active = sparse.layers[0].mask!.activeIndices
        let inactive = (0..<4).filter { !active.contains($0) }
        // Pass 1 favours inactive[0] strongly, pass 2 favours inactive[1]: the mean
        // (5 vs 2) grows inactive[0]; pass 2 alone grows inactive[1].
        for (step, favoured, value) in [(1, inactive[0], Float(10)), (2, inactive[1], Float(4))] {
            fc.weight.gradient = Tensor(shape: [1, 4])
            fc.weight.gradient.storage[favoured] = value
            sparse.prepareGradients(forStep: step)
        }
        fc.weight.value.storage[active[0]] = 1
        fc.weight.value.storage[active[1]] = 0.1
        let updates = sparse.afterStep(2, rng: &rng)
        #expect(updates.count == 1 && updates[0].change.dropped == [active[1]])
        #expect(updates[0].change.grown == [accumulation == 2 ? inactive[0] : inactive[1]])
    }
}
