import DSCore
import DSLayers
import DSTraining
import Foundation
import Testing

@Suite struct OptimizerTests {
    func parameter(_ w: [Float], _ g: [Float]) -> Parameter {
        let p = Parameter(name: "w", role: .weight, value: Tensor(shape: [w.count], values: w))
        p.gradient = Tensor(shape: [g.count], values: g)
        return p
    }

    @Test func sgdWithMomentumAndWeightDecay() {
        let p = parameter([1, -2], [0.5, 0.25])
        let sgd = SGD(parameters: [p], momentum: 0.9, nesterov: false, weightDecay: 0.1)
        sgd.step(learningRate: 0.1)
        // g = ∇ + 0.1·w = (0.6, 0.05); b = g; w −= 0.1·b
        #expect(abs(p.value.storage[0] - 0.94) < 1e-6)
        #expect(abs(p.value.storage[1] - -2.005) < 1e-6)
        sgd.step(learningRate: 0.1)
        // g = (0.5 + 0.094, 0.25 − 0.2005) ; b = 0.9·b_prev + g
        let b0: Float = 0.9 * 0.6 + (0.5 + 0.094)
        #expect(abs(p.value.storage[0] - (0.94 - 0.1 * b0)) < 1e-6)
        #expect(abs(sgd.state("momentum", parameter: 0).storage[0] - b0) < 1e-6)
    }

    @Test func nesterovLooksAhead() {
        let p = parameter([1], [1])
        let sgd = SGD(parameters: [p], momentum: 0.5, nesterov: true)
        sgd.step(learningRate: 1)
        // b = 1; w −= (g + μ·b) = 1.5
        #expect(abs(p.value.storage[0] - -0.5) < 1e-6)
    }

    @Test func parametersThatDoNotDecayKeepTheirValue() {
        // Zero gradients: only weight decay could move a weight.
        for decays in [true, false] {
            let a = parameter([1, -2], [0, 0]), b = parameter([1, -2], [0, 0])
            a.decays = decays; b.decays = decays
            SGD(parameters: [a], momentum: 0, weightDecay: 0.5).step(learningRate: 0.1)
            AdamW(parameters: [b], weightDecay: 0.5).step(learningRate: 0.1)
            #expect(a.value.storage == (decays ? [0.95, -1.9] : [1, -2]))
            #expect(b.value.storage == (decays ? [0.95, -1.9] : [1, -2]))
        }
        #expect(!Parameter(name: "pos", role: .embedding, value: Tensor(shape: [2])).decays)
    }

    /// Global norm over a dense gradient (3, 4) and the active gradient (12) of a
    /// parameter on a sparse kernel: 13, so clipping to 1 scales both by 1/13.
    @Test func gradientClippingUsesTheSteppedGradients() {
        let dense = parameter([0, 0], [3, 4])
        let sparse = parameter([0, 0, 0], [100, 0, 100])   // masked-out values must not count
        sparse.activePositions = [1]
        sparse.activeGradient = [12]
        let sgd = SGD(parameters: [dense, sparse], momentum: 0)
        #expect(sgd.clipGradientNorm(maximum: 1) == 13)
        #expect(abs(dense.gradient.storage[0] - 3 / 13) < 1e-6 && abs(dense.gradient.storage[1] - 4 / 13) < 1e-6)
        #expect(abs(sparse.activeGradient[0] - 12 / 13) < 1e-6)
        #expect(sgd.clipGradientNorm(maximum: 2) < 1.0001, "below the maximum nothing changes")
        #expect(abs(sparse.activeGradient[0] - 12 / 13) < 1e-6)
    }

    @Test func adamWFirstStepIsSignedLearningRate() {
        let p = parameter([1, 1], [0.3, -2])
        let adam = AdamW(parameters: [p], weightDecay: 0.1)
        adam.step(learningRate: 0.01)
        // Bias-corrected m̂/sqrt(v̂) = sign(g) on step 1; decay w·(1 − lr·λ) first.
        #expect(abs(p.value.storage[0] - (1 * (1 - 0.001) - 0.01)) < 1e-5)
        #expect(abs(p.value.storage[1] - (1 * (1 - 0.001) + 0.01)) < 1e-5)
        #expect(adam.stepCount == 1)
    }
}

@Suite struct LearningRateScheduleTests {
    @Test func stepAndMultistepChangeAtEpochBoundaries() {
        let step = LearningRateSchedule(base: 0.1, decay: .step(stepSize: 2, gamma: 0.5), totalEpochs: 6, stepsPerEpoch: 10)
        #expect(step.learningRate(atStep: 19) == 0.1)
        #expect(abs(step.learningRate(atStep: 20) - 0.05) < 1e-12)
        #expect(abs(step.learningRate(atStep: 45) - 0.025) < 1e-12)
        let multi = LearningRateSchedule(base: 0.1, decay: .multistep(milestones: [1, 3], gamma: 0.2),
                                         totalEpochs: 5, stepsPerEpoch: 4)
        #expect(multi.learningRate(atStep: 3) == 0.1)
        #expect(abs(multi.learningRate(atStep: 4) - 0.02) < 1e-12)
        #expect(abs(multi.learningRate(atStep: 12) - 0.004) < 1e-12)
    }

    @Test func cosineAnnealsAfterWarmup() {
        let s = LearningRateSchedule(base: 1, decay: .cosine(minimum: 0), warmupEpochs: 1, warmupStartFactor: 0,
                                     totalEpochs: 5, stepsPerEpoch: 10)
        #expect(s.learningRate(atStep: 0) == 0)
        #expect(abs(s.learningRate(atStep: 5) - 0.5) < 1e-12)
        #expect(abs(s.learningRate(atStep: 10) - 1) < 1e-12)
        #expect(abs(s.learningRate(atStep: 30) - 0.5) < 1e-9)   // half-way through the 4 cosine epochs
        #expect(s.learningRate(atStep: 50) < 1e-12)
    }
}
