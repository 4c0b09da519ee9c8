import DSSparsity
import Testing

@Suite struct DensityDistributionTests {
    let layers = [
        SparseLayerShape(name: "conv1", dimensions: [4, 1, 3, 3]),   // N = 36,  p = 11/36
        SparseLayerShape(name: "conv2", dimensions: [8, 4, 3, 3]),   // N = 288, p = 18/288
        SparseLayerShape(name: "fc", dimensions: [10, 8]),           // N = 80,  p = 18/80
    ]

    @Test func uniformGivesEveryLayerTheSameDensity() throws {
        let d = try DensityDistribution.uniform.densities(for: layers, sparsity: 0.9)
        #expect(d.map(\.budget) == [3, 28, 8])   // floor(N · 0.1)
        #expect(d.allSatisfy { abs($0.density - 0.1) < 1e-12 && !$0.isDense })
    }

    @Test func uniformSubtractsDenseLayersFromTheBudget() throws {
        let d = try DensityDistribution.uniform.densities(for: layers, sparsity: 0.5, denseLayers: ["fc"])
        // K = 0.5 · 404 = 202; 202 − 80 = 122 over 324 sparse weights.
        #expect(d[2].isDense && d[2].budget == 80)
        #expect(abs(d[0].density - 122.0 / 324) < 1e-12)
        #expect(d[0].budget == 13 && d[1].budget == 108)
    }

    /// Worked by hand: at 50% sparsity K = 202. ε = 202 / (11 + 18 + 18) = 4.2979;
    /// conv1 would get ε·11/36 = 1.313 > 1, so conv1 (largest p) becomes dense.
    /// Then ε = (202 − 36) / (18 + 18) = 4.6111: conv2 gets 4.6111·18/288 = 0.28819,
    /// fc gets 4.6111·18/80 = 1.0375 > 1, so fc becomes dense too. Finally
    /// ε = (202 − 36 − 80) / 18 = 4.7778 and conv2 gets 86/288 = 0.29861.
    @Test func erkMatchesAHandComputation() throws {
        let d = try DensityDistribution.erk.densities(for: layers, sparsity: 0.5)
        #expect(d[0].isDense && d[2].isDense && !d[1].isDense)
        #expect(abs(d[1].density - 86.0 / 288) < 1e-12)
        #expect(d.map(\.budget) == [36, 86, 80])
    }

    @Test func erkWithoutOverflowIsProportionalToTheScore() throws {
        let d = try DensityDistribution.erk.densities(for: layers, sparsity: 0.9)
        // ε = 40.4 / 47 = 0.85957; densities ε·p.
        let eps = 40.4 / 47
        #expect(abs(d[0].density - eps * 11 / 36) < 1e-12)
        #expect(abs(d[1].density - eps * 18 / 288) < 1e-12)
        #expect(abs(d[2].density - eps * 18 / 80) < 1e-12)
        #expect(d.map(\.budget) == [9, 15, 15])
    }

    @Test func badRequestsAreErrors() {
        #expect(throws: DistributionError.self) { try DensityDistribution.erk.densities(for: layers, sparsity: 1) }
        #expect(throws: DistributionError.self) { try DensityDistribution.uniform.densities(for: layers, sparsity: -0.1) }
        #expect(throws: DistributionError.self) {
            try DensityDistribution.uniform.densities(for: layers, sparsity: 0.9, denseLayers: ["conv2"])
        }
    }
}

@Suite struct UpdateScheduleTests {
    @Test func updatesEveryIntervalUntilTheEnd() {
        let s = UpdateSchedule(interval: 100, endFraction: 0.75, dropFraction: 0.3, totalSteps: 1000)
        #expect(s.endStep == 750)
        #expect((1...1000).filter { s.isUpdate(afterStep: $0) } == [100, 200, 300, 400, 500, 600, 700])
    }

    @Test func dropFractionDecaysByACosine() {
        let s = UpdateSchedule(interval: 10, endStep: 100, initialDropFraction: 0.3)
        #expect(abs(s.dropFraction(atStep: 0) - 0.3) < 1e-12)
        #expect(abs(s.dropFraction(atStep: 50) - 0.15) < 1e-12)
        #expect(s.dropFraction(atStep: 100) == 0)
    }
}
