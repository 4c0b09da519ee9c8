import DSCore

/// What a parameter is, which decides how sparsity and weight decay treat it.
public enum ParameterRole: String, Sendable {
    /// A Linear or Conv2d weight: prunable, addressable as `[nOut, fanIn]`.
    case weight
    /// A bias vector (always dense).
    case bias
    /// A normalisation scale or shift (always dense).
    case normalization
    /// A learned embedding such as a transformer's class token or position embedding:
    /// dense and never weight-decayed.
    case embedding
}

/// A trainable tensor and the gradient accumulated into it by `backward`.
public final class Parameter {
    /// Local name within its layer (`weight`, `bias`, ...).
    public let name: String
    public let role: ParameterRole
    /// The values.
    public var value: Tensor
    /// Same shape as `value`; `backward` adds into it, `zeroGradients` clears it.
    public var gradient: Tensor
    /// For `.weight`: the `[nOut, fanIn]` matrix view of `value` (conv: fanIn =
    /// inChannels·kh·kw). Row `j` is output neuron `j`'s incoming weights.
    public let matrixShape: (rows: Int, columns: Int)
    /// Set by a sparse weight kernel: the flat positions of the active weights,
    /// ascending. Optimizers then step only these, with `activeGradient` as their
    /// gradient, and every other weight (and its optimizer state) stays untouched.
    public var activePositions: [Int32]?
    /// The gradient at `activePositions`, in their order (sparse kernels add into it).
    public var activeGradient: [Float] = []
    /// True when a sparse kernel also wrote the dense `gradient` in the last backward
    /// (the steps whose mask update reads it); `zeroGradients` then clears it.
    public var holdsDenseGradient = false
    /// Whether the optimizer's weight decay applies (embeddings: never; biases and
    /// norms: as `optimizer.decay_norms_and_biases` says).
    public var decays: Bool

    public init(name: String, role: ParameterRole, value: Tensor,
                matrixShape: (rows: Int, columns: Int)? = nil) {
        self.name = name
        self.role = role
        self.value = value
        self.gradient = Tensor(shape: value.shape)
        self.matrixShape = matrixShape ?? (1, value.count)
        decays = role != .embedding
        precondition(self.matrixShape.rows * self.matrixShape.columns == value.count,
                     "Parameter \(name): matrix view \(self.matrixShape) does not cover \(value.shape)")
    }
}

extension Parameter {
    /// Clears what the next backward adds into: O(active weights) on the sparse path.
    public func zeroGradient() {
        guard activePositions != nil else { gradient.zero(); return }
        activeGradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        if holdsDenseGradient { gradient.zero(); holdsDenseGradient = false }
    }
}

/// A non-trainable tensor that belongs to a layer's state (BatchNorm running stats).
public final class Buffer {
    public let name: String
    public var value: Tensor
    public init(name: String, value: Tensor) { self.name = name; self.value = value }
}

/// A layer: forward and backward written by hand (llm.c style).
///
/// `forward` caches what `backward` needs; `backward` takes `dL/dy`, *adds* the
/// parameter gradients into `Parameter.gradient` and returns `dL/dx`. A separate
/// `zeroGradients` call clears them.
public protocol Layer: AnyObject {
    /// Computes the output; `training` selects batch statistics, dropout and caching.
    func forward(_ input: Tensor, training: Bool) -> Tensor
    /// Back-propagates `gradOutput` (shape of the last forward's output).
    func backward(_ gradOutput: Tensor) -> Tensor
    /// Parameters owned by this layer itself (not its children).
    var ownParameters: [Parameter] { get }
    /// Buffers owned by this layer itself.
    var ownBuffers: [Buffer] { get }
    /// Named child layers, in execution order.
    var children: [(name: String, layer: Layer)] { get }
}

extension Layer {
    public var ownParameters: [Parameter] { [] }
    public var ownBuffers: [Buffer] { [] }
    public var children: [(name: String, layer: Layer)] { [] }

    /// Every parameter in the tree with its dotted path (`layer1.0.conv1.weight`).
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var result = ownParameters.map { (name: prefix + $0.name, parameter: $0) }
        for child in children {
            result += child.layer.namedParameters(prefix: prefix + child.name + ".")
        }
        return result
    }

    /// Every buffer in the tree with its dotted path.
    public func namedBuffers(prefix: String = "") -> [(name: String, buffer: Buffer)] {
        var result = ownBuffers.map { (name: prefix + $0.name, buffer: $0) }
        for child in children {
            result += child.layer.namedBuffers(prefix: prefix + child.name + ".")
        }
        return result
    }

    /// Every layer in the tree (this one first) with its dotted path.
    public func namedLayers(prefix: String = "") -> [(name: String, layer: Layer)] {
        var result: [(name: String, layer: Layer)] = [(prefix, self)]
        for child in children {
            let path = prefix.isEmpty ? child.name : prefix + "." + child.name
            result += child.layer.namedLayers(prefix: path)
        }
        return result
    }

    /// Sets every parameter gradient in the tree to zero (for parameters stepped at
    /// their active positions only, the active gradient, and the dense one if written).
    public func zeroGradients() {
        for (_, p) in namedParameters() { p.zeroGradient() }
    }
}
