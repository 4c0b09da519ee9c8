import DSCore

/// Layer normalisation over the last dimension (Ba et al. 2016): for each row `x` of
/// `D` values, `y = γ ⊙ (x − μ) / sqrt(σ² + ε) + β`, `μ` and `σ²` the row's mean and
/// biased variance. Input of any rank ≥ 1 with last dimension `D`; `γ` (`weight`) and
/// `β` (`bias`) are `[D]`, dense, and decayed only if the optimizer is told to.
public final class LayerNorm: Layer {
    public let features: Int
    public let epsilon: Float
    public let scale: Parameter
    public let shift: Parameter
    /// The last forward's normalised rows `x̂` and `1/σ` per row.
    private var normalized = Tensor(shape: [0])
    private var inverseStd: [Float] = []

    public init(features: Int, epsilon: Float = 1e-6) {
        self.features = features
        self.epsilon = epsilon
        scale = Parameter(name: "weight", role: .normalization, value: Tensor(shape: [features], repeating: 1))
        shift = Parameter(name: "bias", role: .normalization, value: Tensor(shape: [features]))
    }

    public var ownParameters: [Parameter] { [scale, shift] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.last == features, "LayerNorm(\(features)) got input \(x.shape)")
        let d = features, rows = x.count / d
        var y = Tensor(uninitializedShape: x.shape)
        var xhat = Tensor(uninitializedShape: training ? x.shape : [0])
        var inv = [Float](repeating: 0, count: training ? rows : 0)
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                xhat.storage.withUnsafeMutableBufferPointer { ph in
                    inv.withUnsafeMutableBufferPointer { pi in
                        scale.value.storage.withUnsafeBufferPointer { g in
                            shift.value.storage.withUnsafeBufferPointer { b in
                                Parallel.forRanges(rows, work: rows * d * 8) { range in
                                    for r in range {
                                        let row = px.baseAddress! + r * d
                                        var mean: Float = 0
                                        for i in 0..<d { mean += row[i] }
                                        mean /= Float(d)
                                        var variance: Float = 0
                                        for i in 0..<d { let c = row[i] - mean; variance += c * c }
                                        let s = 1 / (variance / Float(d) + epsilon).squareRoot()
                                        for i in 0..<d {
                                            let h = (row[i] - mean) * s
                                            py[r * d + i] = g[i] * h + b[i]
                                            if training { ph[r * d + i] = h }
                                        }
                                        if training { pi[r] = s }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training { normalized = xhat; inverseStd = inv }
        return y
    }

    /// `dγ += Σ dy ⊙ x̂`, `dβ += Σ dy`, `dx = (1/σ)(g − mean(g) − x̂·mean(g ⊙ x̂))`
    /// with `g = dy ⊙ γ`, per row.
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == normalized.shape, "LayerNorm.backward: gradient \(dy.shape) vs forward \(normalized.shape)")
        let d = features, rows = dy.count / d
        var dx = Tensor(uninitializedShape: dy.shape)
        dy.storage.withUnsafeBufferPointer { pdy in
            normalized.storage.withUnsafeBufferPointer { ph in
                // Parameter gradients: one pass in row order (independent of threads).
                scale.gradient.storage.withUnsafeMutableBufferPointer { dg in
                    shift.gradient.storage.withUnsafeMutableBufferPointer { db in
                        for r in 0..<rows {
                            for i in 0..<d {
                                dg[i] += pdy[r * d + i] * ph[r * d + i]
                                db[i] += pdy[r * d + i]
                            }
                        }
                    }
                }
                dx.storage.withUnsafeMutableBufferPointer { pdx in
                    scale.value.storage.withUnsafeBufferPointer { g in
                        inverseStd.withUnsafeBufferPointer { pi in
                            Parallel.forRanges(rows, work: rows * d * 8) { range in
                                for r in range {
                                    var meanG: Float = 0, meanGH: Float = 0
                                    for i in 0..<d {
                                        let gi = pdy[r * d + i] * g[i]
                                        meanG += gi
                                        meanGH += gi * ph[r * d + i]
                                    }
                                    meanG /= Float(d); meanGH /= Float(d)
                                    for i in 0..<d {
                                        let gi = pdy[r * d + i] * g[i]
                                        pdx[r * d + i] = pi[r] * (gi - meanG - ph[r * d + i] * meanGH)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}
