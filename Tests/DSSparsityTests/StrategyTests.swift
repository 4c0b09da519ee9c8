import DSCore
@testable import DSSparsity
import Testing

/// Every registered strategy × structure through the same invariants, plus hand-worked cases.
@Suite struct StrategyTests {
    /// One strategy under one structure, as the registry builds it.
    struct Case: CustomStringConvertible {
        let strategy: any SparsityScheduler
        let kind: MaskStructureKind
        let description: String
    }

    /// Registry × structures (N:M as 2:4 and 1:3) × option variants, skipping what the
    /// registry refuses (and checking that it says why).
    static var cases: [Case] {
        var ablationOff = StrategyOptionSections()
        ablationOff.srigl.ablation = false
        var out: [Case] = []
        for name in StrategyRegistry.entries.keys.sorted() {
            for kind in MaskStructureKind.allCases {
                for (n, m) in kind == .nOfM ? [(2, 4), (1, 3)] : [(2, 4)] {
                    for (variant, options) in [("", StrategyOptionSections()), (" no ablation", ablationOff)] {
                        if !variant.isEmpty && name != "srigl" { continue }
                        if let reason = StrategyRegistry.entries[name]!.refusal(kind, options) {
                            #expect(!reason.isEmpty)
                            #expect(StrategyRegistry.make(name, structure: kind, options: options) == nil)
                            continue
                        }
                        let strategy = StrategyRegistry.make(name, structure: kind, n: n, m: m, options: options)!
                        #expect(strategy.name == name && strategy.structure.name == kind.rawValue)
                        out.append(Case(strategy: strategy, kind: kind,
                                        description: "\(name)\(variant) \(strategy.structure.label)"))
                    }
                }
            }
        }
        return out
    }

    /// (rows, columns): a linear layer, a conv layer's `[out, in·k·k]` view (54 is not
    /// a multiple of 4, so N:M rows end in a short group), and a small ViT's attention
    /// projection (`D × D`) and MLP layers (`2D × D`, `D × 2D`).
    static let shapes = [(rows: 12, columns: 40), (rows: 8, columns: 3 * 3 * 6),
                         (rows: 32, columns: 32), (rows: 64, columns: 32), (rows: 32, columns: 64)]

    /// The budget a layer gets: `floor(N · (1 − s))`, N:M's own density for N:M.
    func budget(_ c: Case, rows: Int, columns: Int, sparsity: Double) -> Int {
        if let nm = c.strategy.structure as? NOfM { return rows * columns * nm.n / nm.m }
        return Int((Double(rows * columns) * (1 - sparsity)).rounded(.down))
    }

    /// A layer with random active weights and a random dense gradient.
    func layer(_ s: any SparsityScheduler, rows: Int, columns: Int, budget: Int, seed: UInt64) throws -> LayerUpdateInput {
        var rng = Xoshiro256(seed: seed)
        let mask = try s.initialMask(name: "l", rows: rows, columns: columns, budget: budget, rng: &rng)
        let weights = mask.active.map { $0 ? rng.normal() : 0 }
        let grad = (0..<(rows * columns)).map { _ in rng.normal() }
        return LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: grad, budget: budget,
                                dropFraction: 0.3, mayAblate: true)
    }

    /// Per group of the structure, the active count.
    func groupCounts(_ mask: SparseMask, _ structure: any MaskStructure) -> [Int] {
        structure.groups(rows: mask.rows, columns: mask.columns).map { range in range.filter { mask.active[$0] }.count }
    }

    /// The mask has the structure's pattern for its count: every group holds what the
    /// structure gives it.
    func hasPattern(_ mask: SparseMask, _ structure: any MaskStructure) -> Bool {
        groupCounts(mask, structure) == structure.groupCounts(rows: mask.rows, columns: mask.columns, total: mask.count)
    }

    @Test(arguments: [0.5, 0.9, 0.99])
    func invariantsHoldForEveryStrategyStructureAndShape(sparsity: Double) throws {
        let cases = Self.cases
        #expect(cases.count >= 13, "registry × structures")
        for c in cases {
            let s = c.strategy, structure = s.structure
            for shape in Self.shapes {
                let budget = budget(c, rows: shape.rows, columns: shape.columns, sparsity: sparsity)
                if c.kind == .constantFanIn && budget / shape.rows == 0 {
                    #expect(throws: SparsityError.self) { _ = try layer(s, rows: shape.rows, columns: shape.columns, budget: budget, seed: 1) }
                    continue
                }
                var input = try layer(s, rows: shape.rows, columns: shape.columns, budget: budget, seed: 1)
                let initial = input.mask
                let full = shape.rows * shape.columns
                let structured = structure.groupCounts(rows: shape.rows, columns: shape.columns, total: budget).reduce(0, +)
                if s is GMPStrategy {
                    #expect(initial.count == full, "\(c): gradual pruning starts dense")
                } else {
                    #expect(initial.count == structured && hasPattern(initial, structure), "\(c): initial mask holds the budget in the pattern")
                    #expect(structured <= budget || c.kind == .nOfM, "\(c): within the budget")
                }
                var rng = Xoshiro256(seed: 2)
                for step in 0..<4 {
                    input.pruningProgress = Double(step + 1) / 4
                    let result = s.update(input, rng: &rng)
                    let next = result.mask
                    let context = "\(c) \(shape) sparsity \(sparsity) update \(step)"
                    if let srigl = s as? SRigLStrategy, c.kind == .constantFanIn {
                        let active = (0..<shape.rows).filter { !result.ablatedRows.contains($0) }
                        let fanIn = budget / active.count
                        #expect(active.allSatisfy { next.rowCounts[$0] == fanIn }, "\(context): every active row has k'")
                        #expect(result.ablatedRows.allSatisfy { next.rowCounts[$0] == 0 }, "\(context): ablated rows empty")
                        #expect(next.count == active.count * fanIn && next.count <= budget, "\(context): (nOut − |A|)·k' ≤ D")
                        if !srigl.ablation { #expect(result.ablatedRows.isEmpty) }
                    } else if s is GMPStrategy {
                        let target = GMPStrategy.targetCount(total: full, budget: budget, progress: input.pruningProgress)
                        let expected = structure.groupCounts(rows: shape.rows, columns: shape.columns, total: target).reduce(0, +)
                        #expect(next.count == expected && hasPattern(next, structure), "\(context): pruned to the schedule's count")
                        #expect(next.active.indices.allSatisfy { !next.active[$0] || input.mask.active[$0] }, "\(context): nothing regrows")
                        if step == 3 { #expect(next.count == structured, "\(context): the target at the end") }
                    } else {
                        #expect(result.ablatedRows.isEmpty)
                        #expect(next.count == input.mask.count && hasPattern(next, structure), "\(context): count and pattern preserved")
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
        for c in Self.cases {
            let a = try layer(c.strategy, rows: 12, columns: 40, budget: 48, seed: 5)
            let b = try layer(c.strategy, rows: 12, columns: 40, budget: 48, seed: 5)
            #expect(a.mask == b.mask, "\(c)")
            var r1 = Xoshiro256(seed: 6), r2 = Xoshiro256(seed: 6)
            #expect(c.strategy.update(a, rng: &r1) == c.strategy.update(b, rng: &r2), "\(c)")
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
            // Short inputs and long ones (the C selection's sampled bound).
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

    /// The magnitude forms (heap, quickselect, long and sampled paths, and the sampled
    /// bounds' fallbacks) pick the winners of a full sort on `|v|`, and the cut marks
    /// exactly them.
    @Test func magnitudeSelectionsMatchAFullSort() {
        var rng = Xoshiro256(seed: 9)
        for trial in 0..<44 {
            let n = trial == 40 ? 65_536 : trial == 41 ? 722 : trial == 42 ? 10_000 : trial == 43 ? 100_000
                : [1 + rng.index(below: 800), 4096 + rng.index(below: 9000), 40_000 + rng.index(below: 30_000)][trial % 3]
            var v: [Float] = (0..<n).map { _ in
                let r = rng.index(below: 20)
                return r == 0 ? .nan : r == 1 ? -0.0 : trial % 2 == 0 ? Float(r % 7) - 3 : rng.normal()
            }
            var k = [rng.index(below: n + 2), rng.index(below: max(n / 16, 1)) + 1, n / 5][trial % 3 == 2 ? trial % 2 + 1 : rng.index(below: 3)]
            if trial == 40 {
                // Large values exactly at the sampled positions (every 32nd) and too few of
                // them: the sample's bound lets 2048 keys pass, fewer than k, so the full
                // selection must run.
                for i in 0..<n { v[i] = i % 32 == 0 ? 100 + Float(i % 7) : rng.uniformFloat() }
                k = 5000
            }
            if trial == 41 {
                // The same for a short input: large values at the 64 sampled candidates
                // (every n/64-th, in order), so only the ten sampled at or above the
                // bound pass, fewer than k.
                for i in 0..<n { v[i] = (0..<64).contains { $0 * n / 64 == i } ? 100 + Float(i % 5) : rng.uniformFloat() }
                k = 40
            }
            if trial == 43 {
                // Long enough for the cut's scan in parts, winners in both halves.
                k = 3000
            }
            if trial == 42 {
                // The same for the cut's smaller sample (512 of 10,000 keys, every 19th).
                for i in 0..<n { v[i] = i % 19 == 0 && i / 19 < 512 ? 100 + Float(i % 7) : rng.uniformFloat() }
                k = 1000
            }
            let m = { (i: Int) -> Float in v[i].isNaN ? -1 : abs(v[i]) }
            let expected = Set((0..<n).sorted { m($0) > m($1) || (m($0) == m($1) && $0 < $1) }.prefix(k))
            let candidates = trial == 41 ? Array(0..<n) : Array(0..<n).shuffled(using: &rng)
            var got: [Int] = []
            v.withUnsafeBufferPointer { vb in
                candidates.withUnsafeBufferPointer { Selection.largestMagnitudes(k, of: $0, in: vb.baseAddress!) { got.append($0) } }
            }
            #expect(got.count == expected.count && Set(got).symmetricDifference(expected).isEmpty, "trial \(trial): n \(n), k \(k)")
            // The cut, on one thread and on two (long inputs are scanned in parts).
            for threads in [1, 2] {
                var (key, ties) = Parallel.withThreads(threads) { v.withUnsafeBufferPointer { Selection.magnitudeCut(k, of: $0) } }
                var marked = Set<Int>()
                for i in 0..<n {
                    let mk = Selection.magnitudeKey(v[i])
                    if mk > key || (mk == key && ties > 0) { marked.insert(i); if mk == key { ties -= 1 } }
                }
                #expect(marked.symmetricDifference(expected).isEmpty, "trial \(trial): n \(n), k \(k), \(threads) threads")
            }
        }
    }

    /// Long inputs of equal scores (an all-zero gradient): every key passes the sampled
    /// bound, and the selections still end, taking the lowest indices.
    @Test func equalScoresOnLongInputsTakeTheLowestIndices() {
        let n = 40_000, k = 1000
        let zeros = [Float](repeating: 0, count: n)
        #expect(Selection.largest(k, of: Array(0..<n)) { zeros[$0] } == Array(0..<k))
        var got: [Int] = []
        zeros.withUnsafeBufferPointer { z in
            Array(0..<n).withUnsafeBufferPointer { Selection.largestMagnitudes(k, of: $0, in: z.baseAddress!) { got.append($0) } }
        }
        #expect(got.sorted() == Array(0..<k))
        let (key, ties) = zeros.withUnsafeBufferPointer { Selection.magnitudeCut(k, of: $0) }
        #expect(key == Selection.magnitudeKey(0) && ties == k)
        // RigL on a layer this size with a zero dense gradient grows the lowest free positions.
        var rng = Xoshiro256(seed: 12)
        let rows = 100, columns = 400
        let mask = try! Unstructured().randomMask(name: "l", rows: rows, columns: columns, budget: n / 10, rng: &rng)
        let weights = (0..<n).map { mask.active[$0] ? rng.normal() : 0 }
        let input = LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: zeros, budget: n / 10,
                                     dropFraction: 0.3)
        let result = RigLStrategy().update(input, rng: &rng)
        #expect(result.mask.count == mask.count)
    }

    /// RigL's and SRigL's growth by `|g|` (groups filled in parallel) gives the mask the
    /// serial rule with `largestSet` gives, on 1 and 2 threads, per row and unstructured.
    @Test func growthByGradientMatchesTheSerialRuleOnAnyThreadCount() throws {
        var rng = Xoshiro256(seed: 10)
        let rows = 64, columns = 300, budget = rows * 30
        for structure in [ConstantFanIn(), Unstructured()] as [any MaskStructure] {
            let mask = try structure.randomMask(name: "l", rows: rows, columns: columns, budget: budget, rng: &rng)
            // Few distinct gradient values, so ties are common; some weights exactly 0.
            let weights = (0..<(rows * columns)).map { i in mask.active[i] && rng.index(below: 10) > 0 ? rng.normal() : 0 }
            let gradient = (0..<(rows * columns)).map { _ in Float(rng.index(below: 9)) - 4 }
            let input = LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: gradient, budget: budget,
                                         dropFraction: 0.3)
            let serial = input.dropAndGrow(in: structure) { free, count in Selection.largestSet(count, of: free) { abs(gradient[$0]) } }
            for threads in [1, 2] {
                let parallel = Parallel.withThreads(threads) { input.dropAndGrow(in: structure, growingLargest: gradient) }
                #expect(parallel == serial, "\(structure.name), \(threads) threads")
            }
            #expect(serial.mask.count == budget, "\(structure.name)")
        }
    }

    /// SRigL's update (one selection of the largest |w| shared by salience and the kept
    /// weights, rows counted in parallel) against the steps written out with plain
    /// selections: salient weights, the ablation threshold, then drop-and-grow. Zero
    /// weights, a NaN weight in some trials and few distinct gradient values (ties at
    /// every cut).
    @Test func sriglUpdateMatchesItsStepsWrittenOut() throws {
        var rng = Xoshiro256(seed: 11)
        for trial in 0..<8 {
            // Trials 6 and 7: 39,000 positions, where the gradient cut takes the sampled bound.
            let rows = trial < 6 ? 48 : 130, columns = trial < 6 ? 200 : 300, budget = rows * 24
            let mask = try ConstantFanIn().randomMask(name: "l", rows: rows, columns: columns, budget: budget, rng: &rng)
            var weights = (0..<(rows * columns)).map { i in mask.active[i] && rng.index(below: 8) > 0 ? rng.normal() : 0 }
            // Trials 0–2: rows 0–5 keep three large weights, the rest tiny, and no gradient,
            // so they fall below the salience threshold while holding weights among the
            // largest (the kept weights are then selected again without those rows).
            let tiny = trial < 3 ? 6 * columns : 0
            for r in 0..<(tiny / columns) {
                for (j, i) in mask.activeIndices.filter({ $0 / columns == r }).enumerated() {
                    weights[i] = j < 3 ? 10 + Float(j) : weights[i] * 1e-4
                }
            }
            if trial % 2 == 1 { weights[mask.activeIndices[trial * 7]] = .nan }
            let gradient = (0..<(rows * columns)).map { i in i < tiny ? 0 : Float(rng.index(below: 7)) - 3 }
            let input = LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: gradient, budget: budget,
                                         dropFraction: 0.3, mayAblate: true)
            let result = Parallel.withThreads(2) {
                SRigLStrategy().update(input, rng: &rng)
            }

            let (keep, drop) = input.keepAndDrop
            let byWeight = Set(Selection.largestSet(keep, of: mask.activeIndices) { abs(weights[$0]) })
            let byGradient = Set(Selection.largestSet(drop, of: Array(0..<(rows * columns))) { abs(gradient[$0]) })
            let salient = (0..<rows).map { r in
                ((r * columns)..<((r + 1) * columns)).filter { byWeight.contains($0) || byGradient.contains($0) }.count
            }
            // The counts themselves (a position salient both ways counts once).
            #expect(SRigLStrategy.salientPerRow(input, keep: keep, drop: drop) == salient, "trial \(trial): salient counts")
            var threshold = max(1, Int((0.3 * Double(budget / rows)).rounded(.down)))
            threshold = min(threshold, salient.sorted(by: >)[budget / columns])
            let ablated = (0..<rows).filter { salient[$0] < threshold }
            let fanIn = budget / (rows - ablated.count)
            let counts = (0..<rows).map { ablated.contains($0) ? 0 : fanIn }
            let expected = input.dropAndGrow(in: ConstantFanIn(), counts: counts, keep: keep, growingLargest: gradient)
            #expect(ablated.isEmpty == (trial >= 3), "trial \(trial): \(ablated.count) rows ablated")
            #expect(result.ablatedRows == ablated, "trial \(trial)")
            let differing = zip(result.mask.active, expected.mask.active).filter { $0 != $1 }.count
            #expect(differing == 0, "trial \(trial): \(differing) positions differ")
        }
    }
}
