import CSparseKernels
import DSCore

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
/// busier than the rest keep their extra weights in the group's spill list, each added
/// to its lane by one masked FMA with a scalar load of its input: a slot padded for one
/// or two lanes costs more than their loads. Lanes with fewer weights are padded with
/// zero weights at position 0.
///
/// `out[16 g + l] = Σ_b Σ_t values[slot, l] · x[64 b + positions[slot, l]]
///                 + Σ_i spillValues[i] · x[spillIndices[i]]` (over lane position
/// `16 g + l`'s spill; `laneRows` maps positions to rows), run by the AVX-512 kernel in
/// `CSparseKernels`.
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
    /// `[m]`: the row of `values [m, k]` at each lane position (`16 g + l`), the order
    /// of `out` in `forward`.
    public let laneRows: [Int32]
    /// `[groups + 1]`: group `g`'s spilled weights are `spillStart[g]..<spillStart[g + 1]`,
    /// each for lane `spillLanes[i]` of the group.
    public let spillStart: [Int64]
    public let spillLanes: [UInt8]
    public let spillValues: [Float]
    /// Input positions (in `0..<inputFeatures`) of the spilled weights.
    public let spillIndices: [Int32]

    /// Lays out `values [m, k]` / `indices [m, k]`; in each cell at most `spillLanes`
    /// lanes spill. With `regroup`, rows are first assigned to lanes so that rows busy in
    /// the same blocks share a group (fewer padded slots); else row `r` is lane position `r`.
    public init(inputFeatures: Int, rows m: Int, fanIn k: Int, values: [Float], indices: CondensedIndices,
                spillLanes: Int = 2, regroup: Bool = true) {
        let lanes = Self.lanes, width = Self.blockWidth
        self.inputFeatures = inputFeatures
        weights = m * k
        let groups = (m + lanes - 1) / lanes, blocks = (inputFeatures + width - 1) / width
        self.groups = groups; self.blocks = blocks
        var counts = [Int32](repeating: 0, count: m * blocks)   // [row, block]
        for r in 0..<m {
            for i in 0..<k { counts[r * blocks + indices[r * k + i] / width] += 1 }
        }
        let order = regroup ? Self.groupRows(counts: counts, rows: m, blocks: blocks, spillLanes: spillLanes)
                            : (0..<(groups * lanes)).map { $0 < m ? $0 : -1 }
        var slotCount = [UInt8](repeating: 0, count: groups * blocks)
        var groupStart: [Int64] = [0]
        for g in 0..<groups {
            var slots = 0
            for b in 0..<blocks {
                let kept = Self.keptSlots(counts, order[(g * lanes)..<((g + 1) * lanes)], block: b, blocks: blocks,
                                          spillLanes: spillLanes)
                slotCount[g * blocks + b] = UInt8(kept)
                slots += kept
            }
            groupStart.append(groupStart[g] + Int64(slots))
        }
        let total = Int(groupStart[groups])
        var planValues = [Float](repeating: 0, count: total * lanes)
        var planPositions = [UInt8](repeating: 0, count: total * lanes)
        var spillStart: [Int64] = [0], spillLanes: [UInt8] = [], spillValues: [Float] = [], spillIndices: [Int32] = []
        var cellStart = [Int](repeating: 0, count: blocks)
        var filled = [Int](repeating: 0, count: lanes * blocks)
        for g in 0..<groups {
            var slot = Int(groupStart[g])
            for b in 0..<blocks { cellStart[b] = slot; slot += Int(slotCount[g * blocks + b]) }
            filled = [Int](repeating: 0, count: lanes * blocks)
            for lane in 0..<lanes where order[g * lanes + lane] >= 0 {
                let r = order[g * lanes + lane]
                for i in 0..<k {
                    let f = indices[r * k + i], b = f / width
                    let t = filled[lane * blocks + b]
                    if t < Int(slotCount[g * blocks + b]) {
                        filled[lane * blocks + b] += 1
                        planValues[(cellStart[b] + t) * lanes + lane] = values[r * k + i]
                        planPositions[(cellStart[b] + t) * lanes + lane] = UInt8(f - b * width)
                    } else {
                        spillLanes.append(UInt8(lane))
                        spillValues.append(values[r * k + i])
                        spillIndices.append(Int32(f))
                    }
                }
            }
            spillStart.append(Int64(spillValues.count))
        }
        self.slotCount = slotCount; self.groupStart = groupStart
        self.values = AlignedFloats(planValues); self.positions = planPositions
        self.spillStart = spillStart; self.spillLanes = spillLanes
        self.spillValues = spillValues; self.spillIndices = spillIndices
        laneRows = order.prefix(m).map { Int32($0) }
    }

    /// Slots of one cell: the `(spillLanes + 1)`-th largest count among the group's rows
    /// (`-1` = an empty lane) in `block`.
    static func keptSlots(_ counts: [Int32], _ rows: ArraySlice<Int>, block b: Int, blocks: Int, spillLanes: Int) -> Int {
        // Called for every cell of every proposal of `groupRows`: a stack buffer, no heap.
        let depth = min(spillLanes, lanes - 1) + 1
        return withUnsafeTemporaryAllocation(of: Int32.self, capacity: lanes) { top in   // descending
            top.initialize(repeating: 0)
            for r in rows where r >= 0 {
                var c = counts[r * blocks + b]
                for j in 0..<depth where c > top[j] { swap(&c, &top[j]) }
            }
            return Int(top[depth - 1])
        }
    }

    /// Rows in lane order (`-1` for the empty lanes at the end of the last group): a local search
    /// that swaps two rows of different groups whenever the two groups' slots do not
    /// grow, `16 m` proposals from a fixed seed, so a layer always gets the same layout.
    static func groupRows(counts: [Int32], rows m: Int, blocks: Int, spillLanes: Int) -> [Int] {
        let groups = (m + lanes - 1) / lanes, size = groups * lanes
        var order = (0..<size).map { $0 < m ? $0 : -1 }
        guard groups > 1 else { return order }
        func cost(_ g: Int) -> Int {
            (0..<blocks).reduce(0) { $0 + keptSlots(counts, order[(g * lanes)..<((g + 1) * lanes)], block: $1,
                                                    blocks: blocks, spillLanes: spillLanes) }
        }
        var groupCost = (0..<groups).map(cost)
        var rng = Xoshiro256(seed: 0x1a9e)
        for _ in 0..<(16 * m) {
            // Rows only, so the empty lanes stay at the end (past lane position m).
            let p = rng.index(below: m), q = rng.index(below: m)
            let (g, h) = (p / lanes, q / lanes)
            guard g != h else { continue }
            order.swapAt(p, q)
            let (cg, ch) = (cost(g), cost(h))
            if cg + ch <= groupCost[g] + groupCost[h] {
                groupCost[g] = cg; groupCost[h] = ch
            } else {
                order.swapAt(p, q)
            }
        }
        return order
    }

    /// Weights held in slots over slot capacity (1 = no padding).
    public var fill: Double { values.isEmpty ? 1 : Double(weights - spillValues.count) / Double(values.count) }

    /// `out [16 · groups]` for groups in `range`, by lane position (row `laneRows[p]`;
    /// lanes past `m` get 0): the AVX-512
    /// kernel, or with `portable` the plain C loop over the same layout.
    public func forward(_ x: UnsafePointer<Float>, groups range: Range<Int>, into out: UnsafeMutablePointer<Float>,
                        portable: Bool = false) {
        withExtendedLifetime(values) {
            positions.withUnsafeBufferPointer { p in
            slotCount.withUnsafeBufferPointer { c in
            groupStart.withUnsafeBufferPointer { s in
            spillStart.withUnsafeBufferPointer { ss in
            spillLanes.withUnsafeBufferPointer { sl in
            spillValues.withUnsafeBufferPointer { sv in
            spillIndices.withUnsafeBufferPointer { si in
                var spill = DSLaneSpill(start: ss.baseAddress, lanes: sl.baseAddress, values: sv.baseAddress,
                                        indices: si.baseAddress)
                let run = portable || !Self.isSupported ? ds_lane_blocks_gemv_portable : ds_lane_blocks_gemv
                run(values.base, p.baseAddress, c.baseAddress, s.baseAddress, Int64(range.lowerBound),
                    Int64(range.upperBound), Int64(blocks), x, Int64(inputFeatures), &spill, out)
            }}}}}}}
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
