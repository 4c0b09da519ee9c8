import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// A run killed with SIGKILL at arbitrary steps and resumed ends with the same CSV
/// files as an uninterrupted run.
@Suite(.serialized) struct ResumeTests {
    var dst: String { DSTProcess.path }

    static let srigl = "{strategy: srigl, sparsity: 0.8, distribution: uniform, update_interval: 7, grad_accumulation: 2, srigl: {gamma_sal: 0.9}}"

    func config(root: String, name: String, kernels: String = "auto", sparsity: String = srigl) -> String {
        """
        name: \(name)
        seed: 5
        data: {dataset: fashion-mnist, root: \(root)/data, augmentation: {random_crop_padding: 1, horizontal_flip: true}}
        model: {name: mlp, hidden: [24], dropout: 0.2}
        optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.001}
        schedule: {name: cosine}
        training: {epochs: 4, batch_size: 16, threads: 1, sparse_kernels: \(kernels)}
        output: {root: \(root)/results}
        sparsity: \(sparsity)
        """
    }

    @discardableResult
    func dst(_ arguments: [String]) throws -> (status: Int32, signalled: Bool, stderr: String) {
        let r = try DSTProcess.run(arguments)
        return (r.status, r.signalled, r.stderr)
    }

    func rows(_ path: String, dropping column: String? = nil) throws -> [String] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        guard let column, let index = lines[0].split(separator: ",").firstIndex(of: Substring(column)) else { return lines }
        return lines.map { line in
            var cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            cells.remove(at: index)
            return cells.joined(separator: ",")
        }
    }

    /// On the masked dense path and on the sparse kernels.
    @Test(arguments: ["off", "on"])
    func killedAndResumedRunMatchesTheUninterruptedOne(kernels: String) throws {
        guard FileManager.default.isExecutableFile(atPath: dst) else {
            Issue.record("dst not found at \(dst)")
            return
        }
        let root = Fixtures.temporaryDirectory("resume")
        Fixtures.writeIDXDataset(root: root + "/data", train: 96, test: 32)
        for name in ["straight", "killed"] {
            try config(root: root, name: name, kernels: kernels).write(toFile: "\(root)/\(name).yaml", atomically: true,
                                                                       encoding: .utf8)
        }
        let straight = try DSTProcess.run(["run", "\(root)/straight.yaml"])
        #expect(straight.status == 0)
        #expect(straight.stdout.contains(kernels == "on" ? "sparse (condensed)" : "dense, masked"), "\(straight.stdout)")

        // 6 steps per epoch: killed in epoch 2 (after step 9, with a gradient being
        // accumulated for the update at step 14 kept in the epoch-1 checkpoint), then in
        // epoch 4 after resuming, then resumed to the end.
        let first = try dst(["run", "\(root)/killed.yaml", "--kill-after-steps", "9"])
        #expect(first.signalled)
        let killedMetrics = try rows("\(root)/results/killed/metrics.csv")
        #expect(killedMetrics.count == 2, "one finished epoch before the kill")
        let second = try dst(["run", "\(root)/killed.yaml", "--resume", "--kill-after-steps", "20"])
        #expect(second.signalled)
        #expect(try dst(["resume", "\(root)/results/killed"]).status == 0)

        #expect(try rows("\(root)/results/killed/metrics.csv", dropping: "epoch_seconds")
                == rows("\(root)/results/straight/metrics.csv", dropping: "epoch_seconds"))
        #expect(try rows("\(root)/results/killed/sparsity.csv") == rows("\(root)/results/straight/sparsity.csv"))
        #expect(try rows("\(root)/results/straight/sparsity.csv").contains { $0.hasPrefix("14,") })

        // A changed config is refused, naming what differs.
        let refused = try dst(["run", "\(root)/killed.yaml", "--resume", "--set", "training.epochs=5"])
        #expect(refused.status != 0 && refused.stderr.contains("training.epochs: 4 → 5"))
    }

    /// Gradual pruning under `auto`: the layers move to sparse kernels once pruned
    /// below the crossover of 0.4 (24 steps, pruning after steps 2, 4, …, 16 to 75%:
    /// density 0.43 after step 6, 0.36 after step 8). Killed after step 9 (the epoch-1
    /// checkpoint still on dense kernels) and after step 20 (the epoch-3 checkpoint on
    /// sparse ones), the resumed run picks the kernels from the restored masks and ends
    /// with the uninterrupted run's CSV files.
    @Test func gradualPruningSwitchesKernelsAndResumesOnThem() throws {
        guard FileManager.default.isExecutableFile(atPath: dst) else { return }
        let root = Fixtures.temporaryDirectory("resume-gmp")
        Fixtures.writeIDXDataset(root: root + "/data", train: 96, test: 32)
        let gmp = "{strategy: gmp, sparsity: 0.75, distribution: uniform, update_interval: 2}"
        for name in ["straight", "killed"] {
            try config(root: root, name: name, sparsity: gmp).write(toFile: "\(root)/\(name).yaml", atomically: true, encoding: .utf8)
        }
        let straight = try DSTProcess.run(["run", "\(root)/straight.yaml"])
        #expect(straight.status == 0)
        #expect(straight.stdout.contains("kernels: 0 of 2 sparse layers on sparse kernels"), "\(straight.stdout)")
        #expect(straight.stdout.contains("step 8: fc1: sparse (csr)"), "\(straight.stdout)")
        #expect(try dst(["run", "\(root)/killed.yaml", "--kill-after-steps", "9"]).signalled)
        #expect(try dst(["run", "\(root)/killed.yaml", "--resume", "--kill-after-steps", "20"]).signalled)
        #expect(try dst(["resume", "\(root)/results/killed"]).status == 0)
        #expect(try rows("\(root)/results/killed/metrics.csv", dropping: "epoch_seconds")
                == rows("\(root)/results/straight/metrics.csv", dropping: "epoch_seconds"))
        #expect(try rows("\(root)/results/killed/sparsity.csv") == rows("\(root)/results/straight/sparsity.csv"))
    }

    @Test func aDamagedCheckpointIsRefused() throws {
        guard FileManager.default.isExecutableFile(atPath: dst) else { return }
        let root = Fixtures.temporaryDirectory("damaged")
        Fixtures.writeIDXDataset(root: root + "/data", train: 32, test: 16)
        try config(root: root, name: "run").write(toFile: "\(root)/run.yaml", atomically: true, encoding: .utf8)
        #expect(try dst(["run", "\(root)/run.yaml", "--kill-after-steps", "3"]).signalled)
        let path = "\(root)/results/run/checkpoint.bin"
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count / 2] ^= 0xff
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let result = try dst(["resume", "\(root)/results/run"])
        #expect(result.status != 0 && result.stderr.contains("checksum mismatch"))
    }
}
