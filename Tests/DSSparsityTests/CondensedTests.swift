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

    @Test(arguments: [1, 3, 16, 64, 70, 130])
    func kernelsEqualTheReference(batch: Int) throws {
        for threads in [1, 2] {
            for (rows, columns, k) in [(40, 96, 10), (33, 300, 17), (8, 70_000, 5)] {
                let (c, _, _) = try layer(rows: rows, columns: columns, k: k, ablated: [0, 5], seed: UInt64(rows))
                let x = randomTensor([batch, columns], seed: 9).storage
                let fast = Parallel.withThreads(threads) { c.forward(x, batch: batch) }
                let slow = c.referenceForward(x, batch: batch)
                let worst = zip(fast, slow).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                #expect(worst < 1e-5, "\(rows)x\(columns) k=\(k) batch \(batch) threads \(threads): \(worst)")
                // Ablated neurons output their bias.
                #expect(fast[5] == c.bias[5] && fast[0] == c.bias[0])
            }
        }
    }

    @Test(arguments: [1, 20, 64, 100])
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
        let y = Parallel.withThreads(2) { csr.forward(x, batch: batch) }
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
