import DSCore
import DSSparsity
import DSTestSupport
import Testing

@Suite struct CondensedTests {
    /// A constant fan-in layer with some ablated rows.
    func layer(rows: Int, columns: Int, k: Int, ablated: Set<Int> = [], seed: UInt64) throws -> (CondensedLinear, [Float], SparseMask) {
        var rng = Xoshiro256(seed: seed)
        var indices: [Int] = []
        for r in 0..<rows where !ablated.contains(r) {
            indices += Selection.random(k, of: Array(0..<columns), using: &rng).map { r * columns + $0 }
        }
        let mask = SparseMask(rows: rows, columns: columns, activeIndices: indices)
        let weight = (0..<(rows * columns)).map { mask.active[$0] ? rng.normal() : 0 }
        let bias = (0..<rows).map { _ in rng.normal() }
        return (try CondensedLinear(name: "l", weight: weight, mask: mask, bias: bias), weight, mask)
    }

    /// Largest `|a − b| / max(1, |b|)`.
    /// Shapes covering 64- and 32-column tiles, partial input blocks, 16- and 32-bit indices.
    let shapes = [(40, 96, 10), (33, 300, 17), (21, 1500, 40), (8, 70_000, 5)]

    // Batches hit every column path: 64- or 32-wide tiles, 16-wide, single columns.
    @Test(arguments: [1, 3, 16, 20, 50, 64, 70, 130])
    func kernelsEqualTheReference(batch: Int) throws {
        for threads in [1, 2] {
            for (rows, columns, k) in shapes {
                let (c, _, _) = try layer(rows: rows, columns: columns, k: k, ablated: [0, 5], seed: UInt64(rows))
                let x = randomTensor([batch, columns], seed: 9).storage
                let fast = Parallel.withThreads(threads) { c.forward(x, batch: batch) }
                let slow = c.referenceForward(x, batch: batch)
                #expect(worstRelativeDifference(fast, slow) < 1e-5, "\(rows)x\(columns) k=\(k) batch \(batch) threads \(threads)")
                // Ablated neurons output their bias.
                #expect(fast[5] == c.bias[5] && fast[0] == c.bias[0])
            }
        }
    }

    @Test func batchOnePathsAgree() throws {
        for (rows, columns, k) in shapes {
            let (c, _, _) = try layer(rows: rows, columns: columns, k: k, ablated: [0, 5], seed: UInt64(columns))
            let x = randomTensor([1, columns], seed: 3).storage
            let slow = c.referenceForward(x, batch: 1)
            var gather = [Float](repeating: 0, count: rows)
            x.withUnsafeBufferPointer { c.forwardOne($0.baseAddress!, into: &gather, laneBlocks: false) }
            #expect(worstRelativeDifference(gather, slow) < 1e-5, "gather-dot \(rows)x\(columns)")
            // The lane-block layout, in plain C and (where the CPU has it) AVX-512.
            var kernels = [true]
            if LaneBlockPlan.isSupported { kernels.append(false) }
            let layouts = [(0, true), (2, true), (16, true), (2, false)]   // (spilling lanes, regroup)
            for (portable, (spillLanes, regroup)) in kernels.flatMap({ p in layouts.map { (p, $0) } }) {
                let plan = LaneBlockPlan(inputFeatures: columns, rows: c.activeRows.count, fanIn: k,
                                         values: c.values, indices: c.indices, spillLanes: spillLanes, regroup: regroup)
                var out = [Float](repeating: .nan, count: plan.groups * LaneBlockPlan.lanes)
                x.withUnsafeBufferPointer { plan.forward($0.baseAddress!, groups: 0..<plan.groups, into: &out, portable: portable) }
                var y = c.bias
                for (p, r) in plan.laneRows.enumerated() { y[Int(c.activeRows[Int(r)])] += out[p] }
                #expect(plan.laneRows.sorted() == (0..<Int32(c.activeRows.count)).map { $0 }, "lanes hold every row once")
                #expect(worstRelativeDifference(y, slow) < 1e-5, "lane blocks \(rows)x\(columns), portable \(portable), spill \(spillLanes), regroup \(regroup)")
                #expect(out[c.activeRows.count...].allSatisfy { $0 == 0 }, "lanes past the last neuron stay 0")
            }
        }
    }

    @Test func laneBlockLayoutByHand() {
        // Row 0 reads inputs 1 and 65 (blocks 0 and 1), row 1 reads 2 and 3 (block 0).
        let plan = LaneBlockPlan(inputFeatures: 70, rows: 2, fanIn: 2, values: [10, 11, 20, 21],
                                 indices: CondensedIndices([1, 65, 2, 3], inputFeatures: 70), spillLanes: 0)
        #expect(plan.groups == 1 && plan.blocks == 2)
        #expect(plan.slotCount == [2, 1] && plan.groupStart == [0, 3])
        func lanes(_ slot: Int) -> ([Float], [UInt8]) {
            (Array(plan.values[(slot * 16)..<(slot * 16 + 2)]), Array(plan.positions[(slot * 16)..<(slot * 16 + 2)]))
        }
        #expect(lanes(0) == ([10, 20], [1, 2]))
        #expect(lanes(1) == ([0, 21], [0, 3]))   // lane 0 padded with a zero weight
        #expect(lanes(2) == ([11, 0], [1, 0]))   // input 65 is position 1 of block 1
        #expect(plan.fill == 4.0 / 48 && plan.spillValues.isEmpty)
        // Letting one lane per cell spill: block 0 keeps 1 slot (row 1's second weight
        // spills), block 1 keeps none (row 0's only weight there spills).
        let spilling = LaneBlockPlan(inputFeatures: 70, rows: 2, fanIn: 2, values: [10, 11, 20, 21],
                                     indices: CondensedIndices([1, 65, 2, 3], inputFeatures: 70), spillLanes: 1)
        #expect(spilling.slotCount == [1, 0] && spilling.groupStart == [0, 1])
        #expect(spilling.spillStart == [0, 2] && spilling.spillLanes == [0, 1])
        #expect(spilling.spillValues == [11, 21] && spilling.spillIndices == [65, 3])
        let x = (0..<70).map { Float($0) }
        var out = [Float](repeating: .nan, count: 16)
        x.withUnsafeBufferPointer { spilling.forward($0.baseAddress!, groups: 0..<1, into: &out) }
        #expect(out[0] == 10 * 1 + 11 * 65 && out[1] == 20 * 2 + 21 * 3)
    }

    @Test func regroupingRowsIntoLanesSavesSlots() throws {
        let (c, _, _) = try layer(rows: 256, columns: 640, k: 64, seed: 12)
        func slots(_ regroup: Bool) -> Int {
            LaneBlockPlan(inputFeatures: 640, rows: 256, fanIn: 64, values: c.values, indices: c.indices,
                          regroup: regroup).values.count / LaneBlockPlan.lanes
        }
        #expect(slots(true) < slots(false))
    }

    @Test func featureMajorColumnsEqualTheReference() throws {
        // A row stride wider than the columns used, as in a convolution's column chunk.
        let (c, _, _) = try layer(rows: 19, columns: 130, k: 9, ablated: [4], seed: 6)
        let columns = 83, ld = 97
        let x = randomTensor([130, ld], seed: 8).storage
        var y = [Float](repeating: .nan, count: 19 * ld)
        x.withUnsafeBufferPointer { c.forwardColumns($0.baseAddress!, ldCol: ld, columns: columns, into: &y, ldY: ld) }
        for col in 0..<columns {
            let slow = c.referenceForward((0..<130).map { x[$0 * ld + col] }, batch: 1)
            #expect(worstRelativeDifference((0..<19).map { y[$0 * ld + col] }, slow) < 1e-5, "column \(col)")
        }
    }

    @Test(arguments: [1, 20, 64, 100, 290])
    func csrEqualsTheReference(batch: Int) throws {
        // An unstructured mask (rows of different lengths, one empty).
        var rng = Xoshiro256(seed: 4)
        let rows = 30, columns = 200
        var active = (0..<(rows * columns)).map { _ in rng.uniformFloat() < 0.1 }
        for c in 0..<columns { active[7 * columns + c] = false }
        let mask = SparseMask(rows: rows, columns: columns, active: active)
        let weight = (0..<(rows * columns)).map { active[$0] ? rng.normal() : 0 }
        let bias = (0..<rows).map { _ in rng.normal() }
        let csr = CSRMatrix(weight: weight, mask: mask, bias: bias)
        let x = randomTensor([batch, columns], seed: 5).storage
        let y = Parallel.withThreads(2) { csr.forward(x, batch: batch) }   // batch > 1 runs forwardColumns
        for b in 0..<batch {
            for r in 0..<rows {
                var s = Double(bias[r])
                for c in 0..<columns { s += Double(weight[r * columns + c]) * Double(x[b * columns + c]) }
                #expect(abs(Double(y[b * rows + r]) - s) < 1e-4 * max(1, abs(s)))
            }
        }
    }

    @Test func condensingRoundTripsAndPicksTheIndexWidth() throws {
        let (c, weight, _) = try layer(rows: 12, columns: 50, k: 7, ablated: [3], seed: 2)
        #expect(c.denseWeight == weight)
        #expect(c.activeRows.count == 11 && c.fanIn == 7)
        if case .narrow = c.indices {} else { Issue.record("50 inputs fit 16-bit indices") }
        let (wide, _, _) = try layer(rows: 2, columns: 70_000, k: 3, seed: 3)
        if case .wide = wide.indices {} else { Issue.record("70000 inputs need 32-bit indices") }
    }

    @Test func aMaskWithoutConstantFanInIsRejectedNamingTheRows() {
        let mask = SparseMask(rows: 3, columns: 4, activeIndices: [0, 1, 4, 5, 8])
        do {
            _ = try CondensedLinear(name: "layer2.0.conv1", weight: [Float](repeating: 1, count: 12), mask: mask, bias: nil)
            Issue.record("accepted")
        } catch let e as SparsityError {
            #expect(e.message.contains("layer2.0.conv1") && e.message.contains("row 2 has 1"))
        } catch { Issue.record("\(error)") }
    }
}
