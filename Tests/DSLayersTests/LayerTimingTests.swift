import DSCore
import DSLayers
import Testing

/// A profiler's timing records one entry per pass and changes nothing the layer computes.
@Suite struct LayerTimingTests {
    @Test func timedPassesMatchUntimedOnesAndAreRecorded() {
        var rng = Xoshiro256(seed: 3)
        let conv = Conv2d(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, rng: &rng)
        let linear = Linear(inputFeatures: 4, outputFeatures: 2, rng: &rng)
        var x = Tensor(shape: [2, 2, 5, 5])
        for i in 0..<x.count { x.storage[i] = rng.normal() }
        var v = Tensor(shape: [3, 4])
        for i in 0..<v.count { v.storage[i] = rng.normal() }
        for layer in [conv, linear] as [TimedLayer & WeightLayer] {
            let input = layer is Conv2d ? x : v
            let y = layer.forward(input, training: true)
            let dx = layer.backward(y)
            let timing = LayerTiming()
            if let c = layer as? Conv2d { c.timing = timing }
            if let l = layer as? Linear { l.timing = timing }
            #expect(layer.forward(input, training: true).storage == y.storage)
            #expect(layer.backward(y).storage == dx.storage)
            #expect(timing.forward.count == 1 && timing.backward.count == 1)
            #expect(timing.forward.allSatisfy { $0 >= 0 } && timing.backward.allSatisfy { $0 >= 0 })
        }
    }
}
