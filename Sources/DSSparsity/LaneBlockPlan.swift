import CSparseKernels

/// The batch-1 execution layout of a condensed layer, derived from its values and
/// indices (never stored in an export file).
///
/// A gather-dot spends one scalar load per weight on `x[index]`, and that load rate,
/// not memory, bounds it. Here the active neurons form groups of 16, one per vector
/// lane, and the inputs form blocks of 64 that sit in four vector registers; a lane
/// then fetches its input with an in-register table lookup instead of a load. For
/// every (group, block) cell the weights of each lane that fall in the block are laid
/// out slot by slot: slot `t` holds lane `l`'s `t`-th weight in the block and the
/// weight's position in the block (`0..<64`). A cell has as many slots as its busiest
/// lane; shorter lanes are padded with zero weights at position 0.
///
/// `out[16 g + l] = Σ_b Σ_t values[slot, l] · x[64 b + positions[slot, l]]`, run by
/// the AVX-512 kernel in `CSparseKernels`.
public struct LaneBlockPlan: Equatable {
    public static let lanes = 16
    public static let blockWidth = 64
    /// Whether this CPU runs the lane-block kernel.
    public static let isSupported = ds_lane_blocks_supported() != 0

    public let inputFeatures: Int
    /// `m · k`, the weights laid out.
    public let weights: Int
    /// `⌈m / 16⌉` neuron groups and `⌈inputFeatures / 64⌉` input blocks.
    public let groups: Int
    public let blocks: Int
    /// `[groups, blocks]` slots per cell.
    public let slotCount: [UInt8]
    /// `[groups + 1]` index of each group's first slot.
    public let groupStart: [Int64]
    /// `[slots, 16]`.
    public let values: [Float]
    /// `[slots, 16]` positions inside the cell's input block.
    public let positions: [UInt8]

    /// Lays out `values [m, k]` / `indices [m, k]` (row `r` = lane `r % 16` of group `r / 16`).
    public init(inputFeatures: Int, rows m: Int, fanIn k: Int, values: [Float], indices: CondensedIndices) {
        let lanes = Self.lanes, width = Self.blockWidth
        self.inputFeatures = inputFeatures
        weights = m * k
        let groups = (m + lanes - 1) / lanes, blocks = (inputFeatures + width - 1) / width
        self.groups = groups; self.blocks = blocks
        var slotCount = [UInt8](repeating: 0, count: groups * blocks)
        var groupStart: [Int64] = [0]
        var laneCount = [Int](repeating: 0, count: lanes * blocks)   // [lane, block] of one group
        for g in 0..<groups {
            laneCount = [Int](repeating: 0, count: lanes * blocks)
            for r in (g * lanes)..<min(m, (g + 1) * lanes) {
                for i in 0..<k { laneCount[(r - g * lanes) * blocks + indices[r * k + i] / width] += 1 }
            }
            var slots = 0
            for b in 0..<blocks {
                var busiest = 0
                for lane in 0..<lanes { busiest = max(busiest, laneCount[lane * blocks + b]) }
                slotCount[g * blocks + b] = UInt8(busiest)
                slots += busiest
            }
            groupStart.append(groupStart[g] + Int64(slots))
        }
        let total = Int(groupStart[groups])
        var planValues = [Float](repeating: 0, count: total * lanes)
        var planPositions = [UInt8](repeating: 0, count: total * lanes)
        var cellStart = [Int](repeating: 0, count: blocks)
        var filled = [Int](repeating: 0, count: lanes * blocks)
        for g in 0..<groups {
            var slot = Int(groupStart[g])
            for b in 0..<blocks { cellStart[b] = slot; slot += Int(slotCount[g * blocks + b]) }
            filled = [Int](repeating: 0, count: lanes * blocks)
            for r in (g * lanes)..<min(m, (g + 1) * lanes) {
                let lane = r - g * lanes
                for i in 0..<k {
                    let f = indices[r * k + i], b = f / width
                    let s = cellStart[b] + filled[lane * blocks + b]
                    filled[lane * blocks + b] += 1
                    planValues[s * lanes + lane] = values[r * k + i]
                    planPositions[s * lanes + lane] = UInt8(f - b * width)
                }
            }
        }
        self.slotCount = slotCount; self.groupStart = groupStart
        self.values = planValues; self.positions = planPositions
    }

    /// Stored weights over stored slots (1 = no padding).
    public var fill: Double { values.isEmpty ? 1 : Double(weights) / Double(values.count) }

    /// `out [16 · groups]` for groups in `range` (lanes past `m` get 0); the AVX-512
    /// kernel, or with `portable` the plain C loop over the same layout.
    public func forward(_ x: UnsafePointer<Float>, groups range: Range<Int>, into out: UnsafeMutablePointer<Float>,
                        portable: Bool = false) {
        guard !values.isEmpty else {
            (out + range.lowerBound * Self.lanes).update(repeating: 0, count: range.count * Self.lanes)
            return
        }
        values.withUnsafeBufferPointer { v in
            positions.withUnsafeBufferPointer { p in
                slotCount.withUnsafeBufferPointer { c in
                    groupStart.withUnsafeBufferPointer { s in
                        let run = portable || !Self.isSupported ? ds_lane_blocks_gemv_portable : ds_lane_blocks_gemv
                        run(v.baseAddress!, p.baseAddress!, c.baseAddress!, s.baseAddress!,
                            Int64(range.lowerBound), Int64(range.upperBound), Int64(blocks), x,
                            Int64(inputFeatures), out)
                    }
                }
            }
        }
    }
}
