import DSCore
import DSLayers
import DSTestSupport
import Testing

@Suite struct ModelRegistryTests {
    @Test("every registered model builds and runs forward and backward on a tiny batch",
          arguments: ModelRegistry.names)
    func buildsAndRuns(name: String) throws {
        var rng = Xoshiro256(seed: 1)
        let input = ModelInput(channels: 3, height: 16, width: 16, classes: 7)
        let options = ModelOptions(hidden: [16, 8], widthMultiplier: name == "resnet18" ? 0.25 : 0.5, dropout: 0.1,
                                   vit: VisionTransformerOptions(patchSize: 4, depth: 2, width: 16, heads: 2, mlpRatio: 2,
                                                                 dropout: 0.1, attentionDropout: 0.1))
        let model = try ModelRegistry.build(name, input: input, options: options, rng: &rng)
        let x = randomTensor([3, 2, 16, 16], seed: 2)
        let y = model.forward(x, training: true)
        #expect(y.shape == [2, 7])
        model.zeroGradients()
        _ = model.backward(Tensor(shape: [2, 7], repeating: 0.1))
        let weights = model.namedParameters().filter { $0.parameter.role == .weight }
        #expect(!weights.isEmpty)
        #expect(weights.allSatisfy { p in p.parameter.gradient.storage.contains { $0 != 0 } },
                "every weight receives a gradient")
        #expect(Set(model.namedParameters().map(\.name)).count == model.namedParameters().count,
                "parameter names are unique")
        #expect(model.forward(x, training: false).shape == [2, 7])
    }

    @Test func resnetsHaveTheirPublishedDepthAndSize() throws {
        var rng = Xoshiro256(seed: 1)
        let cifar = ModelInput(channels: 3, height: 32, width: 32, classes: 10)
        func weightLayers(_ name: String) throws -> (Int, Int) {
            let m = try ModelRegistry.build(name, input: cifar, rng: &rng)
            let ws = m.namedParameters().filter { $0.parameter.role == .weight }
            let shortcutFree = ws.filter { !$0.name.contains("shortcut") }
            return (shortcutFree.count, m.namedParameters().reduce(0) { $0 + $1.parameter.value.count })
        }
        #expect(try weightLayers("resnet20").0 == 20)
        #expect(try weightLayers("resnet32").0 == 32)
        #expect(try weightLayers("resnet18").0 == 18)
        #expect(try weightLayers("wrn-22-2").0 == 20)  // conv1 + 18 block convs + fc (shortcuts excluded)
        let r20 = try weightLayers("resnet20").1
        #expect(r20 > 270_000 && r20 < 280_000, "ResNet-20 has about 0.27M parameters, got \(r20)")
        let r18 = try weightLayers("resnet18").1
        #expect(r18 > 11_000_000 && r18 < 11_300_000, "ResNet-18 (CIFAR) has about 11.2M parameters, got \(r18)")
    }

    @Test func unknownNameListsTheValidNames() {
        var rng = Xoshiro256(seed: 1)
        #expect(throws: UnknownModelError.self) {
            try ModelRegistry.build("resnet-9000", input: ModelInput(channels: 1, height: 8, width: 8, classes: 2), rng: &rng)
        }
        let message = UnknownModelError(name: "x", validNames: ModelRegistry.names).description
        for name in ModelRegistry.names { #expect(message.contains(name)) }
    }

    @Test func sameSeedSameWeights() throws {
        var a = Xoshiro256(seed: 5), b = Xoshiro256(seed: 5)
        let input = ModelInput(channels: 1, height: 28, width: 28, classes: 10)
        let m1 = try ModelRegistry.build("lenet5", input: input, rng: &a)
        let m2 = try ModelRegistry.build("lenet5", input: input, rng: &b)
        #expect(zip(m1.namedParameters(), m2.namedParameters()).allSatisfy { $0.parameter.value == $1.parameter.value })
    }
}
