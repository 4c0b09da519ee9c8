import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who chose the OpenBLAS core this process runs.
public enum BLASCoreChooser: String, Sendable {
    /// OpenBLAS's own detection.
    case library
    /// The user, through `OPENBLAS_CORETYPE`.
    case user
    /// This program, after the library fell back to a weaker core than the CPU supports.
    case dynamicsparse
}

/// Picks the best OpenBLAS core the CPU supports when the library's own detection fell
/// back to a weaker one (Debian's OpenBLAS 0.3.21 runs its generic Prescott kernels
/// on CPUs newer than it knows, 4–5x slower).
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, when it loads, so the choice is applied by
/// re-executing the program with the variable set. A candidate is accepted only after
/// a child process running it computed a set of GEMM and GEMV shapes correctly against
/// a double-precision reference (a crash there harms nothing); otherwise the next
/// weaker one is tried. The accepted core is cached per CPU and library build.
/// A user-set `OPENBLAS_CORETYPE` is always kept; `DST_BLAS_AUTOSELECT=0` turns the
/// selection off.
public enum BLASCoreSelection {
    /// The vector level of each OpenBLAS x86-64 core (see `CPUInfo.vectorLevel`).
    public static let coreLevels: [String: Int] = [
        "prescott": 0, "core2": 0, "penryn": 0, "dunnington": 0, "nehalem": 0, "atom": 0, "opteron": 0,
        "opteron_sse3": 0, "barcelona": 0, "bobcat": 0,
        "sandybridge": 1, "bulldozer": 1, "piledriver": 1, "steamroller": 1, "excavator": 1,
        "haswell": 2, "zen": 2,
        "skylakex": 3, "cooperlake": 3, "sapphirerapids": 3,
    ]

    /// Whether `core` is weaker than `cpu` supports (false for a core not in the table).
    public static func isFallback(core: String, cpu: CPUInfo) -> Bool {
        guard let level = coreLevels[core.lowercased()] else { return false }
        return level < cpu.vectorLevel
    }

    /// The core to try for each vector level, strongest first.
    static let candidatesByLevel = [(3, "SkylakeX"), (2, "Haswell"), (1, "Sandybridge")]

    public enum Decision: Equatable, Sendable {
        case keep(BLASCoreChooser)
        /// Self-check these cores, strongest first, and run the first that passes.
        case tryCores([String])
    }

    /// What to do, given the core the library runs, the CPU, the user's
    /// `OPENBLAS_CORETYPE` and `DST_BLAS_AUTOSELECT`, and the core this program
    /// selected before re-executing (nil in a first start).
    public static func decide(libraryCore: String, cpu: CPUInfo, userSetting: String?, autoselect: Bool,
                              selectedEarlier: String?) -> Decision {
        if let selectedEarlier, !selectedEarlier.isEmpty { return .keep(.dynamicsparse) }
        if let userSetting, !userSetting.isEmpty { return .keep(.user) }
        guard autoselect, isFallback(core: libraryCore, cpu: cpu), let level = coreLevels[libraryCore.lowercased()] else {
            return .keep(.library)
        }
        let candidates = candidatesByLevel.filter { $0.0 > level && $0.0 <= cpu.vectorLevel }.map(\.1)
        return candidates.isEmpty ? .keep(.library) : .tryCores(candidates)
    }

    // MARK: The self-check

    /// `C = op(A)·op(B)` for row-major matrices: `(transA, transB, m, n, k, A, B) → C`.
    public typealias GEMM = (Bool, Bool, Int, Int, Int, [Float], [Float]) -> [Float]

    /// OpenBLAS's sgemm (GEMV shapes are the `n = 1` and `m = 1` cases, run through sgemv).
    public static let openBLAS: GEMM = { ta, tb, m, n, k, a, b in
        var c = [Float](repeating: 0, count: m * n)
        if n == 1 {
            let rows = ta ? k : m, columns = ta ? m : k
            cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, Int32(rows), Int32(columns), 1, a,
                        Int32(columns), b, 1, 0, &c, 1)
        } else {
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, &c, Int32(n))
        }
        return c
    }

    /// Shapes `(m, n, k)` of the self-check: tiny, odd, conv-like and large, each with
    /// every transpose; `n = 1` runs as a GEMV.
    static let checkShapes = [(3, 5, 7), (17, 1, 33), (64, 64, 64), (128, 96, 256), (768, 1, 3072), (257, 129, 65)]

    /// The first shape `gemm` gets wrong (max error against a double-precision
    /// reference above 1e-3 of the products' magnitude), or nil when all are right.
    public static func selfCheck(_ gemm: GEMM) -> String? {
        var rng = Xoshiro256(seed: 0x5eed)
        for (m, n, k) in checkShapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] where n > 1 || !tb {
                let a = (0..<(m * k)).map { _ in rng.uniformFloat() * 2 - 1 }
                let b = (0..<(k * n)).map { _ in rng.uniformFloat() * 2 - 1 }
                let c = gemm(ta, tb, m, n, k, a, b)
                guard c.count == m * n else { return "\(m)x\(n)x\(k): \(c.count) results" }
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k {
                            let x = Double(ta ? a[p * m + i] : a[i * k + p]), y = Double(tb ? b[j * k + p] : b[p * n + j])
                            sum += x * y
                        }
                        worst = max(worst, abs(sum - Double(c[i * n + j])))
                    }
                }
                guard worst <= 1e-3 * Double(k).squareRoot() else {
                    return "\(m)x\(n)x\(k) (transposes \(ta), \(tb)): max error \(worst)"
                }
            }
        }
        return nil
    }

    // MARK: Start-up

    /// What `prepare` found and did, for `dst info` and `environment.json`.
    public struct Outcome: Sendable {
        public var core: String
        public var chooser: BLASCoreChooser
        /// The core OpenBLAS had chosen by itself, when this program replaced it.
        public var libraryCore: String?
        /// Candidates that failed their self-check, with the reason.
        public var rejected: [String]
    }

    /// Set by `prepare` (nil until then, and in processes that never call it).
    nonisolated(unsafe) public private(set) static var outcome: Outcome?

    static let selectedVariable = "DST_BLAS_CORE_SELECTED"
    static let libraryCoreVariable = "DST_BLAS_LIBRARY_CORE"
    static let checkVariable = "DST_BLAS_SELF_CHECK"
    static let rejectedVariable = "DST_BLAS_REJECTED"
    /// Tests only: treat a set `OPENBLAS_CORETYPE` as the library's own choice, so the
    /// selection can be exercised on a machine whose library does not fall back.
    static let pretendVariable = "DST_BLAS_TREAT_CORETYPE_AS_LIBRARY"

    /// Call first thing in `main`. In a self-check child it runs the check and exits;
    /// when the library fell back, it selects a better core and re-executes the
    /// program (and so does not return); otherwise it records the outcome.
    public static func prepare() {
        let env = ProcessInfo.processInfo.environment
        let library = BLASInfo.current.core
        if env[checkVariable] == "1" {
            Parallel.prepareProcess()
            let failure = selfCheck(openBLAS)
            print(library)
            if let failure { FileHandle.standardError.write(Data((failure + "\n").utf8)) }
            exit(failure == nil ? 0 : 1)
        }
        let pretend = env[pretendVariable] == "1"
        let selected = env[selectedVariable].flatMap { $0 == env["OPENBLAS_CORETYPE"] ? $0 : nil }
        let decision = decide(libraryCore: library, cpu: .current, userSetting: pretend ? nil : env["OPENBLAS_CORETYPE"],
                              autoselect: env["DST_BLAS_AUTOSELECT"] != "0", selectedEarlier: selected)
        let rejectedEarlier = env[rejectedVariable].map { $0.split(separator: ";").map(String.init) } ?? []
        switch decision {
        case .keep(let chooser):
            outcome = Outcome(core: library, chooser: chooser,
                              libraryCore: chooser == .dynamicsparse ? env[libraryCoreVariable] : nil,
                              rejected: rejectedEarlier)
        case .tryCores(let candidates):
            #if !os(Linux)
            // Re-executing needs /proc/self/exe; elsewhere the library's choice stays.
            outcome = Outcome(core: library, chooser: .library, libraryCore: nil, rejected: [])
            return
            #endif
            var rejected: [String] = []
            let cache = CoreCache()
            for core in candidates {
                if cache.accepted(for: library) != core {
                    if let failure = runSelfCheck(core: core) {
                        rejected.append("\(core): \(failure)")
                        continue
                    }
                    cache.record(core, for: library)
                }
                reexecute(with: ["OPENBLAS_CORETYPE": core, selectedVariable: core, libraryCoreVariable: library,
                                 rejectedVariable: rejected.joined(separator: ";"), pretendVariable: ""])
            }
            outcome = Outcome(core: library, chooser: .library, libraryCore: nil, rejected: rejected)
        }
    }

    /// Runs this executable as a self-check child with `core`; nil when it passed.
    static func runSelfCheck(core: String) -> String? {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = core
        env[checkVariable] = "1"
        child.environment = env
        let out = Pipe(), err = Pipe()
        child.standardOutput = out
        child.standardError = err
        do { try child.run() } catch { return "could not start the check: \(error)" }
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let detail = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        child.waitUntilExit()
        if child.terminationReason == .uncaughtSignal { return "the check crashed (signal \(child.terminationStatus))" }
        guard child.terminationStatus == 0 else { return "wrong results: \(detail.prefix(200))" }
        guard printed.lowercased() == core.lowercased() else { return "the library ran \(printed) instead" }
        return nil
    }

    /// Replaces this process by the same program with `changes` in its environment
    /// (an empty value removes the variable).
    static func reexecute(with changes: [String: String]) -> Never {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in changes { env[key] = value.isEmpty ? nil : value }
        let pairs = env.map { "\($0.key)=\($0.value)" }
        var envp: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0) } + [nil]
        fflush(stdout)
        execve("/proc/self/exe", CommandLine.unsafeArgv, &envp)
        let reason = String(cString: strerror(errno))
        FileHandle.standardError.write(Data("error: cannot re-execute with the selected BLAS core: \(reason)\n".utf8))
        exit(1)
    }
}

/// Cores that passed the self-check, per CPU and library build, in
/// `$DST_CACHE_DIR` (default `$XDG_CACHE_HOME/dynamicsparse` or
/// `~/.cache/dynamicsparse`) as `blas-core.json`.
struct CoreCache {
    let path: String

    init() {
        let env = ProcessInfo.processInfo.environment
        let base = env["DST_CACHE_DIR"]
            ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/dynamicsparse")
        path = base + "/blas-core.json"
    }

    func key(_ libraryCore: String) -> String {
        let cpu = CPUInfo.current
        return "\(cpu.model)|\(cpu.family)|\(cpu.modelNumber)|\(BLASInfo.current.configuration)|\(libraryCore)"
    }

    func entries() -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path),
              let entries = try? JSONDecoder().decode([String: String].self, from: data) else { return [:] }
        return entries
    }

    func accepted(for libraryCore: String) -> String? { entries()[key(libraryCore)] }

    func record(_ core: String, for libraryCore: String) {
        var all = entries()
        all[key(libraryCore)] = core
        guard let data = try? JSONEncoder().encode(all) else { return }
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
