import DSCore
import DSLayers
import DSTestSupport
import Foundation
import Testing

/// Finite-difference checks and hand-worked values for the transformer layers.
@Suite struct TransformerTests {
    func expectPasses(_ layer: Layer, _ input: Tensor, _ check: GradientCheck = GradientCheck(),
                      sourceLocation: SourceLocation = #_sourceLocation) {
        let bad = check.mismatches(layer, input: input)
        #expect(bad.isEmpty, "\(type(of: layer)): \(bad.prefix(5))", sourceLocation: sourceLocation)
    }

    /// Runs `inner` with a fixed attention-dropout generator on every forward, so the
    /// finite differences see the same dropout mask as the analytic gradient.
    final class FixedDropout: Layer {
        let inner: MultiHeadAttention
        let start: Xoshiro256
        init(_ inner: MultiHeadAttention) { self.inner = inner; start = inner.rng }
        var children: [(name: String, layer: Layer)] { [("attn", inner)] }
        func forward(_ x: Tensor, training: Bool) -> Tensor { inner.rng = start; return inner.forward(x, training: training) }
        func backward(_ dy: Tensor) -> Tensor { inner.backward(dy) }
    }

    @Test func linearFoldsLeadingDimensions() {
        var rng = Xoshiro256(seed: 1)
        let linear = Linear(inputFeatures: 5, outputFeatures: 4, rng: &rng)
        expectPasses(linear, randomTensor([2, 3, 5], seed: 2))
        let x = randomTensor([2, 3, 5], seed: 3)
        let y = linear.forward(x, training: false)
        #expect(y.shape == [2, 3, 4])
        #expect(y.storage == linear.forward(x.reshaped([6, 5]), training: false).storage)
    }

    @Test func layerNorm() {
        let norm = LayerNorm(features: 6)
        for i in 0..<6 { norm.scale.value.storage[i] = 0.5 + Float(i) * 0.2; norm.shift.value.storage[i] = Float(i) * 0.1 - 0.2 }
        expectPasses(norm, randomTensor([2, 3, 6], seed: 4))
        // One row by hand: x = [1, 2, 3, 4], μ = 2.5, σ² = 1.25.
        let plain = LayerNorm(features: 4, epsilon: 0)
        let y = plain.forward(Tensor(shape: [1, 4], values: [1, 2, 3, 4]), training: false)
        let s = Float(1.25).squareRoot()
        for (a, b) in zip(y.storage, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]) { #expect(abs(a - b) < 1e-6) }
    }

    @Test(arguments: [false, true])
    func gelu(approximate: Bool) {
        expectPasses(GELU(approximate: approximate), randomTensor([4, 7], seed: 5))
        // GELU(1) = Φ(1) = 0.841345 (exact); tanh form 0.841192.
        let y = GELU(approximate: approximate).forward(Tensor(shape: [1], values: [1]), training: false)
        #expect(abs(y.storage[0] - (approximate ? 0.841192 : 0.841345)) < 1e-5)
    }

    @Test func attention() {
        var rng = Xoshiro256(seed: 6)
        expectPasses(MultiHeadAttention(width: 8, heads: 2, rng: &rng), randomTensor([2, 5, 8], seed: 7))
        expectPasses(FixedDropout(MultiHeadAttention(width: 8, heads: 4, attentionDropout: 0.3, rng: &rng)),
                     randomTensor([2, 4, 8], seed: 8))
    }

    /// One head, two tokens, identity projections: the output is the softmax-weighted
    /// mix of the two inputs, computed here by hand.
    @Test func attentionByHand() {
        var rng = Xoshiro256(seed: 9)
        let attention = MultiHeadAttention(width: 2, heads: 1, rng: &rng)
        for linear in [attention.q, attention.k, attention.v, attention.out] {
            linear.weight.value.storage = [1, 0, 0, 1]
            linear.bias!.value.zero()
        }
        let x: [Float] = [1, 0, 0, 2]   // tokens (1, 0) and (0, 2)
        let y = attention.forward(Tensor(shape: [1, 2, 2], values: x), training: false)
        // Scores x·xᵀ/√2: [[1, 0], [0, 4]] / √2, softmax per row.
        let r = Float(2).squareRoot()
        let a0 = [expf(1 / r), 1].map { $0 / (expf(1 / r) + 1) }
        let a1 = [1, expf(4 / r)].map { $0 / (1 + expf(4 / r)) }
        let expected = [a0[0] * 1, a0[1] * 2, a1[0] * 1, a1[1] * 2]
        for (a, b) in zip(y.storage, expected) { #expect(abs(a - b) < 1e-5) }
    }

    @Test func tokensAndEmbeddings() {
        var rng = Xoshiro256(seed: 10)
        expectPasses(PatchTokens(patchSize: 2), randomTensor([2, 3, 4, 6], seed: 11))
        expectPasses(ClassTokenAndPosition(tokens: 3, width: 4, rng: &rng), randomTensor([2, 3, 4], seed: 12))
        expectPasses(ClassTokenPool(), randomTensor([2, 3, 4], seed: 13))
        // Patch order: 1 channel, 4×4 image, 2×2 patches → 4 tokens of 4 values.
        let image = Tensor(shape: [1, 1, 4, 4], values: (0..<16).map(Float.init))
        let tokens = PatchTokens(patchSize: 2).forward(image, training: false)
        #expect(tokens.shape == [1, 4, 4])
        #expect(tokens.storage == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
        let embed = ClassTokenAndPosition(tokens: 2, width: 1, rng: &rng)
        #expect(embed.classToken.role == .embedding && !embed.classToken.decays && !embed.position.decays)
    }

    @Test(arguments: [false, true])
    func transformerBlock(dropout: Bool) {
        var rng = Xoshiro256(seed: 14)
        let block = TransformerBlock(width: 8, heads: 2, mlpRatio: 1.5, rng: &rng)
        expectPasses(block, randomTensor([2, 3, 8], seed: 15))
        #expect(block.namedParameters().map(\.name).contains("attn.q.weight"))
        #expect(block.namedParameters().map(\.name).contains("mlp.fc1.weight"))
        if dropout {
            // With dropout the block is random in training and deterministic in evaluation.
            let dropping = TransformerBlock(width: 8, heads: 2, mlpRatio: 2, dropout: 0.5, attentionDropout: 0.5, rng: &rng)
            let x = randomTensor([2, 3, 8], seed: 16)
            #expect(dropping.forward(x, training: false).storage == dropping.forward(x, training: false).storage)
            #expect(dropping.forward(x, training: true).storage != dropping.forward(x, training: true).storage)
        }
    }

    @Test func wholeVisionTransformer() throws {
        var rng = Xoshiro256(seed: 17)
        let options = ModelOptions(vit: VisionTransformerOptions(patchSize: 2, depth: 2, width: 8, heads: 2, mlpRatio: 2))
        let model = try ModelRegistry.build("vit", input: ModelInput(channels: 1, height: 4, width: 4, classes: 3),
                                            options: options, rng: &rng)
        // The registry turns off the first layer's input gradient; check the rest.
        (model.namedLayers().first { $0.name == "patch_embed" }!.layer as! Linear).computesInputGradient = true
        // The class-token row is cls + pos alone, whose N(0, 0.02²) start makes its
        // LayerNorm divide by σ ≈ 0.03, too sharp for differences of step 0.01; check
        // at embeddings of unit scale.
        let embed = model.namedLayers().first { $0.name == "embed" }!.layer as! ClassTokenAndPosition
        for p in [embed.classToken, embed.position] { p.value = randomTensor(p.value.shape, seed: 19) }
        expectPasses(model, randomTensor([1, 2, 4, 4], seed: 18), GradientCheck(samples: 24))
        let names = model.namedParameters().filter { $0.parameter.role == .weight }.map(\.name)
        #expect(names.first == "patch_embed.weight" && names.last == "head.weight")
        #expect(names.contains("blocks.1.attn.out.weight"))
        #expect(throws: ModelInputError.self) {
            _ = try ModelRegistry.build("vit", input: ModelInput(channels: 1, height: 5, width: 5, classes: 3),
                                        options: options, rng: &rng)
        }
    }
}
