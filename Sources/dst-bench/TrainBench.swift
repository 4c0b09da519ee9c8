import ArgumentParser
import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining
import Foundation

@main
enum BenchMain {
    static func main() {
        BLASCoreSelection.prepare()   // may re-execute with a better OpenBLAS core
        BenchEnvironment.warnIfFallback()
        Bench.main()
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dst-bench", abstract: "Benchmarks of the training engine.",
        subcommands: [TrainThroughput.self, SparseTrainThroughput.self, KernelCrossover.self, MaskUpdateCost.self,
                      InferenceBench.self])
}

/// Training throughput (forward + backward + SGD step) on synthetic CIFAR-shaped
/// batches (MLP: 1×28×28), reported as images per second from the median step time.
struct TrainThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train")

    @Option(help: "Comma-separated model names.") var models = "mlp,resnet20,resnet18"
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Threads (OpenBLAS and the library's loops).") var threads = 2
    @Option(help: "Timed steps per model (after warm-up).") var steps = 10
    @Option(help: "Warm-up steps.") var warmup = 2
    @Option(help: "Write a CSV of the results here.") var csv: String?
    @Flag(help: "Print a per-layer time breakdown of one step.") var profile = false

    func run() throws {
        try Parallel.withThreads(threads) { try measure() }
    }

    func measure() throws {
        var lines = ["framework,model,batch,threads,images_per_second"]
        for name in models.split(separator: ",").map(String.init) {
            var rng = Xoshiro256(seed: 1)
            let input = name == "mlp" ? ModelInput(channels: 1, height: 28, width: 28, classes: 10)
                                      : ModelInput(channels: 3, height: 32, width: 32, classes: 10)
            let model = try ModelRegistry.build(name, input: input, rng: &rng)
            let optimizer = SGD(parameters: model.namedParameters().map(\.parameter), momentum: 0.9,
                                nesterov: true, weightDecay: 5e-4)
            var x = Tensor(shape: [input.channels, batch, input.height, input.width])
            for i in 0..<x.count { x.storage[i] = rng.normal() }
            let labels = (0..<batch).map { _ in rng.index(below: input.classes) }
            let loss = CrossEntropy()
            func step() {
                model.zeroGradients()
                let logits = model.forward(x, training: true)
                let r = loss.evaluate(logits: logits, labels: labels)
                _ = model.backward(r.gradient)
                optimizer.step(learningRate: 0.01)
            }
            for _ in 0..<warmup { step() }
            var times: [Double] = []
            for _ in 0..<steps {
                let start = Date()
                step()
                times.append(Date().timeIntervalSince(start))
            }
            let median = times.sorted()[times.count / 2]
            let rate = Double(batch) / median
            print(String(format: "%-10@ batch %d threads %d: %.1f images/s (median of %d steps: %.1f ms/step)",
                         name as NSString, batch, threads, rate, steps, median * 1000))
            lines.append("dynamicsparse,\(name),\(batch),\(threads),\(String(format: "%.1f", rate))")
            if profile { Profiler.profile(model, x, labels) }
        }
        if let csv {
            try BenchEnvironment.writeCSV(lines, to: csv)
        }
    }
}

/// Times each top-level layer's forward and backward, the median of `repeats` passes.
enum Profiler {
    /// Per top-level module, the median forward and backward time of `repeats` steps;
    /// then per weight layer (Linear, Conv2d) its own passes, and per module the rest
    /// (batch norm, activations, residual adds, pooling).
    static func profile(_ model: Sequential, _ x: Tensor, _ labels: [Int], repeats: Int = 1) {
        var forward: [String: [Double]] = [:], backward: [String: [Double]] = [:]
        let weightLayers = model.namedLayers().filter { $0.layer is Linear || $0.layer is Conv2d }
        let timings = weightLayers.map { _ in LayerTiming() }
        for (named, timing) in zip(weightLayers, timings) { setTiming(named.layer, timing) }
        defer { for named in weightLayers { setTiming(named.layer, nil) } }
        for _ in 0..<max(1, repeats) {
            var h = x
            for (name, layer) in model.layers {
                let t = Date(); h = layer.forward(h, training: true)
                forward[name, default: []].append(Date().timeIntervalSince(t))
            }
            var g = CrossEntropy().evaluate(logits: h, labels: labels).gradient
            for (name, layer) in model.layers.reversed() {
                let t = Date(); g = layer.backward(g)
                backward[name, default: []].append(Date().timeIntervalSince(t))
            }
        }
        func median(_ v: [Double]?) -> Double { BenchEnvironment.medianOf(v ?? []) }
        let precision = repeats > 1 ? 3 : 1
        for (name, _) in model.layers {
            print(String(format: "  %@ forward %8.*f ms  backward %8.*f ms",
                         name.padding(toLength: 10, withPad: " ", startingAt: 0) as NSString, precision,
                         median(forward[name]) * 1000, precision, median(backward[name]) * 1000))
        }
        // A weight layer's passes, and what its module spends besides them.
        var inWeightLayers: [String: Double] = [:]
        print("  weight layers (own forward and backward, kernel, GFLOP/s of the multiply-adds the kernel does):")
        for (named, timing) in zip(weightLayers, timings) {
            let f = median(timing.forward), b = median(timing.backward)
            let module = String(named.name.split(separator: ".").first ?? "")
            inWeightLayers[module, default: 0] += f + b
            let kernel = (named.layer as? WeightLayer).map { $0.kernel.isDense ? "dense" : "sparse" } ?? ""
            let rate = (named.layer as? WeightLayer).map { multiplyAdds($0, batch: labels.count) * 2 / (f + b) / 1e9 } ?? 0
            print(String(format: "    %@ forward %8.*f ms  backward %8.*f ms  %@ %6.1f GFLOP/s",
                         named.name.padding(toLength: 22, withPad: " ", startingAt: 0) as NSString, precision,
                         f * 1000, precision, b * 1000, kernel.padding(toLength: 6, withPad: " ", startingAt: 0) as NSString,
                         rate))
        }
        let rest = model.layers.map { name, _ in
            String(format: "%@ %.*f", name as NSString, precision,
                   (median(forward[name]) + median(backward[name]) - (inWeightLayers[name] ?? 0)) * 1000)
        }
        print("  besides the weight layers (ms, forward + backward): " + rest.joined(separator: ", "))
    }

    /// The multiply-adds of one training step's passes of a weight layer as its kernel
    /// does them: the weights it multiplies by (the active ones on a sparse kernel, all
    /// of them on the dense one) times the output positions of the batch, once for the
    /// forward, once for the weight gradient and once more for the input gradient when
    /// the layer computes it (update steps' dense gradient aside).
    static func multiplyAdds(_ layer: WeightLayer, batch: Int) -> Double {
        let weights = (layer.kernel as? SparseWeightKernel)?.pattern.count ?? layer.weight.value.count
        var positions = batch
        if let conv = layer as? Conv2d, let plane = conv.inputPlane {
            let out = { (n: Int) in (n + 2 * conv.padding - conv.kernelSize) / conv.stride + 1 }
            positions *= out(plane.height) * out(plane.width)
        }
        return Double(weights) * Double(positions) * Double(layer.computesInputGradient ? 3 : 2)
    }

    private static func setTiming(_ layer: Layer, _ timing: LayerTiming?) {
        if let conv = layer as? Conv2d { conv.timing = timing }
        if let linear = layer as? Linear { linear.timing = timing }
    }
}
