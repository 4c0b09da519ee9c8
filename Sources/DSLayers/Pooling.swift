import DSCore

/// Max pooling over `[C, N, H, W]` with a square window, no padding.
public final class MaxPool2d: Layer {
    public let kernelSize: Int
    public let stride: Int
    private var argmax = [Int32]()   // per output: flat index into the input
    private var inputShape = [Int]()

    public init(kernelSize: Int, stride: Int? = nil) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4, "MaxPool2d expects [C, N, H, W], got \(x.shape)")
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let ho = (h - kernelSize) / stride + 1, wo = (w - kernelSize) / stride + 1
        precondition(ho > 0 && wo > 0, "MaxPool2d(\(kernelSize)) input \(x.shape) too small")
        var y = Tensor(shape: [x.shape[0], x.shape[1], ho, wo])
        var arg = [Int32](repeating: 0, count: y.count)
        x.storage.withUnsafeBufferPointer { px in
            for p in 0..<planes {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        var best = -Float.infinity, bestIndex = 0
                        for i in 0..<kernelSize {
                            for j in 0..<kernelSize {
                                let idx = (p * h + oh * stride + i) * w + ow * stride + j
                                if px[idx] > best { best = px[idx]; bestIndex = idx }
                            }
                        }
                        let o = (p * ho + oh) * wo + ow
                        y.storage[o] = best
                        arg[o] = Int32(bestIndex)
                    }
                }
            }
        }
        if training { argmax = arg; inputShape = x.shape }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == argmax.count, "MaxPool2d.backward without a matching forward")
        var dx = Tensor(shape: inputShape)
        for o in 0..<dy.count { dx.storage[Int(argmax[o])] += dy.storage[o] }
        return dx
    }
}

/// Average pooling over `[C, N, H, W]` with a square window, no padding.
public final class AvgPool2d: Layer {
    public let kernelSize: Int
    public let stride: Int
    private var inputShape = [Int]()

    public init(kernelSize: Int, stride: Int? = nil) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4, "AvgPool2d expects [C, N, H, W], got \(x.shape)")
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let ho = (h - kernelSize) / stride + 1, wo = (w - kernelSize) / stride + 1
        precondition(ho > 0 && wo > 0, "AvgPool2d(\(kernelSize)) input \(x.shape) too small")
        var y = Tensor(shape: [x.shape[0], x.shape[1], ho, wo])
        let inv = 1 / Float(kernelSize * kernelSize)
        for p in 0..<planes {
            for oh in 0..<ho {
                for ow in 0..<wo {
                    var s: Float = 0
                    for i in 0..<kernelSize {
                        for j in 0..<kernelSize {
                            s += x.storage[(p * h + oh * stride + i) * w + ow * stride + j]
                        }
                    }
                    y.storage[(p * ho + oh) * wo + ow] = s * inv
                }
            }
        }
        if training { inputShape = x.shape }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4, "AvgPool2d.backward without a training forward")
        let planes = inputShape[0] * inputShape[1], h = inputShape[2], w = inputShape[3]
        let ho = dy.shape[2], wo = dy.shape[3]
        let inv = 1 / Float(kernelSize * kernelSize)
        var dx = Tensor(shape: inputShape)
        for p in 0..<planes {
            for oh in 0..<ho {
                for ow in 0..<wo {
                    let g = dy.storage[(p * ho + oh) * wo + ow] * inv
                    for i in 0..<kernelSize {
                        for j in 0..<kernelSize {
                            dx.storage[(p * h + oh * stride + i) * w + ow * stride + j] += g
                        }
                    }
                }
            }
        }
        return dx
    }
}

/// Mean over the spatial dimensions: `[C, N, H, W]` → `[N, C]`.
public final class GlobalAvgPool: Layer {
    private var inputShape = [Int]()
    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4, "GlobalAvgPool expects [C, N, H, W], got \(x.shape)")
        let c = x.shape[0], n = x.shape[1], hw = x.shape[2] * x.shape[3]
        var y = Tensor(shape: [n, c])
        x.storage.withUnsafeBufferPointer { px in
            for ci in 0..<c {
                for b in 0..<n {
                    y.storage[b * c + ci] = Vector.sum(px.baseAddress! + (ci * n + b) * hw, count: hw) / Float(hw)
                }
            }
        }
        if training { inputShape = x.shape }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4, "GlobalAvgPool.backward without a training forward")
        let c = inputShape[0], n = inputShape[1], hw = inputShape[2] * inputShape[3]
        var dx = Tensor(shape: inputShape)
        dx.storage.withUnsafeMutableBufferPointer { pdx in
            for ci in 0..<c {
                for b in 0..<n {
                    let g = dy.storage[b * c + ci] / Float(hw)
                    (pdx.baseAddress! + (ci * n + b) * hw).update(repeating: g, count: hw)
                }
            }
        }
        return dx
    }
}

/// `[C, N, H, W]` → `[N, C·H·W]` (per-sample order c, h, w, as PyTorch flattens
/// NCHW); a rank-2 input passes through.
public final class Flatten: Layer {
    private var inputShape = [Int]()
    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        inputShape = x.shape
        guard x.rank == 4 else { return x }
        let c = x.shape[0], n = x.shape[1], hw = x.shape[2] * x.shape[3]
        guard c > 1 && n > 1 else { return x.reshaped([n, c * hw]) }   // one channel or image: the same order
        return x.reshaped([c, n, hw]).swappingOuterAxes().reshaped([n, c * hw])
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard inputShape.count == 4, dy.count > 0 else { return dy }   // empty: not needed upstream
        let c = inputShape[0], n = inputShape[1], hw = inputShape[2] * inputShape[3]
        guard c > 1 && n > 1 else { return dy.reshaped(inputShape) }
        return dy.reshaped([n, c, hw]).swappingOuterAxes().reshaped(inputShape)
    }
}
