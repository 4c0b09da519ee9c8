/// Model-wide sparsity figures for `metrics.csv` (docs/algorithms.md §5).
public struct SparsityStatistics: Equatable {
    /// `1 − active / total` over every prunable weight (dense layers count as active).
    public var sparsity: Double
    /// Output neurons (rows) with at least one active weight, over all prunable layers.
    public var activeNeurons: Int
    /// Rows with no active weight.
    public var ablatedNeurons: Int
    /// In-time over-parameterisation: the fraction of the masked layers' weights that
    /// have been active at some point (1 when no layer is masked).
    public var itop: Double

    public init(_ model: SparseModel) {
        var total = 0, active = 0, rowsActive = 0, rowsEmpty = 0, maskedTotal = 0, ever = 0
        for layer in model.layers {
            total += layer.parameter.value.count
            active += layer.activeCount
            for count in layer.rowCounts { if count > 0 { rowsActive += 1 } else { rowsEmpty += 1 } }
            if layer.mask != nil {
                maskedTotal += layer.parameter.value.count
                ever += layer.everActive.trueCount
            }
        }
        sparsity = total > 0 ? 1 - Double(active) / Double(total) : 0
        activeNeurons = rowsActive
        ablatedNeurons = rowsEmpty
        itop = maskedTotal > 0 ? Double(ever) / Double(maskedTotal) : 1
    }
}

/// One row of `sparsity.csv`: a layer at initialisation or after a mask update.
public struct LayerStatistics: Equatable {
    public var layer: String
    public var outputs: Int
    public var denseFanIn: Int
    public var density: Double
    public var nonzero: Int
    public var fanInMin: Int
    public var fanInMax: Int
    public var fanInMean: Double
    public var activeNeurons: Int
    public var ablatedNeurons: Int
    public var dropped: Int
    public var grown: Int
    public var dropFraction: Double
    /// The mask's structure (`dense` for a layer without a mask).
    public var structure: String
    /// After an update: `|old ∩ new| / |old ∪ new|` of the active positions (1: nothing
    /// changed); nil at initialisation.
    public var maskOverlap: Double?

    /// Fan-in figures are over the layer's active neurons (0 when none is active).
    public init(_ layer: SparseLayer, structure: any MaskStructure, change: MaskChange? = nil, dropFraction: Double = 0) {
        let counts = layer.rowCounts
        let active = counts.filter { $0 > 0 }
        self.layer = layer.name
        outputs = layer.rows
        denseFanIn = layer.columns
        nonzero = layer.activeCount
        density = Double(nonzero) / Double(layer.parameter.value.count)
        fanInMin = active.min() ?? 0
        fanInMax = active.max() ?? 0
        fanInMean = active.isEmpty ? 0 : Double(active.reduce(0, +)) / Double(active.count)
        activeNeurons = active.count
        ablatedNeurons = counts.count - active.count
        dropped = change?.dropped.count ?? 0
        grown = change?.grown.count ?? 0
        self.dropFraction = dropFraction
        self.structure = layer.mask == nil ? "dense" : structure.label
        maskOverlap = change.map { $0.overlap(activeAfter: layer.activeCount) }
    }
}

extension MaskChange {
    /// `|old ∩ new| / |old ∪ new|` for a mask holding `active` positions after the change.
    public func overlap(activeAfter active: Int) -> Double {
        let union = active + dropped.count
        return union > 0 ? Double(active - grown.count) / Double(union) : 1
    }
}

extension SparsityStatistics {
    /// The model-wide overlap of one update: `Σ |old ∩ new| / Σ |old ∪ new|` over its layers.
    public static func maskOverlap(_ updates: MaskUpdates) -> Double {
    var intersection = 0, union = 0
    for u in updates {
        intersection += u.layer.activeCount - u.change.grown.count
        union += u.layer.activeCount + u.change.dropped.count
    }
    return union > 0 ? Double(intersection) / Double(union) : 1
    }
}
