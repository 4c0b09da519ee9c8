import DSCore
import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// Every process knows its CPU and BLAS kernels, replaces a fallback core after a
/// self-check, and every run folder records what it ran on.
@Suite(.serialized) struct EnvironmentTests {
    func info(_ environment: [String: String]) throws -> [String: Any] {
        let result = try DSTProcess.run(["info", "--json"], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try #require(object, "not one JSON object: \(result.stdout)")
    }

    @Test func infoReportsTheRequiredKeys() throws {
        guard DSTProcess.isBuilt else { Issue.record("dst not built"); return }
        let json = try info([:])
        for key in ["cpu_model", "cpu_features", "blas_library", "blas_version", "blas_core", "blas_core_selected_by",
                    "threads", "sgemm_gflops"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        #expect(json["blas_library"] as? String == "OpenBLAS")
        #expect((json["sgemm_gflops"] as? Double ?? 0) > 0)
    }

    @Test func aFallbackCoreIsReplacedAfterTheSelfCheckWithoutLooping() throws {
        guard DSTProcess.isBuilt else { return }
        let cache = Fixtures.temporaryDirectory("blascache")
        // Prescott as if the library had chosen it (a machine it does not know).
        let fallback = ["OPENBLAS_CORETYPE": "Prescott", "DST_BLAS_TREAT_CORETYPE_AS_LIBRARY": "1", "DST_CACHE_DIR": cache]
        let expected = [3: "SkylakeX", 2: "Haswell", 1: "Sandybridge"][CPUInfo.current.vectorLevel]
        for attempt in ["self-check", "cached"] {
            let json = try info(fallback)
            if let expected {
                #expect(json["blas_core"] as? String == expected, "\(attempt): \(json)")
                #expect(json["blas_core_selected_by"] as? String == "dynamicsparse")
                #expect(json["blas_library_core"] as? String == "Prescott")
            } else {
                #expect(json["blas_core"] as? String == "Prescott")
            }
        }
        if expected != nil {
            #expect(FileManager.default.fileExists(atPath: cache + "/blas-core.json"))
        }
        // Turned off, the fallback stays.
        var off = fallback
        off["DST_BLAS_AUTOSELECT"] = "0"
        #expect(try info(off)["blas_core"] as? String == "Prescott")
    }

    @Test func aUserSetCoreIsKept() throws {
        guard DSTProcess.isBuilt, CPUInfo.current.vectorLevel >= 2 else { return }
        let json = try info(["OPENBLAS_CORETYPE": "Haswell"])
        #expect(json["blas_core"] as? String == "Haswell" && json["blas_core_selected_by"] as? String == "user")
    }

    @Test func runFoldersRecordTheirEnvironmentAndResumesAppend() throws {
        guard DSTProcess.isBuilt else { return }
        let root = Fixtures.temporaryDirectory("environment")
        Fixtures.writeIDXDataset(root: root + "/data", train: 32, test: 8)
        let config = root + "/env.yaml"
        try """
            name: env
            data: {dataset: fashion-mnist, root: \(root)/data}
            model: {name: mlp, hidden: [8]}
            training: {epochs: 2, batch_size: 16, threads: 1}
            output: {root: \(root)/results}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try DSTProcess.run(["run", config, "--kill-after-steps", "3"]).signalled)
        #expect(try DSTProcess.run(["resume", root + "/results/env"]).status == 0)
        let entries = EnvironmentRecord.read(root + "/results/env")
        #expect(entries.map(\.event) == ["start", "resume"])
        #expect(entries.allSatisfy { $0.threads == 1 && !$0.blasCore.isEmpty && $0.sgemmGflops > 0 && $0.projectVersion == EnvironmentRecord.projectVersion })
    }
}
