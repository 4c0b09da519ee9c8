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
    private var storedValue: Tensor
    /// The values. On a sparse kernel the live copy of the active weights is
    /// `activeValues` (the optimizer steps it, the kernels read it); reading `value`
    /// first writes them back into the dense tensor (O(active weights), and only after
    /// they changed), and changing `value` reads them again from it.
    public var value: Tensor {
        get { writeBackActiveValues(); return storedValue }
        set { storedValue = newValue; readActiveValues() }
        _modify {
            writeBackActiveValues()
            yield &storedValue
            readActiveValues()
        }
    }
    /// Same shape as `value`; `backward` adds into it, `zeroGradients` clears it.
    public var gradient: Tensor
    /// For `.weight`: the `[nOut, fanIn]` matrix view of `value` (conv: fanIn =
    /// inChannels·kh·kw). Row `j` is output neuron `j`'s incoming weights.
    public let matrixShape: (rows: Int, columns: Int)
    /// Set by a sparse weight kernel: the flat positions of the active weights,
    /// ascending. Optimizers then step only these, with `activeGradient` as their
    /// gradient, and every other weight (and its optimizer state) stays untouched.
    public var activePositions: [Int32]? {
        willSet { writeBackActiveValues() }   // at the old positions
        didSet { readActiveValues(); patternGeneration &+= 1 }
    }
    /// The values at `activePositions`, in their order: the weights a sparse kernel
    /// trains (empty without active positions).
    public private(set) var activeValues: [Float] = []
    /// Changes whenever `activePositions` is set (optimizers re-read their compact state).
    public private(set) var patternGeneration = 0
    /// Whether `activeValues` changed since they were last written back into `value`.
    private var activeValuesChanged = false
    /// The gradient at `activePositions`, in their order (sparse kernels add into it).
    public var activeGradient: [Float] = []
    /// True when the dense `gradient` may hold values on the sparse path: a sparse
    /// kernel wrote it in the last backward (the steps whose mask update reads it), or
    /// a kernel was attached since; `zeroGradient` then clears it.
    public var holdsDenseGradient = false
    /// Whether the optimizer's weight decay applies (embeddings: never; biases and
    /// norms: as `optimizer.decay_norms_and_biases` says).
    public var decays: Bool

    public init(name: String, role: ParameterRole, value: Tensor,
                matrixShape: (rows: Int, columns: Int)? = nil) {
        self.name = name
        self.role = role
        storedValue = value
        self.gradient = Tensor(shape: value.shape)
        self.matrixShape = matrixShape ?? (1, value.count)
        decays = role != .embedding
        precondition(self.matrixShape.rows * self.matrixShape.columns == value.count,
                     "Parameter \(name): matrix view \(self.matrixShape) does not cover \(value.shape)")
    }
}

extension Parameter {
    /// Runs `body` on `activeValues` for writing (an optimizer step); `value` is brought
    /// up to date the next time it is read.
    public func withMutableActiveValues<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        activeValuesChanged = true
        return try activeValues.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Scatters changed active values into the dense tensor.
    private func writeBackActiveValues() {
        guard activeValuesChanged, let positions = activePositions else { return }
        activeValuesChanged = false
        storedValue.storage.withUnsafeMutableBufferPointer { w in
            positions.withUnsafeBufferPointer { p in
                activeValues.withUnsafeBufferPointer { v in
                    guard let v = v.baseAddress else { return }
                    Vector.scatter(v, at: p, into: w.baseAddress!)
                }
            }
        }
    }

    /// Gathers the active values from the dense tensor.
    private func readActiveValues() {
        activeValuesChanged = false
        guard let positions = activePositions else {
            if !activeValues.isEmpty { activeValues = [] }
            return
        }
        var values = [Float](repeating: 0, count: positions.count)
        storedValue.storage.withUnsafeBufferPointer { w in
            positions.withUnsafeBufferPointer { p in
                values.withUnsafeMutableBufferPointer { v in
                    guard let v = v.baseAddress else { return }
                    Vector.gather(w.baseAddress!, at: p, into: v)
                }
            }
        }
        activeValues = values
    }

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
