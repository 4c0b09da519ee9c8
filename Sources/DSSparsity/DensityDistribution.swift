/// One prunable weight as the distributions see it.
public struct SparseLayerShape: Equatable, Sendable {
    /// Layer name (the weight's parameter path without `.weight`).
    public var name: String
    /// The weight tensor's dimensions (conv: `[out, in, kh, kw]`; linear: `[out, in]`).
    public var dimensions: [Int]
    public init(name: String, dimensions: [Int]) { self.name = name; self.dimensions = dimensions }
    /// `N`, the number of weights.
    public var count: Int { dimensions.reduce(1, *) }
    /// The Erdős–Rényi-Kernel score `Σ dims / Π dims`.
    public var erkScore: Double { Double(dimensions.reduce(0, +)) / Double(count) }
}

/// A per-layer density for an overall target sparsity (docs/algorithms.md §2).
public struct LayerDensity: Equatable, Sendable {
    public var name: String
    /// The layer's density (1 for dense layers).
    public var density: Double
    /// `D = floor(N · density)`, the number of active weights the layer may keep.
    public var budget: Int
    /// True when the layer has no mask (forced dense, or made dense by ERK overflow).
    public var isDense: Bool
}

/// A problem with the requested sparsity distribution.
public struct DistributionError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// How the overall density is spread over layers.
public enum DensityDistribution: String, CaseIterable, Sendable {
    /// Every sparse layer gets the same density.
    case uniform
    /// Erdős–Rényi-Kernel: density proportional to `Σ dims / Π dims`.
    case erk

    /// Densities for `layers` at overall sparsity `sparsity`, with the layers named in
    /// `denseLayers` kept dense (their weights count against the budget first).
    ///
    /// The model keeps `K = (1 − s)·ΣN` weights. Uniform: `d = (K − Σ_dense N) /
    /// Σ_sparse N`. ERK: find `ε` with `Σ_sparse ε·p_l·N_l = K − Σ_dense N_l`; while
    /// a density `ε·p_l` exceeds 1, the layer with the largest `p` (lowest index on
    /// ties) becomes dense and `ε` is solved again.
    public func densities(for layers: [SparseLayerShape], sparsity: Double,
                          denseLayers: Set<String> = []) throws -> [LayerDensity] {
        guard sparsity >= 0 && sparsity < 1 else {
            throw DistributionError(message: "sparsity \(sparsity) is outside [0, 1)")
        }
        let total = layers.reduce(0.0) { $0 + Double($1.count) }
        let keep = (1 - sparsity) * total
        var dense = Set(layers.indices.filter { denseLayers.contains(layers[$0].name) })
        func remaining() -> Double { keep - dense.reduce(0.0) { $0 + Double(layers[$1].count) } }
        guard remaining() >= 0 else {
            throw DistributionError(message: "the dense layers alone hold more than the \(Int(keep)) weights that sparsity \(sparsity) allows")
        }
        var density = [Double](repeating: 1, count: layers.count)
        switch self {
        case .uniform:
            let sparseTotal = layers.indices.filter { !dense.contains($0) }.reduce(0.0) { $0 + Double(layers[$1].count) }
            let d = sparseTotal > 0 ? remaining() / sparseTotal : 1
            for i in layers.indices where !dense.contains(i) { density[i] = d }
        case .erk:
            while true {
                let sparse = layers.indices.filter { !dense.contains($0) }
                let weighted = sparse.reduce(0.0) { $0 + layers[$1].erkScore * Double(layers[$1].count) }
                guard weighted > 0 else { break }
                let eps = remaining() / weighted
                let over = sparse.filter { eps * layers[$0].erkScore > 1 }
                if over.isEmpty {
                    for i in sparse { density[i] = eps * layers[i].erkScore }
                    break
                }
                // The largest score overflows first; ties go to the lowest index.
                let worst = over.max { a, b in
                    layers[a].erkScore < layers[b].erkScore || (layers[a].erkScore == layers[b].erkScore && a > b)
                }!
                dense.insert(worst)
            }
        }
        return layers.indices.map { i in
            let isDense = dense.contains(i)
            let d = isDense ? 1 : density[i]
            return LayerDensity(name: layers[i].name, density: d,
                                budget: isDense ? layers[i].count : floorTolerant(Double(layers[i].count) * d),
                                isDense: isDense)
        }
    }
}

/// `floor(x)`, forgiving the last-bit error of a product that is an integer in exact
/// arithmetic (`1000 · 0.1` must give 100, not 99).
func floorTolerant(_ x: Double) -> Int {
    Int((x + 1e-9 * max(1, abs(x))).rounded(.down))
}
