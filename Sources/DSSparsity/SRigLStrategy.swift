import CSparseKernels
import DSCore

/// SRigL (Lasby et al. 2024): RigL under a constant fan-in constraint, with neuron
/// ablation. Every active neuron keeps exactly `k` incoming weights; neurons with too
/// few salient weights are ablated and their budget goes to the rest (docs/algorithms.md §3.3).
public struct SRigLStrategy: SparsityScheduler {
    /// `sparsity.srigl`.
    public struct Options: StrategyOptions {
        /// `γ_sal`: salient weights a neuron needs, as a fraction of its fan-in (≥ 1: a count).
        public var gammaSal = 0.3
        /// Neuron ablation on or off.
        public var ablation = true
        public init() {}
        enum CodingKeys: String, CodingKey { case gammaSal = "gamma_sal", ablation }
        public init(from decoder: Decoder) throws {
            let f = Fields(decoder, CodingKeys.self), d = Options()
            gammaSal = f(.gammaSal, d.gammaSal); ablation = f(.ablation, d.ablation)
        }
        public func problems() -> [String] {
            gammaSal > 0 ? [] : ["gamma_sal: must be positive, got \(gammaSal)"]
        }
    }

    /// `γ_sal`: a neuron needs `max(1, floor(γ_sal · k0))` salient weights to stay
    /// active (`γ_sal ≥ 1` is an absolute count).
    public var salienceThreshold: Double
    /// Neuron ablation on or off.
    public var ablation: Bool
    /// Constant fan-in, or N:M (which has constant fan-in too, but a fixed count per
    /// group leaves ablation nothing to move: N:M needs `ablation: false`).
    public let structure: any MaskStructure

    public init(salienceThreshold: Double = 0.3, ablation: Bool = true, structure: any MaskStructure = ConstantFanIn()) {
        precondition(structure is ConstantFanIn || (structure is NOfM && !ablation),
                     "SRigLStrategy: structure \(structure.name) with ablation \(ablation)")
        self.salienceThreshold = salienceThreshold
        self.ablation = ablation
        self.structure = structure
    }

    public init(options: Options, structure: any MaskStructure) {
        self.init(salienceThreshold: options.gammaSal, ablation: options.ablation, structure: structure)
    }

    public var name: String { "srigl" }
    public var usesDenseGradient: Bool { true }
    public var isDynamic: Bool { true }

    public func update(_ layer: LayerUpdateInput, rng: inout Xoshiro256) -> LayerUpdateResult {
        guard structure is ConstantFanIn else { return layer.dropAndGrow(in: structure, growingLargest: layer.denseGradient) }
        let rows = layer.mask.rows, columns = layer.mask.columns, budget = layer.budget
        let (keep, drop) = layer.keepAndDrop

        // 1–2. Ablation: rows with fewer than `thr` salient weights, salient meaning
        //      among the nKeep largest |w| or the nDrop largest |g| over the layer.
        var isAblated = [Bool](repeating: false, count: rows)
        // The nKeep largest nonzero |w| over every row: the kept weights of step 4 when
        // no row is ablated, and the salient weights of step 1 unless a NaN is among them
        // (NaN ranks below 0, so a zero weight would take its place there).
        var kept: [Bool]?
        if ablation && layer.mayAblate {
            let largest = layer.largestNonzero(keep, in: structure.groups(rows: rows, columns: columns))
            let salientPerRow = Self.salientPerRow(layer, keep: keep, drop: drop, largest: largest.keptNaN ? nil : largest.flags)
            kept = largest.flags
            let k0 = budget / rows
            var threshold = salienceThreshold >= 1
                ? max(1, Int(salienceThreshold))
                : max(1, Int((salienceThreshold * Double(k0)).rounded(.down)))
            let fewestRows = budget / columns
            if fewestRows < rows {
                // The (fewestRows + 1)-th largest count (a sort without a closure, which
                // the compiler specialises: `sorted(by: >)` took 5 µs more on 300 rows).
                let ascending = salientPerRow.sorted()
                threshold = min(threshold, ascending[rows - 1 - fewestRows])
            }
            for r in 0..<rows where salientPerRow[r] < threshold { isAblated[r] = true }
        }
        let ablated = (0..<rows).filter { isAblated[$0] }

        // 3. The new fan-in keeps the layer's density.
        let fanIn = budget / (rows - ablated.count)

        // 4–5. Drop and grow row by row: ablated rows lose everything; elsewhere keep
        //      the nKeep largest nonzero |w|, cut any row above the new fan-in to its
        //      largest |w|, and fill every active row to exactly the new fan-in by |g|.
        let counts = isAblated.map { $0 ? 0 : fanIn }
        // The flags are handed over (consumed), so drop-and-grow changes them in place
        // rather than copying a layer-sized array.
        if !ablated.isEmpty { kept = nil }
        let next = layer.dropAndGrow(in: structure, counts: counts, keep: keep, kept: consume kept,
                                     growingLargest: layer.denseGradient).mask
        return LayerUpdateResult(mask: next, ablatedRows: ablated)
    }

    /// Salient weights per row: those among the `keep` largest `|w|` over the active
    /// positions or among the `drop` largest `|g|` over the whole layer (ties to the
    /// lower index in both). `largest`, when given, are the first set's flags. Rows are
    /// counted in parallel; exact ties at the gradient cut are then taken in index order.
    static func salientPerRow(_ layer: LayerUpdateInput, keep: Int, drop: Int, largest: [Bool]? = nil) -> [Int] {
        let rows = layer.mask.rows, columns = layer.mask.columns
        var perRow = [Int](repeating: 0, count: rows)
        var atCut = [Int](repeating: 0, count: rows)
        guard columns > 0 else { return perRow }
        let salient = largest ?? {
            var flags = [Bool](repeating: false, count: rows * columns)
            let active = layer.mask.activeIndices
            layer.weights.withUnsafeBufferPointer { w in
                flags.withMutableFlagBytes { s in
                    active.withUnsafeBufferPointer { Selection.largestMagnitudes(keep, of: $0, in: w.baseAddress!) { s[$0] = 1 } }
                }
            }
            return flags
        }()
        layer.denseGradient.withUnsafeBufferPointer { g in
            salient.withFlagBytes { s in
                let (key, tiesAtCut) = Selection.magnitudeCut(drop, of: g)
                var ties = tiesAtCut
                perRow.withUnsafeMutableBufferPointer { counts in
                    atCut.withUnsafeMutableBufferPointer { cut in
                        Parallel.forRanges(rows, work: rows * columns) { part in
                            for r in part {
                                var equal: Int64 = 0
                                counts[r] = Int(ds_flagged_or_above(s.baseAddress! + r * columns, g.baseAddress! + r * columns,
                                                                    Int64(columns), key, &equal))
                                cut[r] = Int(equal)
                            }
                        }
                    }
                }
                // Rare: exact ties at the cut, the first `ties` of them in index order salient.
                for r in 0..<rows where atCut[r] > 0 && ties > 0 {
                    var count = 0
                    for i in (r * columns)..<((r + 1) * columns) {
                        let k = Selection.magnitudeKey(g[i])
                        var isSalient = s[i] | UInt8((k > key).bit)
                        if k == key && ties > 0 { ties -= 1; isSalient = 1 }
                        count &+= Int(isSalient)
                    }
                    perRow[r] = count
                }
            }
        }
        return perRow
    }
}
