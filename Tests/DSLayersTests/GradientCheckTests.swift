import DSCore
import DSLayers
import DSTestSupport
import Testing

/// Finite-difference checks of every layer's hand-written backward.
@Suite struct GradientCheckTests {
    func expectPasses(_ layer: Layer, _ input: Tensor, _ check: GradientCheck = GradientCheck(),
                      sourceLocation: SourceLocation = #_sourceLocation) {
        let bad = check.mismatches(layer, input: input)
        #expect(bad.isEmpty, "\(type(of: layer)): \(bad.prefix(5))", sourceLocation: sourceLocation)
    }

    @Test func linear() {
        var rng = Xoshiro256(seed: 1)
        expectPasses(Linear(inputFeatures: 5, outputFeatures: 4, rng: &rng), randomTensor([3, 5], seed: 2))
        expectPasses(Linear(inputFeatures: 5, outputFeatures: 4, bias: false, rng: &rng), randomTensor([3, 5], seed: 3))
    }

    @Test(arguments: [(3, 1, 1, true), (3, 2, 1, false), (1, 1, 0, false), (1, 2, 0, true), (1, 3, 0, false), (5, 1, 2, true),
                      (3, 1, 0, false), (5, 1, 0, true), (3, 1, 2, true)])
    func conv2d(kernel: Int, stride: Int, padding: Int, bias: Bool) {
        var rng = Xoshiro256(seed: 4)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: kernel, stride: stride,
                          padding: padding, bias: bias, rng: &rng)
        expectPasses(conv, randomTensor([2, 2, 6, 5], seed: 5))
    }

    @Test func conv2dWithoutInputGradientStillTrainsWeights() {
        var rng = Xoshiro256(seed: 4)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, rng: &rng)
        conv.computesInputGradient = false
        expectPasses(conv, randomTensor([2, 2, 4, 4], seed: 6))
    }

    @Test func linearWithoutInputGradientStillTrainsWeights() {
        var rng = Xoshiro256(seed: 4)
        let linear = Linear(inputFeatures: 5, outputFeatures: 4, rng: &rng)
        linear.computesInputGradient = false
        expectPasses(linear, randomTensor([3, 5], seed: 6))
        _ = linear.forward(randomTensor([3, 5], seed: 7), training: true)
        #expect(linear.backward(randomTensor([3, 4], seed: 8)).count == 0)
    }

    @Test func batchNorm2dAnd1d() {
        expectPasses(BatchNorm(features: 3), randomTensor([3, 4, 3, 2], seed: 7))
        expectPasses(BatchNorm(features: 5), randomTensor([6, 5], seed: 8))
        let check = GradientCheck(step: 5e-4, tolerance: 3e-2)
        expectPasses(BatchNorm(features: 3, fusedReLU: true), randomTensor([3, 4, 3, 2], seed: 7), check)
        expectPasses(BatchNorm(features: 5, fusedReLU: true), randomTensor([6, 5], seed: 8), check)
    }

    @Test func activationsAndPooling() {
        expectPasses(ReLU(), randomTensor([2, 3, 4, 4], seed: 9))
        expectPasses(MaxPool2d(kernelSize: 2), randomTensor([2, 3, 4, 6], seed: 10))
        expectPasses(MaxPool2d(kernelSize: 3, stride: 2), randomTensor([1, 2, 7, 7], seed: 11))
        expectPasses(AvgPool2d(kernelSize: 2), randomTensor([2, 3, 4, 6], seed: 12))
        expectPasses(GlobalAvgPool(), randomTensor([3, 2, 3, 3], seed: 13))
        expectPasses(Flatten(), randomTensor([3, 2, 2, 3], seed: 14))
    }

    @Test func residualBlocks() {
        var rng = Xoshiro256(seed: 15)
        // A small step keeps ReLU kinks (after batch norm) out of the central difference.
        let check = GradientCheck(step: 5e-4, tolerance: 3e-2, samples: 10)
        expectPasses(BasicBlock(inputChannels: 2, outputChannels: 2, stride: 1, rng: &rng),
                     randomTensor([2, 3, 4, 4], seed: 16), check)
        expectPasses(BasicBlock(inputChannels: 2, outputChannels: 3, stride: 2, rng: &rng),
                     randomTensor([2, 3, 5, 5], seed: 17), check)
        expectPasses(PreActivationBlock(inputChannels: 2, outputChannels: 2, stride: 1, dropout: 0, rng: &rng),
                     randomTensor([2, 3, 4, 4], seed: 18), check)
        expectPasses(PreActivationBlock(inputChannels: 2, outputChannels: 4, stride: 2, dropout: 0, rng: &rng),
                     randomTensor([2, 3, 4, 4], seed: 19), check)
    }

    @Test func sequentialChainsBackward() {
        var rng = Xoshiro256(seed: 20)
        let model = Sequential([
            Conv2d(inputChannels: 1, outputChannels: 2, kernelSize: 3, padding: 1, bias: true, rng: &rng),
            ReLU(), Flatten(), Linear(inputFeatures: 2 * 4 * 4, outputFeatures: 3, rng: &rng),
        ])
        expectPasses(model, randomTensor([1, 2, 4, 4], seed: 21))
    }
}

@Suite struct LayerBehaviourTests {
    @Test func conv2dMatchesDirectConvolution() {
        var rng = Xoshiro256(seed: 30)
        let conv = Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, stride: 2, padding: 1,
                          bias: true, rng: &rng)
        let xNCHW = randomTensor([2, 3, 7, 7], seed: 31)
        let y = conv.forward(xNCHW.swappingOuterAxes(), training: false).swappingOuterAxes()
        let expected = Reference.conv2d(xNCHW, weight: conv.weight.value, bias: conv.bias!.value,
                                        stride: 2, padding: 1)
        #expect(y.shape == expected.shape)
        for (a, b) in zip(y.storage, expected.storage) { #expect(abs(a - b) < 1e-4) }
    }

    /// An evaluation pass between a training forward and its backward changes nothing the
    /// backward returns (here a strided 1×1 convolution, which spreads its gradient back
    /// over the training input's plane, evaluated on another plane in between).
    @Test func evaluationBetweenForwardAndBackwardChangesNothing() {
        var rng = Xoshiro256(seed: 32)
        let conv = Conv2d(inputChannels: 3, outputChannels: 4, kernelSize: 1, stride: 2, rng: &rng)
        let x = randomTensor([3, 2, 6, 5], seed: 33), dy = randomTensor([4, 2, 3, 3], seed: 34)
        _ = conv.forward(x, training: true)
        let expected = conv.backward(dy)
        _ = conv.forward(x, training: true)
        _ = conv.forward(randomTensor([3, 1, 4, 4], seed: 35), training: false)
        let dx = conv.backward(dy)
        #expect(dx.shape == [3, 2, 6, 5] && dx.storage == expected.storage)
    }

    // [3, 4, 2, 2]: 16 values per channel (one vector); [3, 5, 3, 3]: 45 (vectors and a tail).
    @Test(arguments: [[3, 4, 2, 2], [3, 5, 3, 3]])
    func fusedReLUEqualsBatchNormThenReLU(shape: [Int]) {
        let x = randomTensor(shape, seed: 40), dy = randomTensor(shape, seed: 41)
        let plain = BatchNorm(features: 3), relu = ReLU(), fused = BatchNorm(features: 3, fusedReLU: true)
        for bn in [plain, fused] {
            bn.scale.value = randomTensor([3], seed: 42)
            bn.shift.value = randomTensor([3], seed: 43)
        }
        let y1 = relu.forward(plain.forward(x, training: true), training: true)
        let y2 = fused.forward(x, training: true)
        #expect(y1 == y2)
        let d1 = plain.backward(relu.backward(dy)), d2 = fused.backward(dy)
        for (a, b) in zip(d1.storage, d2.storage) { #expect(abs(a - b) < 1e-5) }
        #expect(relu.forward(plain.forward(x, training: false), training: false) == fused.forward(x, training: false))
    }

    @Test(arguments: [[3, 4, 2, 2], [3, 5, 3, 3]])
    func residualFusionEqualsBatchNormAddThenReLU(shape: [Int]) {
        let x = randomTensor(shape, seed: 44), r = randomTensor(shape, seed: 45)
        let plain = BatchNorm(features: 3), fused = BatchNorm(features: 3), relu = ReLU()
        for bn in [plain, fused] {
            bn.scale.value = randomTensor([3], seed: 46)
            bn.shift.value = randomTensor([3], seed: 47)
        }
        for training in [true, false] {
            var sum = plain.forward(x, training: training)
            sum.add(r)
            let expected = relu.forward(sum, training: training)
            let y = fused.forward(x, addingAndRectifying: r, training: training)
            #expect(y == expected)
            #expect(y.storage.contains(0) && y.storage.contains { $0 > 0 })
        }
        // Backward is the plain batch-norm backward of the gradient masked by the output.
        let dy = randomTensor(shape, seed: 48)
        let d1 = plain.backward(relu.backward(dy))
        let d2 = fused.backward(ReLU.gradient(dy, output: fused.forward(x, addingAndRectifying: r, training: true)))
        #expect(d1 == d2)
    }

    /// Batch norm splits its passes by images over the threads and sums each half of the
    /// batch on its own: outputs, input gradients, parameter gradients and running
    /// statistics are the same to the bit on one thread and on two (an odd batch, large
    /// enough to run in parts), and match the two-pass statistics of the whole batch.
    @Test func batchNormDoesNotDependOnTheThreadCount() {
        let shape = [6, 45, 16, 16], x = randomTensor(shape, seed: 50), dy = randomTensor(shape, seed: 51)
        var results: [[[Float]]] = []
        for threads in [1, 2] {
            let bn = BatchNorm(features: 6, fusedReLU: true)
            bn.shift.value = randomTensor([6], seed: 52)
            let (y, dx) = Parallel.withThreads(threads) { () -> (Tensor, Tensor) in
                let y = bn.forward(x, training: true)
                return (y, bn.backward(dy))
            }
            results.append([y.storage, dx.storage, bn.scale.gradient.storage, bn.shift.gradient.storage,
                            bn.runningMean.value.storage, bn.runningVariance.value.storage])
        }
        for (k, name) in ["output", "input gradient", "scale gradient", "shift gradient", "running mean",
                          "running variance"].enumerated() {
            #expect(results[0][k] == results[1][k], "\(name)")
        }
        let m = 45 * 256
        for c in 0..<6 {
            let values = x.storage[(c * m)..<((c + 1) * m)].map(Double.init)
            let mean = values.reduce(0, +) / Double(m)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(m - 1)
            #expect(abs(Double(results[0][4][c]) - 0.1 * mean) < 1e-6)
            #expect(abs(Double(results[0][5][c]) - (0.9 + 0.1 * variance)) < 1e-6)
        }
    }

    @Test func batchNormUsesRunningStatisticsInEvaluation() {
        let bn = BatchNorm(features: 2, momentum: 1)   // running stats = last batch's
        let x = randomTensor([2, 8, 2, 2], seed: 32)
        let train = bn.forward(x, training: true)
        let eval = bn.forward(x, training: false)
        // Same statistics, except the running variance is unbiased (m/(m−1)).
        for (a, b) in zip(train.storage, eval.storage) { #expect(abs(a - b) < 0.05 * max(1, abs(a))) }
        let m = 32.0
        let mean0 = x.storage[0..<32].reduce(0, +) / 32
        #expect(abs(bn.runningMean.value.storage[0] - mean0) < 1e-5)
        let var0 = x.storage[0..<32].map { Double(($0 - mean0) * ($0 - mean0)) }.reduce(0, +) / (m - 1)
        #expect(abs(Double(bn.runningVariance.value.storage[0]) - var0) < 1e-4)
    }

    @Test func dropoutScalesKeptValuesAndMasksTheGradient() {
        var rng = Xoshiro256(seed: 33)
        let drop = Dropout(probability: 0.5, rng: &rng)
        let x = Tensor(shape: [1000], repeating: 1)
        let y = drop.forward(x, training: true)
        let kept = y.storage.filter { $0 != 0 }
        #expect(kept.allSatisfy { $0 == 2 })
        #expect(kept.count > 400 && kept.count < 600)
        let dx = drop.backward(Tensor(shape: [1000], repeating: 3))
        for (g, v) in zip(dx.storage, y.storage) { #expect(g == (v == 0 ? 0 : 6)) }
        #expect(drop.forward(x, training: false) == x)
    }

    @Test func flattenOrdersLikePyTorch() {
        // [C=2, N=1, H=1, W=2] → sample 0 is (c0w0, c0w1, c1w0, c1w1).
        let x = Tensor(shape: [2, 1, 1, 2], values: [1, 2, 3, 4])
        #expect(Flatten().forward(x, training: false).storage == [1, 2, 3, 4])
        let x2 = Tensor(shape: [2, 2, 1, 1], values: [1, 2, 3, 4])   // n0: c0=1,c1=3; n1: c0=2,c1=4
        #expect(Flatten().forward(x2, training: false).storage == [1, 3, 2, 4])
        // One channel: already in sample order (no copy), and back.
        let flatten = Flatten()
        let x1 = Tensor(shape: [1, 2, 1, 2], values: [1, 2, 3, 4])
        let y1 = flatten.forward(x1, training: true)
        #expect(y1.shape == [2, 2] && y1.storage == [1, 2, 3, 4])
        #expect(flatten.backward(y1) == x1)
    }

    @Test func kaimingInitialisationHasFanInVariance() {
        var rng = Xoshiro256(seed: 34)
        let conv = Conv2d(inputChannels: 16, outputChannels: 32, kernelSize: 3, rng: &rng)
        let w = conv.weight.value.storage.map(Double.init)
        let variance = w.map { $0 * $0 }.reduce(0, +) / Double(w.count)
        #expect(abs(variance - 2.0 / 144) / (2.0 / 144) < 0.1)
        #expect(conv.weight.matrixShape.rows == 32 && conv.weight.matrixShape.columns == 144)
    }
}
