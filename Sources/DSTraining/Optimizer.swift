import DSCore
import DSLayers

/// An optimizer updates parameters from their accumulated gradients.
///
/// State is kept per parameter, in the order of `parameters`, and is public so the
/// sparsity code can zero the state of inactive or newly grown weights and
/// checkpoints can save it. Parameters with `activePositions` (sparse weight kernels)
/// are stepped at those positions only (their `activeValues`, from `activeGradient`,
/// with compact state), in O(active weights); the others in full.
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
    private let velocity: OptimizerState

    public init(parameters: [Parameter], momentum: Float = 0.9, nesterov: Bool = false,
                weightDecay: Float = 0) {
        precondition(!nesterov || momentum > 0, "Nesterov momentum needs momentum > 0")
        self.parameters = parameters
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        velocity = OptimizerState(names: ["momentum"], parameters: parameters)
    }

    public var stateNames: [String] { velocity.names }
    public func state(_ name: String, parameter index: Int) -> Tensor { velocity.tensor(name, index) }
    public func setState(_ name: String, parameter index: Int, _ value: Tensor) {
        velocity.set(name, index, value, optimizer: "SGD")
    }

    public func zeroState(parameter index: Int, at positions: [Int]) { velocity.zero(index, at: positions) }

    public func step(learningRate lr: Float) {
        let mu = momentum, nesterov = nesterov
        for (i, p) in parameters.enumerated() {
            let wd = p.decays ? weightDecay : 0
            velocity.withSteppedArrays(i, p) { w, state in
                let b = state[0]
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
    private let moments: OptimizerState

    public init(parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        moments = OptimizerState(names: ["exp_avg", "exp_avg_sq"], parameters: parameters)
    }

    public var stateNames: [String] { moments.names }
    public func state(_ name: String, parameter index: Int) -> Tensor { moments.tensor(name, index) }
    public func setState(_ name: String, parameter index: Int, _ value: Tensor) {
        moments.set(name, index, value, optimizer: "AdamW")
    }

    public func zeroState(parameter index: Int, at positions: [Int]) { moments.zero(index, at: positions) }

    public func step(learningRate lr: Float) {
        stepCount += 1
        let b1 = beta1, b2 = beta2, eps = epsilon
        let c1 = 1 / (1 - Float(Double(b1).power(stepCount)))
        let c2 = 1 / (1 - Float(Double(b2).power(stepCount)))
        for (i, p) in parameters.enumerated() {
            let decay = p.decays ? 1 - lr * weightDecay : 1
            moments.withSteppedArrays(i, p) { w, state in
                p.step(AdamWRule(w: w, m: state[0], v: state[1], b1: b1, b2: b2, c1: c1, c2: c2, lr: lr, eps: eps,
                                 decay: decay))
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

/// One optimizer's update of one weight from its gradient: `rule(i, gradient)` updates
/// element `i` of the arrays the rule holds (the dense tensors, or the compact arrays of
/// a parameter on a sparse kernel). A concrete type, not a closure, so the stepping
/// loops inline it.
protocol SteppingRule {
    func callAsFunction(_ t: Int, _ g: Float)
}

extension Parameter {
    /// Applies `rule` to every weight an optimizer steps, element `i` with gradient `g[i]`:
    /// on the sparse path the active weights (`activeGradient`, O(active weights)), else
    /// every weight (`gradient`). Large parameters are split over threads (each element is
    /// stepped once, by one thread, so the result does not depend on the split).
    @inline(__always)
    func step<Rule: SteppingRule>(_ rule: Rule) {
        let active = activePositions != nil
        let gradients = active ? activeGradient : gradient.storage
        guard !gradients.isEmpty else { return }
        gradients.withUnsafeBufferPointer { g in
            let count = g.count, g = g.baseAddress!
            Parallel.forRanges(count, work: count * 4) { range in
                for i in range { rule(i, g[i]) }
            }
        }
    }
}

/// An optimizer's per-weight state tensors (`names`, each shaped like its parameter),
/// and for parameters on sparse kernels a compact copy at their active positions, which
/// the steps update: contiguous arrays, like the parameter's `activeValues`, instead of
/// scattered positions in dense tensors. The copy is read from the dense tensors at the
/// first step after the active positions change, and written back into them (then
/// dropped) before they are read or changed, so checkpoints and `zeroState` see the
/// state as it is.
final class OptimizerState {
    let names: [String]
    private var dense: [[Tensor]]   // [state][parameter]
    private var compact: [Int: CompactCopy] = [:]

    /// The state at one parameter's active positions.
    private final class CompactCopy {
        let generation: Int
        let positions: [Int32]
        let arrays: [UnsafeMutablePointer<Float>]

        init(generation: Int, positions: [Int32], reading dense: [Tensor]) {
            self.generation = generation
            self.positions = positions
            arrays = dense.map { t in
                let a = UnsafeMutablePointer<Float>.allocate(capacity: max(positions.count, 1))
                t.storage.withUnsafeBufferPointer { d in
                    positions.withUnsafeBufferPointer { p in
                        guard let d = d.baseAddress else { return }
                        Vector.gather(d, at: p, into: a)
                    }
                }
                return a
            }
        }

        deinit { for a in arrays { a.deallocate() } }
    }

    init(names: [String], parameters: [Parameter]) {
        self.names = names
        dense = names.map { _ in parameters.map { Tensor(shape: $0.value.shape) } }
    }

    private func index(_ name: String) -> Int {
        guard let s = names.firstIndex(of: name) else { preconditionFailure("no optimizer state \(name); have \(names)") }
        return s
    }

    func tensor(_ name: String, _ i: Int) -> Tensor {
        writeBack(i)
        return dense[index(name)][i]
    }

    func set(_ name: String, _ i: Int, _ value: Tensor, optimizer: String) {
        let s = index(name)
        precondition(value.shape == dense[s][i].shape, "\(optimizer) state shape mismatch for parameter \(i)")
        writeBack(i)
        dense[s][i] = value
    }

    func zero(_ i: Int, at positions: [Int]) {
        writeBack(i)
        for s in dense.indices {
            dense[s][i].storage.withUnsafeMutableBufferPointer { d in for t in positions { d[t] = 0 } }
        }
    }

    /// Writes parameter `i`'s compact copy back into the dense tensors and drops it.
    private func writeBack(_ i: Int) {
        guard let copy = compact.removeValue(forKey: i) else { return }
        for s in dense.indices {
            dense[s][i].storage.withUnsafeMutableBufferPointer { d in
                copy.positions.withUnsafeBufferPointer { p in
                    guard let d = d.baseAddress else { return }
                    Vector.scatter(copy.arrays[s], at: p, into: d)
                }
            }
        }
    }

    /// Runs `body(weights, states)` on the arrays a step of parameter `i` updates:
    /// `activeValues` and the compact state on a sparse kernel, else the dense tensors.
    func withSteppedArrays(_ i: Int, _ p: Parameter,
                           _ body: (UnsafeMutablePointer<Float>, [UnsafeMutablePointer<Float>]) -> Void) {
        if let positions = p.activePositions {
            if let copy = compact[i], copy.generation != p.patternGeneration { writeBack(i) }
            let copy = compact[i] ?? CompactCopy(generation: p.patternGeneration, positions: positions,
                                                 reading: dense.map { $0[i] })
            compact[i] = copy
            p.withMutableActiveValues { w in
                guard let w = w.baseAddress, !positions.isEmpty else { return }
                body(w, copy.arrays)
            }
            return
        }
        // The tensors move out of `dense` while their pointers are in use (no copy);
        // optimizers here keep one or two state tensors per parameter.
        precondition(dense.count == 1 || dense.count == 2, "OptimizerState: \(dense.count) states")
        var first = dense[0][i], second = dense.count > 1 ? dense[1][i] : Tensor(shape: [0])
        for s in dense.indices { dense[s][i] = Tensor(shape: [0]) }
        defer {
            dense[0][i] = first
            if dense.count > 1 { dense[1][i] = second }
        }
        let states = dense.count
        p.value.storage.withUnsafeMutableBufferPointer { w in
            guard let w = w.baseAddress else { return }
            first.storage.withUnsafeMutableBufferPointer { a in
                second.storage.withUnsafeMutableBufferPointer { b in
                    body(w, states == 1 ? [a.baseAddress!] : [a.baseAddress!, b.baseAddress!])
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
