import ArgumentParser
import DSCore
import DSLayers
import DSSparsity
import Foundation

/// Where sparse kernels overtake the dense one, per layer kind: one layer's training
/// work (forward, input gradient, sparse weight gradient) on the dense kernel with its
/// masked weight and on the sparse kernel, at a range of densities, side by side. The
/// densities at which the sparse kernel stops winning set `SparseKernelCrossover`.
struct KernelCrossover: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernel-crossover")

    @Option(help: "Comma-separated densities.") var densities = "0.05,0.1,0.2,0.3,0.4,0.5,0.6"
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Timed repetitions per case (median taken).") var repeats = 5
    @Option(help: "Only layers whose name contains this.") var only: String?
    @Option(help: "Write a CSV of the results here.") var csv: String?

    /// (name, layer kind, in, out, input plane size, stride): the MLP's first layer and
    /// ResNet 3×3 convolutions on each plane size (direct kernels down to 7×7, columns at
    /// 4×4; stride 2 on phase planes down to 7×7, columns below). Each line also gives
    /// the forward's share of both kernels' times.
    static let shapes: [(String, String, Int, Int, Int, Int)] = [
        ("linear 784→300", "linear", 784, 300, 0, 1), ("linear 512→512", "linear", 512, 512, 0, 1),
        ("conv 16→16 @32", "conv", 16, 16, 32, 1), ("conv 64→64 @32", "conv", 64, 64, 32, 1),
        ("conv 128→128 @16", "conv", 128, 128, 16, 1), ("conv 256→256 @8", "conv", 256, 256, 8, 1),
        ("conv 512→512 @4", "conv", 512, 512, 4, 1),
        // ResNet-20's second and third stages, and its three stages on Fashion-MNIST.
        ("conv 32→32 @16", "conv", 32, 32, 16, 1), ("conv 64→64 @8", "conv", 64, 64, 8, 1),
        ("conv 16→16 @28", "conv", 16, 16, 28, 1), ("conv 32→32 @14", "conv", 32, 32, 14, 1),
        ("conv 64→64 @7", "conv", 64, 64, 7, 1),
        // The strided first convolutions of ResNet-20's and ResNet-18's later stages.
        ("conv 16→32 /2 @32", "conv", 16, 32, 32, 2), ("conv 32→64 /2 @16", "conv", 32, 64, 16, 2),
        ("conv 64→128 /2 @32", "conv", 64, 128, 32, 2), ("conv 128→256 /2 @16", "conv", 128, 256, 16, 2),
    ]

    func run() throws { try Parallel.withThreads(threads) { try measure() } }

    func measure() throws {
        var lines = ["layer,density,batch,threads,dense_ms,sparse_ms,sparse_speedup"]
        for (name, kind, inputs, outputs, size, stride) in Self.shapes where only.map({ name.contains($0) }) ?? true {
            var rng = Xoshiro256(seed: 3)
            let layer: WeightLayer
            let x: Tensor
            if kind == "linear" {
                layer = Linear(inputFeatures: inputs, outputFeatures: outputs, rng: &rng)
                x = Self.random([batch, inputs], &rng)
            } else {
                layer = Conv2d(inputChannels: inputs, outputChannels: outputs, kernelSize: 3, stride: stride, padding: 1,
                               bias: false, rng: &rng)
                x = Self.random([inputs, batch, size, size], &rng)
            }
            let y = layer.forward(x, training: false)
            let dy = Self.random(y.shape, &rng)
            let full = layer.weight.value
            for density in densities.split(separator: ",").compactMap({ Double($0) }) {
                let (rows, columns) = layer.weight.matrixShape
                var maskRNG = Xoshiro256(seed: 5)
                let mask = SparseMask(rows: rows, columns: columns,
                                      active: (0..<(rows * columns)).map { _ in maskRNG.uniformDouble() < density })
                layer.weight.value = full
                for i in 0..<mask.active.count where !mask.active[i] { layer.weight.value.storage[i] = 0 }
                layer.kernel = DenseWeightKernel(weight: layer.weight)
                /// Median seconds of forward + backward, and of the forward alone.
                func time() -> (Double, Double) {
                    var forward: [Double] = []
                    let both = BenchEnvironment.median(repeats) { _ in
                        layer.zeroGradients()
                        let t = Date()
                        _ = layer.forward(x, training: true)
                        forward.append(Date().timeIntervalSince(t))
                        _ = layer.backward(dy)
                    }
                    return (both, BenchEnvironment.medianOf(Array(forward.dropFirst())))
                }
                let (dense, denseForward) = time()
                let kernel = SparseWeightKernel(weight: layer.weight, mask: mask)
                layer.kernel = kernel
                let (sparse, sparseForward) = time()
                kernel.detach()
                print(String(format: "%-18@ density %.2f: dense %8.2f ms  sparse %8.2f ms  %.2fx  (forward: dense %.2f, sparse %.2f ms)",
                             name as NSString, density, dense * 1000, sparse * 1000, dense / sparse, denseForward * 1000,
                             sparseForward * 1000))
                lines.append(String(format: "%@,%.2f,%d,%d,%.3f,%.3f,%.3f", name, density, batch, threads,
                                    dense * 1000, sparse * 1000, dense / sparse))
            }
        }
        if let csv { try BenchEnvironment.writeCSV(lines, to: csv) }
    }

    static func random(_ shape: [Int], _ rng: inout Xoshiro256) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = rng.normal() }
        return t
    }
}
