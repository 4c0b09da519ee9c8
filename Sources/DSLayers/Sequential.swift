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

extension Sequential {
    /// Links runs of Linear layers separated only by ReLUs (`Flatten, Linear, ReLU,
    /// Linear, ...`) feature-major: each such Linear hands the next one `[features, N]`
    /// instead of `[N, features]`, and the gradients flow back the same way. ReLU is
    /// elementwise, so it does not care. A run starts after a Flatten (whose output is
    /// rank 2); the first Linear still reads batch-major input and the last one still
    /// writes batch-major output. Dropout breaks a run (its random draws follow the
    /// element order). Where exactly one ReLU sits between two linked Linear layers, the
    /// two take it over (`Linear.rectifiesOutput`, `masksInputGradient`; the ReLU passes
    /// through). With `linked: false`, every Linear is back to batch-major and every
    /// ReLU its own. Returns the number of links made.
    @discardableResult
    public func linkFeatureMajor(_ linked: Bool = true) -> Int {
        var links = 0
        var previous: Linear?   // the last Linear of a run still open
        var between: [ReLU] = []   // the ReLUs since it
        var afterFlatten = false
        for (_, layer) in layers {
            if let linear = layer as? Linear {
                linear.inputLayout = .batchMajor
                linear.outputLayout = .batchMajor
                linear.rectifiesOutput = false
                linear.masksInputGradient = false
                if linked, let previous {
                    previous.outputLayout = .featureMajor
                    linear.inputLayout = .featureMajor
                    links += 1
                    if between.count == 1 {
                        previous.rectifiesOutput = true
                        between[0].passesThrough = true
                        linear.masksInputGradient = true
                    }
                }
                previous = afterFlatten || linear.inputLayout == .featureMajor ? linear : nil
                between = []
                afterFlatten = false
            } else if let relu = layer as? ReLU {
                relu.passesThrough = false
                between.append(relu)
                afterFlatten = false
            } else {
                previous = nil
                between = []
                afterFlatten = layer is Flatten
            }
        }
        return links
    }
}

