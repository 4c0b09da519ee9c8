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

/// Parameters on sparse kernels: the optimizer steps `activeValues` with compact state,
/// and the dense tensors (value and state) read back exactly what a dense-path step of
/// the same weights gives, however reads, state changes and new active positions
/// interleave with the steps.
@Suite struct CompactStepTests {
    func pair(_ seed: UInt64) -> (dense: Parameter, sparse: Parameter, active: [Int32]) {
        var rng = Xoshiro256(seed: seed)
        let values = (0..<12).map { _ in rng.normal() }
        let active: [Int32] = [0, 3, 4, 7, 8, 11]
        let dense = Parameter(name: "w", role: .weight, value: Tensor(shape: [12], values: values.enumerated().map {
            active.contains(Int32($0.offset)) ? $0.element : 0 }))
        let sparse = Parameter(name: "w", role: .weight, value: dense.value)
        sparse.activePositions = active
        return (dense, sparse, active)
    }

    func gradients(_ step: Int, _ active: [Int32], dense: Parameter, sparse: Parameter) {
        var rng = Xoshiro256(seed: UInt64(100 + step))
        let g = (0..<12).map { i in active.contains(Int32(i)) ? rng.normal() : 0 }
        dense.gradient = Tensor(shape: [12], values: g)
        sparse.activeGradient = sparse.activePositions!.map { g[Int($0)] }
    }

    @Test(arguments: ["sgd", "adamw"])
    func compactStepsEqualDenseSteps(optimizer name: String) {
        let (dense, sparse, first) = pair(7)
        func make(_ p: Parameter) -> Optimizer {
            name == "sgd" ? SGD(parameters: [p], momentum: 0.9, nesterov: true, weightDecay: 0.01)
                : AdamW(parameters: [p], weightDecay: 0.01)
        }
        let a = make(dense), b = make(sparse)
        var active = first
        for step in 0..<9 {
            gradients(step, active, dense: dense, sparse: sparse)
            a.step(learningRate: 0.1)
            b.step(learningRate: 0.1)
            switch step {
            case 2:   // reading the dense state and values mid-training changes nothing
                #expect(b.state(b.stateNames[0], parameter: 0) == a.state(a.stateNames[0], parameter: 0))
                #expect(sparse.value == dense.value)
            case 4:   // a mask update: position 3 dropped, 5 grown (weight and state zeroed)
                active = [0, 4, 5, 7, 8, 11]
                for p in [dense, sparse] { p.value.storage[3] = 0; p.value.storage[5] = 0 }
                sparse.activePositions = active
                a.zeroState(parameter: 0, at: [3, 5])
                b.zeroState(parameter: 0, at: [3, 5])
            case 6:   // state written from outside (a checkpoint restore)
                let restored = a.state(a.stateNames[0], parameter: 0)
                a.setState(a.stateNames[0], parameter: 0, restored)
                b.setState(b.stateNames[0], parameter: 0, restored)
            default: break
            }
        }
        #expect(sparse.activeValues == active.map { dense.value.storage[Int($0)] })
        #expect(sparse.value == dense.value, "values")
        for s in a.stateNames {
            #expect(b.state(s, parameter: 0) == a.state(s, parameter: 0), "state \(s)")
        }
        // Inactive weights and their state stay exactly zero.
        for i in 0..<12 where !active.contains(Int32(i)) && i != 3 {
            #expect(sparse.value.storage[i] == 0)
            for s in b.stateNames { #expect(b.state(s, parameter: 0).storage[i] == 0) }
        }
    }

    @Test func valuesFollowTheirActivePositions() {
        let p = Parameter(name: "w", role: .weight, value: Tensor(shape: [4], values: [1, 2, 3, 4]))
        p.activePositions = [1, 3]
        #expect(p.activeValues == [2, 4])
        p.withMutableActiveValues { $0[0] = 20 }
        #expect(p.value.storage == [1, 20, 3, 4])   // written back when read
        p.value.storage[3] = 40                      // read again after a change
        #expect(p.activeValues == [20, 40])
        p.withMutableActiveValues { $0[1] = 41 }
        p.activePositions = [0, 1]                   // the old positions are written back first
        #expect(p.activeValues == [1, 20] && p.value.storage == [1, 20, 3, 41])
        p.activePositions = nil
        #expect(p.activeValues.isEmpty)
    }

    /// The same with enough active values for the gather and scatter to run on the
    /// threads, and an optimizer's compact state through a change of positions.
    @Test func manyActiveValuesFollowTheirPositions() {
        let n = 200_000
        let p = Parameter(name: "w", role: .weight, value: Tensor(shape: [n], values: (0..<n).map(Float.init)))
        let first = (0..<n).filter { $0 % 3 == 0 }.map(Int32.init), second = (0..<n).filter { $0 % 5 == 1 }.map(Int32.init)
        // Counts of the values that differ (a failure then prints two numbers, not 200,000).
        func differing(_ a: [Float], _ b: [Float]) -> Int { a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : -1 }
        Parallel.withThreads(2) {
            p.activePositions = first
            #expect(differing(p.activeValues, first.map(Float.init)) == 0)
            p.withMutableActiveValues { v in for e in v.indices { v[e] = -v[e] } }
            p.activePositions = second   // the old positions written back, the new ones read
            func written(_ i: Int) -> Float { i % 3 == 0 ? -Float(i) : Float(i) }
            let expectedActive: [Float] = second.map { written(Int($0)) }
            let expectedDense: [Float] = (0..<n).map(written)
            #expect(differing(p.activeValues, expectedActive) == 0)
            #expect(differing(p.value.storage, expectedDense) == 0)
            let sgd = SGD(parameters: [p], momentum: 0.9)
            p.activeGradient = [Float](repeating: 1, count: second.count)
            sgd.step(learningRate: 1)
            let momentum = sgd.state("momentum", parameter: 0).storage   // written back from the compact copy
            let expectedMomentum: [Float] = (0..<n).map { $0 % 5 == 1 ? 1 : 0 }
            #expect(differing(momentum, expectedMomentum) == 0)
        }
    }
}
