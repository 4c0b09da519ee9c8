import DSCore
import DSLayers

/// An optimizer updates parameters from their accumulated gradients.
///
/// State is kept per parameter, in the order of `parameters`, and is public so the
/// sparsity code can zero the state of inactive or newly grown weights and
/// checkpoints can save it. Parameters with `activePositions` (sparse weight kernels)
/// are stepped at those positions only, from `activeGradient`, in O(active weights);
/// the others in full.
public protocol Optimizer: AnyObject {
    /// The parameters being optimised, in a fixed order.
    var parameters: [Parameter] { get }
    /// Applies one step with learning rate `learningRate`.
    func step(learningRate: Float)
    /// Per-parameter state tensors (e.g. momentum), each shaped like its parameter.
    var stateNames: [String] { get }
    /// The state tensor `name` of parameter `index`.
    func state(_ name: String, parameter index: Int) -> Tensor
    /// Replaces the state tensor `name` of parameter `index`.
    func setState(_ name: String, parameter index: Int, _ value: Tensor)
    /// Zeroes every state tensor of parameter `index` at the flat `positions` (weights
    /// that were dropped or grown by a mask update).
    func zeroState(parameter index: Int, at positions: [Int])
}

/// SGD with momentum, optional Nesterov and L2 weight decay (PyTorch semantics; decay
/// only on parameters with `decays`):
/// `g ← ∇ + λw`, `b ← μb + g`, `w ← w − η·(g + μb)` (Nesterov) or `w − η·b`.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var momentum: Float
    public var nesterov: Bool
    public var weightDecay: Float
    private var velocity: [Tensor]

    public init(parameters: [Parameter], momentum: Float = 0.9, nesterov: Bool = false,
                weightDecay: Float = 0) {
        precondition(!nesterov || momentum > 0, "Nesterov momentum needs momentum > 0")
        self.parameters = parameters
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        velocity = parameters.map { Tensor(shape: $0.value.shape) }
    }

    public var stateNames: [String] { ["momentum"] }
    public func state(_ name: String, parameter index: Int) -> Tensor { velocity[index] }
    public func setState(_ name: String, parameter index: Int, _ value: Tensor) {
        precondition(value.shape == velocity[index].shape, "SGD state shape mismatch for parameter \(index)")
        velocity[index] = value
    }

    public func zeroState(parameter index: Int, at positions: [Int]) {
        for i in positions { velocity[index].storage[i] = 0 }
    }

    public func step(learningRate lr: Float) {
        let mu = momentum, nesterov = nesterov
        for (i, p) in parameters.enumerated() {
            let wd = p.decays ? weightDecay : 0
            p.value.storage.withUnsafeMutableBufferPointer { w in
                velocity[i].storage.withUnsafeMutableBufferPointer { b in
                    let w = w.baseAddress!, b = b.baseAddress!
                    // One rule type per variant, so the element loop carries no branch.
                    if mu == 0 {
                        p.step(PlainSGD(w: w, lr: lr, wd: wd))
                    } else if nesterov {
                        p.step(NesterovSGD(w: w, b: b, lr: lr, wd: wd, mu: mu))
                    } else {
                        p.step(MomentumSGD(w: w, b: b, lr: lr, wd: wd, mu: mu))
                    }
                }
            }
        }
    }
}

/// SGD's per-weight updates (see `SGD`), as `SteppingRule`s.
struct PlainSGD: SteppingRule {
    let w: UnsafeMutablePointer<Float>, lr: Float, wd: Float
    @inline(__always) func callAsFunction(_ t: Int, _ g: Float) { w[t] -= lr * (g + wd * w[t]) }
}

struct NesterovSGD: SteppingRule {
    let w: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, lr: Float, wd: Float, mu: Float
    @inline(__always) func callAsFunction(_ t: Int, _ g: Float) {
        let grad = g + wd * w[t], v = mu * b[t] + grad
        b[t] = v
        w[t] -= lr * (grad + mu * v)
    }
}

struct MomentumSGD: SteppingRule {
    let w: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, lr: Float, wd: Float, mu: Float
    @inline(__always) func callAsFunction(_ t: Int, _ g: Float) {
        let v = mu * b[t] + g + wd * w[t]
        b[t] = v
        w[t] -= lr * v
    }
}

/// AdamW (Loshchilov & Hutter 2019): decoupled weight decay `w ← w − ηλw` (on
/// parameters with `decays`), then
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← w − η·m̂/(sqrt(v̂) + ε)` with bias
/// correction `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.
public final class AdamW: Optimizer {
    public let parameters: [Parameter]
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    /// Number of steps taken (for bias correction); saved in checkpoints.
    public var stepCount = 0
    private var firstMoment: [Tensor]
    private var secondMoment: [Tensor]

    public init(parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        firstMoment = parameters.map { Tensor(shape: $0.value.shape) }
        secondMoment = parameters.map { Tensor(shape: $0.value.shape) }
    }

    public var stateNames: [String] { ["exp_avg", "exp_avg_sq"] }
    public func state(_ name: String, parameter index: Int) -> Tensor {
        name == "exp_avg" ? firstMoment[index] : secondMoment[index]
    }
    public func setState(_ name: String, parameter index: Int, _ value: Tensor) {
        precondition(value.shape == firstMoment[index].shape, "AdamW state shape mismatch for parameter \(index)")
        if name == "exp_avg" { firstMoment[index] = value } else { secondMoment[index] = value }
    }

    public func zeroState(parameter index: Int, at positions: [Int]) {
        for i in positions {
            firstMoment[index].storage[i] = 0
            secondMoment[index].storage[i] = 0
        }
    }

    public func step(learningRate lr: Float) {
        stepCount += 1
        let b1 = beta1, b2 = beta2, eps = epsilon
        let c1 = 1 / (1 - Float(Double(b1).power(stepCount)))
        let c2 = 1 / (1 - Float(Double(b2).power(stepCount)))
        for (i, p) in parameters.enumerated() {
            let decay = p.decays ? 1 - lr * weightDecay : 1
            p.value.storage.withUnsafeMutableBufferPointer { w in
                firstMoment[i].storage.withUnsafeMutableBufferPointer { m in
                    secondMoment[i].storage.withUnsafeMutableBufferPointer { v in
                        p.step(AdamWRule(w: w.baseAddress!, m: m.baseAddress!, v: v.baseAddress!, b1: b1, b2: b2,
                                         c1: c1, c2: c2, lr: lr, eps: eps, decay: decay))
                    }
                }
            }
        }
    }
}

/// AdamW's per-weight update (see `AdamW`).
struct AdamWRule: SteppingRule {
    let w: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
    let b1: Float, b2: Float, c1: Float, c2: Float, lr: Float, eps: Float, decay: Float
    @inline(__always) func callAsFunction(_ t: Int, _ g: Float) {
        m[t] = b1 * m[t] + (1 - b1) * g
        v[t] = b2 * v[t] + (1 - b2) * g * g
        w[t] = w[t] * decay - lr * (m[t] * c1) / ((v[t] * c2).squareRoot() + eps)
    }
}

/// One optimizer's update of one weight from its gradient: `rule(position, gradient)`.
/// A concrete type (not a closure), so the stepping loops inline it.
protocol SteppingRule {
    func callAsFunction(_ t: Int, _ g: Float)
}

extension Parameter {
    /// Applies `rule` to every weight an optimizer steps: the active positions with
    /// `activeGradient` on the sparse path (O(active weights)), else every position with
    /// `gradient`. Large parameters are split over threads (each position is stepped
    /// once, by one thread, so the result does not depend on the split).
    @inline(__always)
    func step<Rule: SteppingRule>(_ rule: Rule) {
        if let positions = activePositions {
            guard !positions.isEmpty else { return }
            positions.withUnsafeBufferPointer { pos in
                activeGradient.withUnsafeBufferPointer { g in
                    let count = pos.count, pos = pos.baseAddress!, g = g.baseAddress!
                    Parallel.forRanges(count, work: count * 4) { range in
                        for e in range { rule(Int(pos[e]), g[e]) }
                    }
                }
            }
        } else {
            guard gradient.count > 0 else { return }
            gradient.storage.withUnsafeBufferPointer { g in
                let g = g.baseAddress!
                Parallel.forRanges(gradient.count, work: gradient.count * 4) { range in
                    for t in range { rule(t, g[t]) }
                }
            }
        }
    }
}

extension Double {
    /// `self` raised to a non-negative integer power.
    func power(_ n: Int) -> Double {
        var result = 1.0, base = self, e = n
        while e > 0 { if e & 1 == 1 { result *= base }; base *= base; e >>= 1 }
        return result
    }
}

extension Optimizer {
    /// Gradient clipping by global norm: when `‖g‖₂` over every parameter's stepped
    /// gradient (the active gradient of a layer on sparse kernels, the masked dense
    /// gradient otherwise — what the optimizer will use) exceeds `maximum`, every gradient
    /// is scaled by `maximum / ‖g‖₂`. Returns the norm before clipping.
    @discardableResult
    public func clipGradientNorm(maximum: Float) -> Float {
        var sum = 0.0
        for p in parameters {
            let g = p.activePositions != nil ? p.activeGradient : p.gradient.storage
            for x in g { sum += Double(x) * Double(x) }
        }
        let norm = Float(sum.squareRoot())
        guard norm > maximum, norm > 0 else { return norm }
        let factor = maximum / norm
        for p in parameters {
            if p.activePositions != nil {
                for i in p.activeGradient.indices { p.activeGradient[i] *= factor }
            } else {
                for i in p.gradient.storage.indices { p.gradient.storage[i] *= factor }
            }
        }
        return norm
    }
}
