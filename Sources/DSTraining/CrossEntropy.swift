import DSCore
import Foundation

/// Softmax cross-entropy with label smoothing, averaged over the batch.
///
/// With `K` classes and smoothing `ε`, the target is `q = (1 − ε)·onehot + ε/K` and
/// `L = −(1/N) Σ_n Σ_k q_nk · log softmax(z_n)_k`; `dL/dz = (softmax(z) − q) / N`.
public struct CrossEntropy: Sendable {
    public var labelSmoothing: Float

    public init(labelSmoothing: Float = 0) {
        precondition(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing \(labelSmoothing) not in [0, 1)")
        self.labelSmoothing = labelSmoothing
    }

    /// Loss, number of correct top-1 predictions, and `dL/dlogits` for `logits [N, K]`.
    public func evaluate(logits: Tensor, labels: [Int]) -> (loss: Float, correct: Int, gradient: Tensor) {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                     "CrossEntropy: logits \(logits.shape) for \(labels.count) labels")
        let n = logits.shape[0], k = logits.shape[1]
        var grad = Tensor(shape: logits.shape)
        var total = 0.0
        var correct = 0
        let off = labelSmoothing / Float(k), on = 1 - labelSmoothing + off
        logits.storage.withUnsafeBufferPointer { pz in
            grad.storage.withUnsafeMutableBufferPointer { pg in
                for r in 0..<n {
                    let z = pz.baseAddress! + r * k, g = pg.baseAddress! + r * k
                    var maxValue = z[0], argmax = 0
                    for j in 1..<k where z[j] > maxValue { maxValue = z[j]; argmax = j }
                    var sum: Float = 0
                    for j in 0..<k { let e = expf(z[j] - maxValue); g[j] = e; sum += e }
                    let logSum = logf(sum) + maxValue
                    let label = labels[r]
                    precondition(label >= 0 && label < k, "label \(label) outside 0..<\(k)")
                    var rowLoss: Float = 0
                    for j in 0..<k {
                        let q = j == label ? on : off
                        rowLoss -= q * (z[j] - logSum)
                        g[j] = (g[j] / sum - q) / Float(n)
                    }
                    total += Double(rowLoss)
                    if argmax == label { correct += 1 }
                }
            }
        }
        return (Float(total / Double(n)), correct, grad)
    }
}
