import DSCore
import DSSparsity
import Testing

/// Mask structures, N:M updates, gradual magnitude pruning and SNIP, worked by hand.
@Suite struct StructureTests {
    @Test func groupsCoverEveryPositionOnce() {
        let structures: [any MaskStructure] = [Unstructured(), ConstantFanIn(), NOfM(n: 2, m: 4), NOfM(n: 1, m: 10)]
        for structure in structures {
            for (rows, columns) in [(3, 8), (2, 54), (5, 784)] {
                let flat = structure.groups(rows: rows, columns: columns).flatMap { Array($0) }
                #expect(flat == Array(0..<(rows * columns)), "\(structure.label) \(rows)x\(columns)")
            }
        }
        // 1:10 on a 784-wide row: 78 runs of 10 and one of 4, one weight each.
        let counts = NOfM(n: 1, m: 10).groupCounts(rows: 1, columns: 784, total: 79)
        #expect(counts.count == 79 && counts.allSatisfy { $0 == 1 })
        #expect(NOfM(n: 1, m: 10).budget(rows: 1, columns: 784) == 79)
        // 3:8 on 12 columns: a run of 8 holds 3, the short run of 4 holds 3 too.
        #expect(NOfM(n: 3, m: 8).groupCounts(rows: 1, columns: 12, total: 6) == [3, 3])
        // Between dense and N:M (gradual pruning): the largest k per run that fits.
        #expect(NOfM(n: 2, m: 4).groupCounts(rows: 1, columns: 8, total: 6) == [3, 3])
        #expect(NOfM(n: 2, m: 4).groupCounts(rows: 1, columns: 8, total: 8) == [4, 4])
        #expect(NOfM(n: 2, m: 4).groupCounts(rows: 1, columns: 8, total: 1) == [2, 2])
    }

    /// One row of 8 in two runs of 4, 2:4, active {0, 1 | 4, 6}; f = 0.5 keeps the
    /// two largest |w| (0 and 4). The two largest free |g| are both in the first run
    /// (3: 0.8, 2: 0.7), so unstructured RigL grows {2, 3} and breaks 2:4; under 2:4
    /// each run refills to 2: the first takes 3 (0.8), the second 7 (0.4).
    @Test func nOfMRigLGrowsWithinEachRun() {
        let mask = SparseMask(rows: 1, columns: 8, activeIndices: [0, 1, 4, 6])
        let input = LayerUpdateInput(name: "l", mask: mask, weights: [0.9, 0.1, 0, 0, -0.5, 0, 0.05, 0],
                                     denseGradient: [0, 0.2, 0.7, 0.8, 0, 0.3, 0.1, 0.4], budget: 4, dropFraction: 0.5)
        var rng = Xoshiro256(seed: 0)
        #expect(RigLStrategy().update(input, rng: &rng).mask.activeIndices == [0, 2, 3, 4])
        let nm = RigLStrategy(structure: NOfM(n: 2, m: 4)).update(input, rng: &rng).mask
        #expect(nm.activeIndices == [0, 3, 4, 7])
        // SRigL's update under N:M (no ablation) is the same rule.
        let srigl = SRigLStrategy(ablation: false, structure: NOfM(n: 2, m: 4)).update(input, rng: &rng).mask
        #expect(srigl == nm)
    }

    /// SET under 1:4 on one row of 12 (three runs, one active each): f = 2/3 drops the
    /// two smallest |w| (runs 0 and 2), which each regrow one random position of their
    /// own run; run 1 keeps its weight.
    @Test func nOfMSETRegrowsInsideTheDroppedRuns() {
        let mask = SparseMask(rows: 1, columns: 12, activeIndices: [1, 6, 11])
        var weights = [Float](repeating: 0, count: 12)
        weights[1] = 0.1; weights[6] = 0.9; weights[11] = -0.2
        let input = LayerUpdateInput(name: "l", mask: mask, weights: weights, denseGradient: [Float](repeating: 0, count: 12),
                                     budget: 3, dropFraction: 0.67)
        var rng = Xoshiro256(seed: 3)
        var seen = Set<Int>()
        for _ in 0..<200 {
            let next = SETStrategy(structure: NOfM(n: 1, m: 4)).update(input, rng: &rng).mask
            let active = next.activeIndices
            #expect(active.count == 3 && active.contains(6))
            #expect(active.filter { $0 < 4 }.count == 1 && active.filter { $0 >= 8 }.count == 1)
            seen.formUnion(active)
        }
        #expect(seen == Set([0, 1, 2, 3, 6, 8, 9, 10, 11]), "every position of runs 0 and 2 is grown at some point")
    }

    @Test func staticNOfMMasksHoldNPerRun() throws {
        var rng = Xoshiro256(seed: 9)
        let mask = try StaticStrategy(structure: NOfM(n: 2, m: 4)).initialMask(name: "l", rows: 3, columns: 10, budget: 15, rng: &rng)
        for r in 0..<3 {
            let row = Array(mask.active[r * 10..<(r + 1) * 10])
            #expect(row[0..<4].filter { $0 }.count == 2 && row[4..<8].filter { $0 }.count == 2)
            #expect(row[8..<10].filter { $0 }.count == 2, "the short run of 2 keeps min(n, 2)")
        }
    }

    /// The cubic schedule: `D + floor((N − D)(1 − p)³)`.
    @Test func gradualPruningFollowsTheCubic() {
        #expect(GMPStrategy.targetCount(total: 100, budget: 10, progress: 0) == 100)
        #expect(GMPStrategy.targetCount(total: 100, budget: 10, progress: 0.5) == 21)   // 10 + floor(90 · 0.125)
        #expect(GMPStrategy.targetCount(total: 100, budget: 10, progress: 0.75) == 11)  // 10 + floor(90 · 0.015625)
        #expect(GMPStrategy.targetCount(total: 100, budget: 10, progress: 1) == 10)
        // ΔT = 10, T_start = 20, T_end = 100: prunes after steps 20, 30, …, 90; p runs 0 → 1.
        let schedule = UpdateSchedule(interval: 10, endStep: 100, initialDropFraction: 0.3, startStep: 20)
        #expect(!schedule.isUpdate(afterStep: 10) && schedule.isUpdate(afterStep: 20) && schedule.isUpdate(afterStep: 90))
        #expect(!schedule.isUpdate(afterStep: 100))
        #expect(schedule.lastUpdateStep == 90)
        #expect(schedule.pruningProgress(atStep: 20) == 0 && schedule.pruningProgress(atStep: 55) == 0.5)
        #expect(schedule.pruningProgress(atStep: 90) == 1)
    }

    /// 2×5, budget 4, p = 0.5: target 4 + floor(6 · 0.125) = 4. Unstructured keeps the
    /// four largest |w| of the layer; constant fan-in the two largest per row; 1:4 cuts
    /// each row into runs of 4 and 1, and k = 1 per run is the largest that fits in 4.
    @Test func gradualPruningKeepsTheLargestMagnitudesPerGroup() {
        let w: [Float] = [0.5, -0.1, 0.3, 0.05, 0.8,
                          0.9, -0.7, 0.2, 0.01, 0.4]
        let input = LayerUpdateInput(name: "l", mask: .dense(rows: 2, columns: 5), weights: w,
                                     denseGradient: [Float](repeating: 0, count: 10), budget: 4, dropFraction: 0,
                                     pruningProgress: 0.5)
        var rng = Xoshiro256(seed: 0)
        #expect(GMPStrategy().update(input, rng: &rng).mask.activeIndices == [0, 4, 5, 6])
        #expect(GMPStrategy(structure: ConstantFanIn()).update(input, rng: &rng).mask.activeIndices == [0, 4, 5, 6])
        #expect(GMPStrategy(structure: NOfM(n: 1, m: 4)).update(input, rng: &rng).mask.activeIndices == [0, 4, 5, 9])
        // Already pruned positions never come back, even with a large |w|.
        var partial = input
        partial.mask = SparseMask(rows: 2, columns: 5, activeIndices: [0, 1, 2, 3, 7, 8, 9])
        #expect(GMPStrategy().update(partial, rng: &rng).mask.activeIndices == [0, 2, 7, 9])
    }
}
