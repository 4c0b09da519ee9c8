import CMachineInfo
import COpenBLAS
import Foundation

/// What the CPU is and which vector instructions it can use.
public struct CPUInfo: Equatable, Sendable {
    /// The brand string (`AMD EPYC`, `Intel(R) Xeon(R) Platinum 8488C`).
    public var model: String
    public var family: Int
    public var modelNumber: Int
    /// Usable feature names, from CPUID and the OS's register support: `sse3`, `avx`,
    /// `fma`, `avx2`, `avx512f`, `avx512bw`, `avx512dq`, `avx512vl`, `avx512bf16`.
    public var features: [String]

    public init(model: String, family: Int, modelNumber: Int, features: [String]) {
        self.model = model; self.family = family; self.modelNumber = modelNumber; self.features = features
    }

    static let featureBits: [(UInt32, String)] = [
        (UInt32(DST_CPU_SSE3), "sse3"), (UInt32(DST_CPU_AVX), "avx"), (UInt32(DST_CPU_FMA), "fma"),
        (UInt32(DST_CPU_AVX2), "avx2"), (UInt32(DST_CPU_AVX512F), "avx512f"), (UInt32(DST_CPU_AVX512BW), "avx512bw"),
        (UInt32(DST_CPU_AVX512DQ), "avx512dq"), (UInt32(DST_CPU_AVX512VL), "avx512vl"),
        (UInt32(DST_CPU_AVX512BF16), "avx512bf16"),
    ]

    /// This machine's CPU.
    public static let current: CPUInfo = {
        var brand = [CChar](repeating: 0, count: 64)
        var family: Int32 = 0, model: Int32 = 0
        dst_cpu_identity(&brand, &family, &model)
        let bits = dst_cpu_features()
        return CPUInfo(model: String(cString: brand).trimmingCharacters(in: .whitespaces),
                       family: Int(family), modelNumber: Int(model),
                       features: featureBits.filter { bits & $0.0 != 0 }.map(\.1))
    }()

    /// How long a cache line takes to go from the calling thread to another thread and
    /// back, in nanoseconds (median of 9 batches of `rounds / 9`); nil on one CPU (the
    /// threads could only take turns) or when no thread could be started. About
    /// 50–150 ns between cores sharing a cache; several hundred
    /// when a virtual machine's CPUs sit on distant cores, which slows every parallel
    /// loop that hands data from one thread to the other. It can change while a process
    /// runs (the host moves virtual CPUs), so benchmarks measure it next to each result.
    public static func threadRoundTripNanoseconds(rounds: Int = 18_000) -> Double? {
        guard Parallel.processors > 1 else { return nil }
        let ns = dst_thread_round_trip_ns(Int32(clamping: rounds))
        return ns >= 0 ? ns : nil
    }

    /// The widest vector level the CPU can use: 3 AVX-512 (F, BW, DQ, VL), 2 AVX2 with
    /// FMA, 1 AVX, 0 none of these.
    public var vectorLevel: Int {
        let has = Set(features)
        if has.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return 3 }
        if has.isSuperset(of: ["avx2", "fma"]) { return 2 }
        return has.contains("avx") ? 1 : 0
    }
}

/// The BLAS library in this process, as it describes itself.
public struct BLASInfo: Equatable, Sendable {
    /// `OpenBLAS`.
    public var library: String
    /// `0.3.21`.
    public var version: String
    /// The kernel set (OpenBLAS "core") it runs: `SkylakeX`, `Haswell`, `Prescott`, ...
    public var core: String
    /// `openblas_get_config()` in full.
    public var configuration: String

    public static var current: BLASInfo {
        let config = String(cString: openblas_get_config())
        let words = config.split(separator: " ")
        let version = words.count > 1 && words[0] == "OpenBLAS" ? String(words[1]) : "unknown"
        return BLASInfo(library: "OpenBLAS", version: version, core: String(cString: openblas_get_corename()),
                        configuration: config)
    }

    /// Single-thread sgemm speed: the best of three `n×n×n` products, in GFLOP/s.
    public static func measureSGEMM(size n: Int = 768) -> Double {
        Parallel.prepareProcess()
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n),
                        b, Int32(n), 0, &c, Int32(n))
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}
