import DSCore
import DSData
import Foundation

/// The machine and kernels a run (or `dst info`) ran with: one entry of a run
/// folder's `environment.json`, which gains an entry each time the run starts or
/// resumes.
public struct EnvironmentRecord: Codable, Equatable {
    public static let projectVersion = "0.6.0"
    public static let fileName = "environment.json"

    /// `start`, `resume` or `info`.
    public var event: String
    public var cpuModel: String
    public var cpuFeatures: [String]
    public var blasLibrary: String
    public var blasVersion: String
    public var blasCore: String
    /// `library`, `user` or `dynamicsparse` (see `BLASCoreChooser`).
    public var blasCoreSelectedBy: String
    /// The core OpenBLAS had picked itself, when this program replaced it.
    public var blasLibraryCore: String?
    /// Self-check failures of cores that were tried and not used.
    public var blasRejectedCores: [String]
    public var threads: Int
    /// Single-thread sgemm 768³, best of three.
    public var sgemmGflops: Double
    public var projectVersion: String
    public var gitCommit: String?
    public var host: String
    public var startTime: String

    enum CodingKeys: String, CodingKey {
        case event, threads, host
        case cpuModel = "cpu_model", cpuFeatures = "cpu_features", blasLibrary = "blas_library"
        case blasVersion = "blas_version", blasCore = "blas_core", blasCoreSelectedBy = "blas_core_selected_by"
        case blasLibraryCore = "blas_library_core", blasRejectedCores = "blas_rejected_cores"
        case sgemmGflops = "sgemm_gflops", projectVersion = "project_version", gitCommit = "git_commit"
        case startTime = "start_time"
    }

    /// This process's environment, with a fresh sgemm timing.
    public static func current(event: String, threads: Int) -> EnvironmentRecord {
        let cpu = CPUInfo.current, blas = BLASInfo.current
        let outcome = BLASCoreSelection.outcome
        let formatter = ISO8601DateFormatter()
        return EnvironmentRecord(
            event: event, cpuModel: cpu.model, cpuFeatures: cpu.features, blasLibrary: blas.library,
            blasVersion: blas.version, blasCore: blas.core,
            blasCoreSelectedBy: (outcome?.chooser ?? (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil
                                                      ? .library : .user)).rawValue,
            blasLibraryCore: outcome?.libraryCore, blasRejectedCores: outcome?.rejected ?? [],
            threads: threads, sgemmGflops: (BLASInfo.measureSGEMM() * 10).rounded() / 10,
            projectVersion: projectVersion, gitCommit: gitCommit(), host: ProcessInfo.processInfo.hostName,
            startTime: formatter.string(from: Date()))
    }

    /// Whether the BLAS core is weaker than the CPU supports (a fallback left in place
    /// by the user's setting, `DST_BLAS_AUTOSELECT=0`, or failed self-checks).
    public var blasFallback: Bool {
        BLASCoreSelection.isFallback(core: blasCore, cpu: CPUInfo(model: cpuModel, family: 0, modelNumber: 0,
                                                                   features: cpuFeatures))
    }

    /// One JSON object, keys sorted.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// The commit of the git checkout the running executable was built in, when it
    /// lives inside one (`.build/...` below the repository).
    static func gitCommit() -> String? {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let git = dir.appendingPathComponent(".git").path
            if let head = try? String(contentsOfFile: git + "/HEAD", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines) {
                guard head.hasPrefix("ref: ") else { return head }
                let ref = String(head.dropFirst(5))
                if let sha = try? String(contentsOfFile: git + "/" + ref, encoding: .utf8) {
                    return sha.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let packed = (try? String(contentsOfFile: git + "/packed-refs", encoding: .utf8)) ?? ""
                return packed.split(separator: "\n").first { $0.hasSuffix(" " + ref) }.map { String($0.prefix(40)) }
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The entries of `folder/environment.json` (empty when it is missing or unreadable).
    public static func read(_ folder: String) -> [EnvironmentRecord] {
        guard let data = FileManager.default.contents(atPath: folder + "/" + fileName) else { return [] }
        return (try? JSONDecoder().decode([EnvironmentRecord].self, from: data)) ?? []
    }

    /// Appends this entry to `folder/environment.json` (written atomically).
    public func append(to folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let all = Self.read(folder) + [self]
        try FileReading.writeAtomically(try encoder.encode(all) + Data("\n".utf8), to: folder + "/" + Self.fileName)
    }
}
