import DSCore
import Dispatch

/// Wall time one layer spends in its forward and backward passes, collected while a
/// profiler has set it on the layer (`Conv2d.timing`, `Linear.timing`); layers without
/// one pay a nil check. Per instance: nothing is shared between models.
public final class LayerTiming {
    /// Seconds of each forward pass, and of each backward pass, in order.
    public private(set) var forward: [Double] = [], backward: [Double] = []

    public init() {}

    func timeForward<T>(_ body: () -> T) -> T { Self.time(body) { forward.append($0) } }
    func timeBackward<T>(_ body: () -> T) -> T { Self.time(body) { backward.append($0) } }

    private static func time<T>(_ body: () -> T, record: (Double) -> Void) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        record(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        return result
    }
}

/// A layer whose passes a profiler can time (Linear, Conv2d): `forward` and `backward`
/// run `untimedForward` and `untimedBackward`, timed when `timing` is set.
public protocol TimedLayer: Layer {
    var timing: LayerTiming? { get }
    func untimedForward(_ x: Tensor, training: Bool) -> Tensor
    func untimedBackward(_ dy: Tensor) -> Tensor
}

extension TimedLayer {
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard let timing else { return untimedForward(x, training: training) }
        return timing.timeForward { untimedForward(x, training: training) }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let timing else { return untimedBackward(dy) }
        return timing.timeBackward { untimedBackward(dy) }
    }
}
