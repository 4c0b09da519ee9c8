import DSTestSupport
import Foundation
import Testing

/// experiments/sweep_sparsity.sh, run in --dry-run mode.
@Suite struct SweepScriptTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    @Test func runsAreNamedFromTheirParametersAndFinishedOnesSkipped() throws {
        let dst = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dst").path
        let out = Fixtures.temporaryPath("sweep")
        // A finished run (one metrics row per planned epoch) must be skipped.
        try FileManager.default.createDirectory(atPath: out + "/quickstart_srigl_s0.95_seed1", withIntermediateDirectories: true)
        try "epoch\n1\n2\n".write(toFile: out + "/quickstart_srigl_s0.95_seed1/metrics.csv", atomically: true, encoding: .utf8)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repository.path + "/experiments/sweep_sparsity.sh", Self.repository.path + "/configs/quickstart.yaml",
                       "--strategies", "dense srigl", "--sparsities", "0.9 0.95", "--seeds", "0 1", "--out", out,
                       "--jobs", "1", "--dry-run", "--", "--set", "training.epochs=2"]
        p.environment = ProcessInfo.processInfo.environment.merging(["DST": dst]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let names = lines.compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count >= 2 ? "\(words[0]) \(words[1].trimmingCharacters(in: [":"]))" : nil
        }
        #expect(names == [
            "run quickstart_dense_seed0", "run quickstart_srigl_s0.9_seed0", "run quickstart_srigl_s0.95_seed0",
            "run quickstart_dense_seed1", "run quickstart_srigl_s0.9_seed1", "skip quickstart_srigl_s0.95_seed1",
        ])
        let srigl = lines.first { $0.hasPrefix("run quickstart_srigl_s0.9_seed0") } ?? ""
        for part in ["--set sparsity.strategy=srigl", "--set sparsity.sparsity=0.9", "--set seed=0",
                     "--set output.root=\(out)", "--resume", "--set training.epochs=2"] {
            #expect(srigl.contains(part), "\(part) in \(srigl)")
        }
    }

    /// `--structures`: N:M entries imply their sparsity and the uniform distribution,
    /// and every planned command passes `dst validate`.
    @Test func structuresAreSweptAndNamed() throws {
        let dst = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dst").path
        let out = Fixtures.temporaryPath("sweep")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repository.path + "/experiments/sweep_sparsity.sh", Self.repository.path + "/configs/quickstart.yaml",
                       "--strategies", "rigl", "--structures", "unstructured 2:4 1:10", "--sparsities", "0.9",
                       "--seeds", "0", "--out", out, "--jobs", "1", "--dry-run"]
        p.environment = ProcessInfo.processInfo.environment.merging(["DST": dst]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(lines.map { $0.split(separator: ":")[0] } == [
            "run quickstart_rigl_unstructured_s0.9_seed0", "run quickstart_rigl_nm2-4_seed0", "run quickstart_rigl_nm1-10_seed0",
        ])
        let nm = lines[1]
        for part in ["--set sparsity.sparsity=0.5", "--set sparsity.structure=n_of_m", "--set sparsity.n=2", "--set sparsity.m=4",
                     "--set sparsity.distribution=uniform"] {
            #expect(nm.contains(part), "\(part) in \(nm)")
        }
        #expect(lines[2].contains("--set sparsity.sparsity=0.9 ") && lines[0].contains("--set sparsity.structure=unstructured"))
        // Each command's config is valid.
        for line in lines {
            let words = line.split(separator: " ").dropFirst(2).map(String.init)   // "run NAME:" then the command
            let sets = zip(words, words.dropFirst()).filter { $0.0 == "--set" }.map { ["--set", $0.1] }.flatMap { $0 }
            let v = Process()
            v.executableURL = URL(fileURLWithPath: dst)
            v.arguments = ["validate", Self.repository.path + "/configs/quickstart.yaml"] + sets
            v.standardOutput = FileHandle.nullDevice
            try v.run()
            v.waitUntilExit()
            #expect(v.terminationStatus == 0, "\(line)")
        }
    }
}
