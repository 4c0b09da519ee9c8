import DSCore

/// Layers applied in order; backward runs them in reverse.
public final class Sequential: Layer {
    public private(set) var layers: [(name: String, layer: Layer)]

    /// Layers named by their position (`0`, `1`, ...).
    public convenience init(_ layers: [Layer]) {
        self.init(named: layers.enumerated().map { (String($0.offset), $0.element) })
    }

    /// Layers with explicit names (used in parameter paths).
    public init(named layers: [(String, Layer)]) {
        self.layers = layers.map { (name: $0.0, layer: $0.1) }
    }

    public var children: [(name: String, layer: Layer)] { layers }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var h = x
        for entry in layers { h = entry.layer.forward(h, training: training) }
        return h
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var g = dy
        for entry in layers.reversed() { g = entry.layer.backward(g) }
        return g
    }
}
