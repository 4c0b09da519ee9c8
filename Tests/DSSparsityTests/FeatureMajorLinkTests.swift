import DSCore
import DSLayers
import DSSparsity
import DSTestSupport
import Testing

/// Linear layers linked feature-major (`Sequential.linkFeatureMajor`) compute what the
/// batch-major ones do: the same outputs, input gradients and weight gradients, on the
/// dense kernel (GEMMs on mixed layouts) and on sparse kernels (the AVX-512 kernels,
/// which apply a taken-over ReLU as they store, and the Swift ones, which apply it after).
@Suite struct FeatureMajorLinkTests {
    func mlp(seed: UInt64, features: Int) -> (Sequential, [Linear]) {
        var rng = Xoshiro256(seed: seed)
        let layers = [Linear(inputFeatures: features, outputFeatures: 16, rng: &rng),
                      Linear(inputFeatures: 16, outputFeatures: 12, rng: &rng),
                      Linear(inputFeatures: 12, outputFeatures: 5, rng: &rng)]
        return (Sequential([Flatten(), layers[0], ReLU(), layers[1], ReLU(), ReLU(), layers[2]]), layers)
    }

    @Test(arguments: [(false, false), (true, true), (true, false)])
    func linkedLayersComputeWhatBatchMajorOnesDo(sparse: Bool, native: Bool) {
        for (channels, batch) in [(1, 7), (2, 33), (3, 1)] {
            let features = channels * 20
            let (plain, plainLayers) = mlp(seed: 4, features: features)
            let (linked, linkedLayers) = mlp(seed: 4, features: features)
            #expect(linked.linkFeatureMajor() == 2)
            #expect(linkedLayers.map(\.inputLayout) == [.batchMajor, .featureMajor, .featureMajor])
            #expect(linkedLayers.map(\.outputLayout) == [.featureMajor, .featureMajor, .batchMajor])
            // One ReLU between the first two: taken over by them; two between the last two: kept.
            #expect(linkedLayers.map(\.rectifiesOutput) == [true, false, false])
            #expect(linkedLayers.map(\.masksInputGradient) == [false, true, false])
            let relus = linked.layers.compactMap { $0.layer as? ReLU }
            #expect(relus.map(\.passesThrough) == [true, false, false])
            if sparse {
                var rng = Xoshiro256(seed: 9)
                for (a, b) in zip(plainLayers, linkedLayers).prefix(2) {
                    let (rows, columns) = a.weight.matrixShape
                    let mask = SparseMask(rows: rows, columns: columns,
                                          active: (0..<(rows * columns)).map { _ in rng.uniformDouble() < 0.3 })
                    for layer in [a, b] {
                        for i in 0..<mask.active.count where !mask.active[i] { layer.weight.value.storage[i] = 0 }
                        let kernel = SparseWeightKernel(weight: layer.weight, mask: mask)
                        kernel.usesNativeKernels = native && SparseProducts.nativeKernels
                        layer.kernel = kernel
                    }
                }
            }
            let x = randomTensor([channels, batch, 4, 5], seed: 11)
            let dy = randomTensor([batch, 5], seed: 12)
            var outputs: [[Float]] = [], inputGradients: [[Float]] = [], weightGradients: [[[Float]]] = []
            for (model, layers) in [(plain, plainLayers), (linked, linkedLayers)] {
                model.zeroGradients()
                let y = model.forward(x, training: true)
                #expect(y.shape == [batch, 5])
                outputs.append(y.storage)
                inputGradients.append(model.backward(dy).storage)
                weightGradients.append(layers.map { $0.weight.activePositions != nil ? $0.weight.activeGradient : $0.weight.gradient.storage }
                                       + layers.map { $0.bias!.gradient.storage })
            }
            let label = "channels \(channels) batch \(batch) sparse \(sparse) native \(native)"
            #expect(worstRelativeDifference(outputs[1], outputs[0]) < 1e-5, "output \(label)")
            #expect(worstRelativeDifference(inputGradients[1], inputGradients[0]) < 1e-5, "input gradient \(label)")
            for (g1, g0) in zip(weightGradients[1], weightGradients[0]) {
                #expect(worstRelativeDifference(g1, g0) < 1e-5, "parameter gradient \(label)")
            }
            // Evaluation runs the same layouts.
            #expect(worstRelativeDifference(linked.forward(x, training: false).storage, plain.forward(x, training: false).storage) < 1e-5)
            linked.linkFeatureMajor(false)
            #expect(linkedLayers.allSatisfy { $0.inputLayout == .batchMajor && $0.outputLayout == .batchMajor })
            #expect(linkedLayers.allSatisfy { !$0.rectifiesOutput && !$0.masksInputGradient })
            #expect(relus.allSatisfy { !$0.passesThrough })
        }
    }

    @Test func onlyRunsOfLinearAndReLUAfterAFlattenAreLinked() {
        var rng = Xoshiro256(seed: 1)
        func linear() -> Linear { Linear(inputFeatures: 8, outputFeatures: 8, rng: &rng) }
        // Dropout draws in element order, so it ends a run; without a Flatten the input
        // rank is unknown (a token sequence is rank 3), so nothing is linked.
        let a = linear(), b = linear(), c = linear()
        let withDropout = Sequential([Flatten(), a, ReLU(), b, Dropout(probability: 0.5, rng: &rng), c])
        #expect(withDropout.linkFeatureMajor() == 1)
        #expect(a.outputLayout == .featureMajor && b.inputLayout == .featureMajor)
        #expect(b.outputLayout == .batchMajor && c.inputLayout == .batchMajor)
        let d = linear(), e = linear()
        #expect(Sequential([d, ReLU(), e]).linkFeatureMajor() == 0)
        #expect(d.outputLayout == .batchMajor && e.inputLayout == .batchMajor)
    }
}
