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
/// weight's position in the block (`0..<64`).
///
/// The kernel streams the slots at memory speed, so padding is what it pays for. A
/// cell has as many slots as its busiest lane, except that up to `spillLanes` lanes
/// busier than the rest keep their extra weights in a per-neuron spill list, summed by
/// scalar loads: a slot padded for one or two lanes costs more than their loads.
/// Lanes with fewer weights are padded with zero weights at position 0.
///
/// `out[16 g + l] = Σ_b Σ_t values[slot, l] · x[64 b + positions[slot, l]]
///                 + Σ_i spillValues[i] · x[spillIndices[i]]` (neuron `r = 16 g + l`'s spill),
/// run by the AVX-512 kernel in `CSparseKernels`.
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
    /// `[slots, 16]`, cache-line aligned: each slot is one 64-byte load.
    public let values: AlignedFloats
    /// `[slots, 16]` positions inside the cell's input block.
    public let positions: [UInt8]
    /// `[m + 1]`: neuron `r`'s spilled weights are `spillStart[r]..<spillStart[r + 1]`.
    public let spillStart: [Int32]
    public let spillValues: [Float]
    /// Input positions (in `0..<inputFeatures`) of the spilled weights.
    public let spillIndices: [Int32]

    /// Lays out `values [m, k]` / `indices [m, k]` (row `r` = lane `r % 16` of group
    /// `r / 16`); in each cell at most `spillLanes` lanes spill.
    public init(inputFeatures: Int, rows m: Int, fanIn k: Int, values: [Float], indices: CondensedIndices,
                spillLanes: Int = 2) {
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
                // The (spillLanes + 1)-th busiest lane sets the cell's slots.
                let counts = (0..<lanes).map { laneCount[$0 * blocks + b] }.sorted(by: >)
                let kept = counts[min(spillLanes, lanes - 1)]
                slotCount[g * blocks + b] = UInt8(kept)
                slots += kept
            }
            groupStart.append(groupStart[g] + Int64(slots))
        }
        let total = Int(groupStart[groups])
        var planValues = [Float](repeating: 0, count: total * lanes)
        var planPositions = [UInt8](repeating: 0, count: total * lanes)
        var spillStart: [Int32] = [0], spillValues: [Float] = [], spillIndices: [Int32] = []
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
                    let t = filled[lane * blocks + b]
                    if t < Int(slotCount[g * blocks + b]) {
                        filled[lane * blocks + b] += 1
                        planValues[(cellStart[b] + t) * lanes + lane] = values[r * k + i]
                        planPositions[(cellStart[b] + t) * lanes + lane] = UInt8(f - b * width)
                    } else {
                        spillValues.append(values[r * k + i])
                        spillIndices.append(Int32(f))
                    }
                }
                spillStart.append(Int32(spillValues.count))
            }
        }
        self.slotCount = slotCount; self.groupStart = groupStart
        self.values = AlignedFloats(planValues); self.positions = planPositions
        self.spillStart = spillStart; self.spillValues = spillValues; self.spillIndices = spillIndices
    }

    /// Weights held in slots over slot capacity (1 = no padding).
    public var fill: Double { values.isEmpty ? 1 : Double(weights - spillValues.count) / Double(values.count) }

    /// `out [16 · groups]` for groups in `range` (lanes past `m` get 0): the AVX-512
    /// kernel, or with `portable` the plain C loop over the same layout.
    public func forward(_ x: UnsafePointer<Float>, groups range: Range<Int>, into out: UnsafeMutablePointer<Float>,
                        portable: Bool = false) {
        withExtendedLifetime(values) {
            positions.withUnsafeBufferPointer { p in
                slotCount.withUnsafeBufferPointer { c in
                    groupStart.withUnsafeBufferPointer { s in
                        spillStart.withUnsafeBufferPointer { ss in
                            spillValues.withUnsafeBufferPointer { sv in
                                spillIndices.withUnsafeBufferPointer { si in
                                    var spill = DSLaneSpill(start: ss.baseAddress, values: sv.baseAddress,
                                                            indices: si.baseAddress, rows: Int64(spillStart.count - 1))
                                    let run = portable || !Self.isSupported ? ds_lane_blocks_gemv_portable : ds_lane_blocks_gemv
                                    run(values.base, p.baseAddress, c.baseAddress, s.baseAddress,
                                        Int64(range.lowerBound), Int64(range.upperBound), Int64(blocks), x,
                                        Int64(inputFeatures), &spill, out)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Floats in 64-byte aligned memory, so a 16-float vector load never straddles two
/// cache lines (Swift arrays guarantee 16 bytes only).
public final class AlignedFloats: Equatable {
    public let count: Int
    let base: UnsafeMutablePointer<Float>

    public init(_ values: [Float]) {
        count = values.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(from: values, count: count)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    public var isEmpty: Bool { count == 0 }
    public subscript(i: Int) -> Float { precondition(i >= 0 && i < count, "AlignedFloats: index \(i) of \(count)"); return base[i] }
    public subscript(r: Range<Int>) -> [Float] { r.map { self[$0] } }

    public static func == (a: AlignedFloats, b: AlignedFloats) -> Bool {
        a.count == b.count && (0..<a.count).allSatisfy { a.base[$0] == b.base[$0] }
    }
}
