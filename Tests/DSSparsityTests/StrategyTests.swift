import DSCore
import DSSparsity
import Testing

/// Every strategy through the same invariants, plus hand-worked cases.
@Suite struct StrategyTests {
    static let strategies: [any SparsityScheduler] = [
        StaticStrategy(), StaticStrategy(constantFanIn: true), SETStrategy(), RigLStrategy(),
        SRigLStrategy(), SRigLStrategy(ablation: false),
    ]
    /// (rows, columns): a linear layer and a conv layer's `[out, in·k·k]` view.
    static let shapes = [(rows: 12, columns: 40), (rows: 8, columns: 3 * 3 * 6)]

    /// A layer at `sparsity` with random active weights and a random dense gradient.
    func layer(_ s: any SparsityScheduler, rows: Int, columns: Int, sparsity: Double, seed: UInt64)
        throws -> (LayerUpdateInput, Int) {
        var rng = Xoshiro256(seed: seed)
        let budget = Int((Double(rows * columns) * (1 - sparsity)).rounded(.down))
        let mask = try s.initialMask(name: "l", rows: rows, columns: columns, budget: budget, rng: &rng)
        let weights = mask.active.map { $0 ? rng.normal() : 0 }
        let grad = (0..<(rows * columns)).map { _ in rng.normal() }
        return (LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: grad, budget: budget,
                                 dropFraction: 0.3, mayAblate: true), budget)
    }

    @Test(arguments: [0.5, 0.9, 0.99])
    func invariantsHoldForEveryStrategyAndShape(sparsity: Double) throws {
        for s in Self.strategies {
            for shape in Self.shapes {
                let constantFanIn = s is SRigLStrategy || (s as? StaticStrategy)?.constantFanIn == true
                let budget = Int((Double(shape.rows * shape.columns) * (1 - sparsity)).rounded(.down))
                if constantFanIn && budget / shape.rows == 0 {
                    #expect(throws: SparsityError.self) { _ = try layer(s, rows: shape.rows, columns: shape.columns, sparsity: sparsity, seed: 1) }
                    continue
                }
                var (input, _) = try layer(s, rows: shape.rows, columns: shape.columns, sparsity: sparsity, seed: 1)
                let initial = input.mask
                if constantFanIn {
                    #expect(Set(initial.rowCounts) == [budget / shape.rows], "\(s.name): constant fan-in at init")
                } else {
                    #expect(initial.count == budget, "\(s.name): initial mask holds the budget")
                }
                var rng = Xoshiro256(seed: 2)
                for step in 0..<4 {
                    let result = s.update(input, rng: &rng)
                    let next = result.mask
                    let context = "\(s.name) \(shape) sparsity \(sparsity) update \(step)"
                    if let srigl = s as? SRigLStrategy {
                        let active = (0..<shape.rows).filter { !result.ablatedRows.contains($0) }
                        let fanIn = budget / active.count
                        #expect(active.allSatisfy { next.rowCounts[$0] == fanIn }, "\(context): every active row has k'")
                        #expect(result.ablatedRows.allSatisfy { next.rowCounts[$0] == 0 }, "\(context): ablated rows empty")
                        #expect(next.count == active.count * fanIn && next.count <= budget, "\(context): (nOut − |A|)·k' ≤ D")
                        if !srigl.ablation { #expect(result.ablatedRows.isEmpty) }
                    } else {
                        #expect(next.count == input.mask.count, "\(context): active count preserved")
                    }
                    // Carry on as training would: grown weights start at 0, others keep theirs.
                    var weights = input.weights
                    for i in weights.indices where !next.active[i] { weights[i] = 0 }
                    for i in weights.indices where next.active[i] && !input.mask.active[i] { weights[i] = 0 }
                    var g = Xoshiro256(seed: UInt64(10 + step))
                    for i in weights.indices where next.active[i] { weights[i] += 0.1 * g.normal() }
                    input.mask = next
                    input.weights = weights
                    input.denseGradient = input.denseGradient.map { _ in g.normal() }
                }
                if !s.isDynamic { #expect(input.mask == initial) }
            }
        }
    }

    @Test func aSeedReproducesTheMasks() throws {
        for s in Self.strategies {
            let (a, _) = try layer(s, rows: 12, columns: 40, sparsity: 0.9, seed: 5)
            let (b, _) = try layer(s, rows: 12, columns: 40, sparsity: 0.9, seed: 5)
            #expect(a.mask == b.mask)
            var r1 = Xoshiro256(seed: 6), r2 = Xoshiro256(seed: 6)
            #expect(s.update(a, rng: &r1) == s.update(b, rng: &r2))
        }
    }

    @Test func riglGrowsExactlyTheLargestGradients() {
        // 2×4 layer, active {0, 1, 4, 5}; f = 0.5 drops the two smallest |w| (1 and 4).
        let mask = SparseMask(rows: 2, columns: 4, activeIndices: [0, 1, 4, 5])
        let input = LayerUpdateInput(name: "l", mask: mask, weights: [0.9, 0.1, 0, 0, -0.2, -0.8, 0, 0],
                                     denseGradient: [0, 5, 0.3, -4, 0.2, 0, 3, 0.1], budget: 4, dropFraction: 0.5)
        var rng = Xoshiro256(seed: 0)
        let next = RigLStrategy().update(input, rng: &rng).mask
        // Not kept: 1, 2, 3, 4, 6, 7; largest |g| among them: 1 (5) and 3 (−4).
        #expect(next.activeIndices == [0, 1, 3, 5])
    }

    @Test func setGrowsUniformly() {
        // One row of 20, 10 active with distinct |w|; f = 0.5 keeps the 5 largest and
        // grows 5 of the 15 other positions. Over 3000 updates each of the 15 should be
        // grown about 1000 times; χ² with 14 degrees of freedom stays below 36.1 (p = 0.001).
        let mask = SparseMask(rows: 1, columns: 20, activeIndices: Array(0..<10))
        let weights = (0..<20).map { $0 < 10 ? Float($0 + 1) : 0 }
        let input = LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: [Float](repeating: 0, count: 20),
                                     budget: 10, dropFraction: 0.5)
        var rng = Xoshiro256(seed: 42)
        var counts = [Int](repeating: 0, count: 20)
        for _ in 0..<3000 {
            let next = SETStrategy().update(input, rng: &rng).mask
            #expect(Array(next.active[5..<10]) == [true, true, true, true, true])
            for i in next.activeIndices where !(5..<10).contains(i) { counts[i] += 1 }
        }
        let free = Array(0..<5) + Array(10..<20)
        let expected = 3000.0 * 5 / 15
        let chi2 = free.reduce(0.0) { $0 + pow(Double(counts[$1]) - expected, 2) / expected }
        #expect(chi2 < 36.1, "χ² = \(chi2), counts \(free.map { counts[$0] })")
    }

    /// A 4×6 layer with budget 12 (k0 = 3), f = 0.5, γ_sal = 0.7, worked out by hand:
    ///
    /// - nKeep = 6 largest |w|: (0,0) (0,1) (0,2) (2,3) (2,4) (3,3); nDrop = 6 largest
    ///   |g|: (0,3) (0,4) (2,0) (3,0) (3,1) (1,5). Salient counts c = [5, 1, 3, 3].
    /// - thr = max(1, floor(0.7·3)) = 2; mMin = floor(12/6) = 2 and the 3rd largest c is
    ///   3 ≥ 2, so thr stays 2: row 1 (c = 1) is ablated. k' = floor(12/3) = 4.
    /// - Kept (top 6 |w| outside row 1): row 0 {0,1,2}, row 2 {3,4}, row 3 {3}.
    /// - Grown by |g| (ties to the lower index): row 0 +{3}; row 2 +{0, 1};
    ///   row 3 +{0, 1, 2}.
    @Test func sriglHandWorkedLayer() {
        let c = 6
        var w = [Float](repeating: 0, count: 24)
        for (r, cols, vals) in [(0, [0, 1, 2], [0.9, 0.8, 0.7]), (1, [0, 1, 2], [0.05, 0.04, 0.03]),
                                (2, [3, 4, 5], [0.6, 0.5, 0.02]), (3, [3, 4, 5], [0.4, 0.3, 0.01])] as [(Int, [Int], [Float])] {
            for (col, v) in zip(cols, vals) { w[r * c + col] = v }
        }
        var g = [Float](repeating: 0, count: 24)
        for (pos, v) in [(0 * c + 3, 0.95), (0 * c + 4, 0.9), (2 * c + 0, 0.85), (3 * c + 0, 0.8),
                         (3 * c + 1, 0.75), (1 * c + 5, 0.1)] as [(Int, Float)] { g[pos] = v }
        let mask = SparseMask(rows: 4, columns: 6, active: w.map { $0 != 0 })
        let input = LayerUpdateInput(name: "l", mask: mask, weights: w, denseGradient: g, budget: 12,
                                     dropFraction: 0.5, mayAblate: true)
        var rng = Xoshiro256(seed: 0)
        let result = SRigLStrategy(salienceThreshold: 0.7).update(input, rng: &rng)
        #expect(result.ablatedRows == [1])
        let expected = [0, 1, 2, 3].map { 0 * c + $0 } + [0, 1, 3, 4].map { 2 * c + $0 } + [0, 1, 2, 3].map { 3 * c + $0 }
        #expect(result.mask.activeIndices == expected)
        let change = MaskChange(from: mask, to: result.mask, ablatedRows: result.ablatedRows)
        #expect(change.dropped == [6, 7, 8, 17, 22, 23])
        #expect(change.grown == [3, 12, 13, 18, 19, 20])

        // With γ_sal = 0.3 the threshold is max(1, floor(0.9)) = 1: nothing is ablated
        // and k' stays 3.
        let plain = SRigLStrategy(salienceThreshold: 0.3).update(input, rng: &rng)
        #expect(plain.ablatedRows.isEmpty && Set(plain.mask.rowCounts) == [3])
    }

    @Test func sriglThresholdIsLoweredSoFanInNeverExceedsTheRow() {
        // 4×2 layer with budget 6: mMin = floor(6/2) = 3, so at least 4 rows must stay
        // active. f = 0.25 keeps the 3 largest |w| (rows 0–2) and adds the largest |g|
        // (row 0), so salient counts are [2, 1, 1, 0]. With γ_sal = 2 (thr 2) the 4th
        // largest count, 0, is below thr: thr falls to 0 and no row is ablated.
        let mask = SparseMask(rows: 4, columns: 2, activeIndices: [0, 2, 4, 6])
        let input = LayerUpdateInput(name: "l", mask: mask, weights: [1, 0, 0.5, 0, 0.4, 0, 0.3, 0],
                                     denseGradient: [0, 0.9, 0, 0, 0, 0, 0, 0], budget: 6,
                                     dropFraction: 0.25, mayAblate: true)
        var rng = Xoshiro256(seed: 0)
        let result = SRigLStrategy(salienceThreshold: 2).update(input, rng: &rng)
        #expect(result.ablatedRows.isEmpty)
        #expect(Set(result.mask.rowCounts) == [1])
    }
}

import Foundation

/// Top-k selection against a full sort: same indices in the same order, ties to the
/// lower index, NaN below every number.
@Suite struct SelectionTests {
    @Test func largestMatchesAFullSort() {
        var rng = Xoshiro256(seed: 8)
        for trial in 0..<72 {
            // Short inputs (quickselect) and long ones (the radix selection).
            let n = trial < 60 ? 1 + rng.index(below: 300) : 4096 + rng.index(below: 6000)
            // Few distinct values, so ties are common; some NaN; in the long inputs also
            // signed values and both zeros.
            let scores: [Float] = (0..<n).map { _ in
                let r = rng.index(below: 12)
                if trial >= 60 && trial % 2 == 0 { return r == 0 ? -0.0 : r == 1 ? .nan : rng.normal() * 1e-3 }
                return r == 0 ? .nan : Float(r % (trial % 5 + 2))
            }
            let candidates = Array(0..<n).shuffled(using: &rng)
            let k = rng.index(below: n + 2)
            let key = { (i: Int) -> Float in scores[i].isNaN ? -.infinity : scores[i] }
            let expected = Array(candidates.sorted { key($0) > key($1) || (key($0) == key($1) && $0 < $1) }.prefix(k))
            #expect(Selection.largest(k, of: candidates) { scores[$0] } == expected, "trial \(trial): n \(n), k \(k)")
            // The unsorted form: the same winners.
            let unsorted = Selection.largestSet(k, of: candidates) { scores[$0] }
            #expect(unsorted.count == expected.count && Set(unsorted) == Set(expected), "trial \(trial): n \(n), k \(k)")
        }
    }
}
