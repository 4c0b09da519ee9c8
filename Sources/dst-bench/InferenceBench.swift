import ArgumentParser
import DSCore
import DSData
import DSSparsity
import Foundation

/// Sparse inference kernels against dense OpenBLAS on one layer, side by side:
/// `dense` (sgemv at batch 1, sgemm above), `condensed`, `csr` and `structured`
/// (ablated rows removed, dense GEMM on the rest). Every kernel's output is checked
/// against dense before it is timed; times are medians after warm-up.
struct InferenceBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inference")

    @Option(help: "Layer shapes as OUTxIN, comma-separated.") var shapes = "768x3072,3072x768,4096x4096"
    @Option(help: "Sparsities, comma-separated.") var sparsities = "0.8,0.9,0.95,0.99"
    @Option(help: "Batch sizes, comma-separated.") var batches = "1,16,256"
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Fraction of neurons ablated in the masks (SRigL-like structure).") var ablated = 0.0
    @Option(help: "Target seconds of timing per measurement.") var seconds = 0.2
    @Option(help: "Write the CSV here.") var csv = "results/bench/inference.csv"

    func run() throws {
        Parallel.prepareProcess()
        var lines = ["out_features,in_features,sparsity,batch,threads,kernel,median_us,max_rel_err"]
        for shape in shapes.split(separator: ",") {
            let dims = shape.split(separator: "x").compactMap { Int($0) }
            guard dims.count == 2 else { throw ValidationError("shape \(shape): expected OUTxIN") }
            let (nOut, nIn) = (dims[0], dims[1])
            for sparsity in sparsities.split(separator: ",").compactMap({ Double($0) }) {
                var rng = Xoshiro256(seed: 7)
                let activeRows = max(1, Int((Double(nOut) * (1 - ablated)).rounded()))
                let k = max(1, Int((Double(nOut * nIn) * (1 - sparsity)).rounded(.down)) / activeRows)
                var indices: [Int] = []
                for r in 0..<activeRows {
                    indices += Selection.random(k, of: Array(0..<nIn), using: &rng).map { r * nIn + $0 }
                }
                let mask = SparseMask(rows: nOut, columns: nIn, activeIndices: indices)
                let weight = (0..<(nOut * nIn)).map { mask.active[$0] ? rng.normal() : 0 }
                let condensed = try CondensedLinear(name: shape.description, weight: weight, mask: mask, bias: nil)
                let csrMatrix = CSRMatrix(weight: weight, mask: mask, bias: nil)
                if let plan = condensed.laneBlockPlan {
                    let slots = plan.values.count / LaneBlockPlan.lanes
                    let bytes = slots * (LaneBlockPlan.lanes * 5) + plan.spillValues.count * 8
                    print(String(format: "# %@ s=%.2f lane blocks: %d slots, fill %.2f, %d spilled weights, %.2f MB read at batch 1",
                                 String(shape), sparsity, slots, plan.fill, plan.spillValues.count, Double(bytes) / 1e6))
                }
                let kept = (0..<activeRows).flatMap { r in weight[(r * nIn)..<((r + 1) * nIn)] }
                for batch in batches.split(separator: ",").compactMap({ Int($0) }) {
                    let x = (0..<(batch * nIn)).map { _ in rng.normal() }
                    for t in threads.split(separator: ",").compactMap({ Int($0) }) {
                        try Parallel.withThreads(t) {
                            var reference = [Float](repeating: 0, count: batch * nOut)
                            /// OpenBLAS on the first `rows` rows of `w`: sgemv at batch 1, sgemm above
                            /// (`y [out, B] = W · x [in, B]`).
                            func dense(_ w: [Float], rows: Int) -> (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void {
                                { x, y in
                                    w.withUnsafeBufferPointer { w in
                                        if batch == 1 {
                                            BLAS.gemv(m: rows, n: nIn, a: w.baseAddress!, lda: nIn, x: x, y: y)
                                        } else {
                                            BLAS.gemm(m: rows, n: batch, k: nIn, a: w.baseAddress!, lda: nIn,
                                                      b: x, ldb: batch, c: y, ldc: batch)
                                        }
                                    }
                                }
                            }
                            // Activations are feature-major (`x [in, B]`, `y [out, B]`), the layout the
                            // batched kernels run on; at batch 1 both layouts are the same vector.
                            let kernels: [(String, (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void)] = [
                                ("dense", dense(weight, rows: nOut)),
                                ("condensed", { x, y in
                                    if batch == 1 { condensed.forwardOne(x, into: y) } else {
                                        condensed.forwardColumns(x, ldCol: batch, columns: batch, into: y, ldY: batch)
                                    }
                                }),
                                ("csr", { x, y in
                                    if batch == 1 { csrMatrix.forward(batch: 1, x, into: y) } else {
                                        csrMatrix.forwardColumns(x, ldX: batch, columns: batch, into: y, ldY: batch)
                                    }
                                }),
                                ("structured", dense(kept, rows: activeRows)),
                            ]
                            // Outputs first, each checked against dense; then the timing.
                            var errors: [Double] = []
                            for (name, kernel) in kernels {
                                var y = [Float](repeating: 0, count: batch * nOut)
                                x.withUnsafeBufferPointer { px in
                                    y.withUnsafeMutableBufferPointer { kernel(px.baseAddress!, $0.baseAddress!) }
                                }
                                if name == "dense" { reference = y }
                                // max |y − dense| / max |dense| over the output.
                                let scale = max(reference.map { abs($0) }.max() ?? 1, 1e-12)
                                let err = Double((zip(y, reference).map { abs($0 - $1) }.max() ?? 0) / scale)
                                guard err < 1e-3 else {
                                    throw ValidationError("\(name) \(shape) s=\(sparsity) b=\(batch): output differs from dense (\(err))")
                                }
                                errors.append(err)
                            }
                            var y = [Float](repeating: 0, count: batch * nOut)
                            let medians = x.withUnsafeBufferPointer { px in
                                y.withUnsafeMutableBufferPointer { py in
                                    let (xp, yp) = (px.baseAddress!, py.baseAddress!)
                                    return time(kernels.map { kernel in { kernel.1(xp, yp) } })
                                }
                            }
                            for (i, (name, _)) in kernels.enumerated() {
                                let line = String(format: "%d,%d,%.2f,%d,%d,%@,%.2f,%.2e", nOut, nIn, sparsity, batch, t,
                                                  name, medians[i] * 1e6, errors[i])
                                lines.append(line)
                                print(line)
                            }
                        }
                    }
                }
            }
        }
        try FileManager.default.createDirectory(atPath: (csv as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try BenchEnvironment.writeCSV(lines, to: csv)
    }

    /// Median seconds per call of each body. The bodies take turns in `rounds` bursts
    /// (each burst warms up first), so a slow spell on this shared machine hits them
    /// all alike, while each still runs with its own data in cache.
    func time(_ bodies: [() -> Void], rounds: Int = 5) -> [Double] {
        var samples = [[Double]](repeating: [], count: bodies.count)
        var perBurst = [Int](repeating: 0, count: bodies.count)
        for (i, body) in bodies.enumerated() {
            body()
            let probe = Date(); body()
            let once = max(Date().timeIntervalSince(probe), 1e-7)
            perBurst[i] = max(3, min(400, Int(seconds / Double(rounds) / once)))
        }
        for _ in 0..<rounds {
            for (i, body) in bodies.enumerated() {
                for _ in 0..<2 { body() }
                for _ in 0..<perBurst[i] {
                    let t = Date(); body(); samples[i].append(Date().timeIntervalSince(t))
                }
            }
        }
        return samples.map { $0.sorted()[$0.count / 2] }
    }
}
