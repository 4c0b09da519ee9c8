import DSCore
import Testing

/// The OpenBLAS core decision and its self-check (the re-execution itself is tested
/// end to end through `dst info` in DSExperimentTests).
@Suite struct BLASSelectionTests {
    static let avx512 = CPUInfo(model: "x", family: 6, modelNumber: 207,
                                features: ["sse3", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"])
    static let avx2 = CPUInfo(model: "x", family: 6, modelNumber: 63, features: ["sse3", "avx", "fma", "avx2"])
    static let avxOnly = CPUInfo(model: "x", family: 6, modelNumber: 42, features: ["sse3", "avx"])
    static let old = CPUInfo(model: "x", family: 6, modelNumber: 15, features: ["sse3"])

    @Test func decisionTable() {
        typealias D = BLASCoreSelection.Decision
        let cases: [(String, CPUInfo, String?, Bool, String?, D)] = [
            ("Prescott", Self.avx512, nil, true, nil, .tryCores(["SkylakeX", "Haswell", "Sandybridge"])),
            ("Haswell", Self.avx512, nil, true, nil, .tryCores(["SkylakeX"])),
            ("Sandybridge", Self.avx2, nil, true, nil, .tryCores(["Haswell"])),
            ("Prescott", Self.avxOnly, nil, true, nil, .tryCores(["Sandybridge"])),
            ("SkylakeX", Self.avx512, nil, true, nil, .keep(.library)),
            ("Cooperlake", Self.avx512, nil, true, nil, .keep(.library)),
            ("Zen", Self.avx2, nil, true, nil, .keep(.library)),
            ("Prescott", Self.old, nil, true, nil, .keep(.library)),
            ("SomeFutureCore", Self.avx512, nil, true, nil, .keep(.library)),
            ("Prescott", Self.avx512, "Prescott", true, nil, .keep(.user)),
            ("Haswell", Self.avx512, "Haswell", true, nil, .keep(.user)),
            ("Prescott", Self.avx512, nil, false, nil, .keep(.library)),
            ("SkylakeX", Self.avx512, "SkylakeX", true, "SkylakeX", .keep(.dynamicsparse)),
        ]
        for (core, cpu, user, auto, earlier, expected) in cases {
            #expect(BLASCoreSelection.decide(libraryCore: core, cpu: cpu, userSetting: user, autoselect: auto,
                                             selectedEarlier: earlier) == expected,
                    "\(core), level \(cpu.vectorLevel), user \(user ?? "-"), autoselect \(auto)")
        }
    }

    @Test func vectorLevels() {
        #expect([Self.avx512, Self.avx2, Self.avxOnly, Self.old].map(\.vectorLevel) == [3, 2, 1, 0])
        // AVX-512 F alone (without BW/DQ/VL) is not enough for the SkylakeX kernels.
        #expect(CPUInfo(model: "", family: 0, modelNumber: 0, features: ["avx", "fma", "avx2", "avx512f"]).vectorLevel == 2)
    }

    @Test func selfCheckAcceptsOpenBLASAndRejectsWrongResults() {
        #expect(BLASCoreSelection.selfCheck(BLASCoreSelection.openBLAS) == nil)
        // Ignores the transpose of B: right for half the cases only.
        let ignoresTranspose: BLASCoreSelection.GEMM = { ta, _, m, n, k, a, b in
            BLASCoreSelection.openBLAS(ta, false, m, n, k, a, b)
        }
        #expect(BLASCoreSelection.selfCheck(ignoresTranspose)?.contains("transposes false, true") == true)
        // One wrong element in a large product.
        let offByOne: BLASCoreSelection.GEMM = { ta, tb, m, n, k, a, b in
            var c = BLASCoreSelection.openBLAS(ta, tb, m, n, k, a, b)
            if m * n > 10_000 { c[c.count / 2] += 0.5 }
            return c
        }
        #expect(BLASCoreSelection.selfCheck(offByOne)?.contains("max error") == true)
    }

    @Test func thisProcessReportsItsCPUAndBLAS() {
        let blas = BLASInfo.current
        #expect(blas.library == "OpenBLAS" && !blas.core.isEmpty && blas.version.contains("."))
        #if arch(x86_64)
        #expect(CPUInfo.current.features.contains("sse3"))
        #endif
        #expect(BLASInfo.measureSGEMM(size: 64) > 0)
    }

    /// The threads' round trip is a time a cache line can take between two CPUs: above a
    /// nanosecond, and under 0.1 s even when other tests keep the second CPU busy and the
    /// partner answers only between time slices (none is measured on one CPU).
    @Test func threadRoundTripIsMeasured() throws {
        guard Parallel.processors > 1 else {
            #expect(CPUInfo.threadRoundTripNanoseconds(rounds: 90) == nil)
            return
        }
        let ns = try #require(CPUInfo.threadRoundTripNanoseconds(rounds: 90))
        #expect(ns > 1 && ns < 1e8, "\(ns) ns")
    }
}
