import DSCore

/// ResNet basic block (He et al. 2016): `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`,
/// 3×3 convolutions; the shortcut is the identity, or a 1×1 strided convolution with
/// batch norm when the stride or channel count changes ("projection shortcut").
public final class BasicBlock: Layer {
    /// `bn1` applies the block's inner ReLU itself (`fusedReLU`); `bn2` adds the
    /// shortcut and applies the outer ReLU in the same pass.
    public let conv1: Conv2d, bn1: BatchNorm
    public let conv2: Conv2d, bn2: BatchNorm
    public let projection: (conv: Conv2d, bn: BatchNorm)?
    private var output = Tensor(shape: [0])

    public init(inputChannels: Int, outputChannels: Int, stride: Int, rng: inout Xoshiro256) {
        conv1 = Conv2d(inputChannels: inputChannels, outputChannels: outputChannels,
                       kernelSize: 3, stride: stride, padding: 1, rng: &rng)
        bn1 = BatchNorm(features: outputChannels, fusedReLU: true)
        conv2 = Conv2d(inputChannels: outputChannels, outputChannels: outputChannels,
                       kernelSize: 3, stride: 1, padding: 1, rng: &rng)
        bn2 = BatchNorm(features: outputChannels)
        if stride != 1 || inputChannels != outputChannels {
            projection = (Conv2d(inputChannels: inputChannels, outputChannels: outputChannels,
                                 kernelSize: 1, stride: stride, rng: &rng),
                          BatchNorm(features: outputChannels))
        } else {
            projection = nil
        }
    }

    public var children: [(name: String, layer: Layer)] {
        var c: [(name: String, layer: Layer)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if let projection {
            c += [("shortcut.0", projection.conv), ("shortcut.1", projection.bn)]
        }
        return c
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var h = conv1.forward(x, training: training)
        h = bn1.forward(h, training: training)
        h = conv2.forward(h, training: training)
        let shortcut = projection.map { $0.bn.forward($0.conv.forward(x, training: training), training: training) } ?? x
        let y = bn2.forward(h, addingAndRectifying: shortcut, training: training)
        if training { output = y }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let g = ReLU.gradient(dy, output: output)
        var dx = conv1.backward(bn1.backward(conv2.backward(bn2.backward(g))))
        if let projection {
            dx.add(projection.conv.backward(projection.bn.backward(g)))
        } else {
            dx.add(g)
        }
        return dx
    }
}

/// Pre-activation block of Wide ResNets (Zagoruyko & Komodakis 2016):
/// `conv2(dropout(relu(bn2(conv1(relu(bn1(x))))))) + shortcut`, where the shortcut is
/// `x`, or a 1×1 strided convolution of `relu(bn1(x))` when the shape changes.
public final class PreActivationBlock: Layer {
    /// `bn1` and `bn2` apply their ReLU themselves (`fusedReLU`).
    public let bn1: BatchNorm, conv1: Conv2d
    public let bn2: BatchNorm, conv2: Conv2d
    public let dropout: Dropout?
    public let projection: Conv2d?

    public init(inputChannels: Int, outputChannels: Int, stride: Int, dropout p: Float,
                rng: inout Xoshiro256) {
        bn1 = BatchNorm(features: inputChannels, fusedReLU: true)
        conv1 = Conv2d(inputChannels: inputChannels, outputChannels: outputChannels,
                       kernelSize: 3, stride: stride, padding: 1, rng: &rng)
        bn2 = BatchNorm(features: outputChannels, fusedReLU: true)
        conv2 = Conv2d(inputChannels: outputChannels, outputChannels: outputChannels,
                       kernelSize: 3, stride: 1, padding: 1, rng: &rng)
        dropout = p > 0 ? Dropout(probability: p, rng: &rng) : nil
        projection = (stride != 1 || inputChannels != outputChannels)
            ? Conv2d(inputChannels: inputChannels, outputChannels: outputChannels,
                     kernelSize: 1, stride: stride, rng: &rng)
            : nil
    }

    public var children: [(name: String, layer: Layer)] {
        var c: [(name: String, layer: Layer)] = [("bn1", bn1), ("conv1", conv1), ("bn2", bn2), ("conv2", conv2)]
        if let dropout { c.append(("dropout", dropout)) }
        if let projection { c.append(("shortcut", projection)) }
        return c
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let a = bn1.forward(x, training: training)
        var h = bn2.forward(conv1.forward(a, training: training), training: training)
        if let dropout { h = dropout.forward(h, training: training) }
        h = conv2.forward(h, training: training)
        h.add(projection?.forward(a, training: training) ?? x)
        return h
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var g = conv2.backward(dy)
        if let dropout { g = dropout.backward(g) }
        var da = conv1.backward(bn2.backward(g))
        if let projection {
            da.add(projection.backward(dy))
            return bn1.backward(da)
        }
        var dx = bn1.backward(da)
        dx.add(dy)
        return dx
    }
}
