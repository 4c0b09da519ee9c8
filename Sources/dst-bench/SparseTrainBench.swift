import ArgumentParser
import DSCore
import DSLayers
import DSSparsity
import DSTraining
import Foundation

/// Sparse training step time against the dense step, all in one run: per model,
/// sparsity and strategy, the masked dense path (`sparse_kernels: off`) and the sparse
/// path (`auto`, the default: each layer on the faster kernel; `--sparse-kernels on`
/// forces every one sparse), each amortised over `ΔT` steps — `ΔT − 1` ordinary steps and one
/// update step (dense gradient, mask update, kernel rebuild) — and the dense model's
/// step on the same batch.
struct SparseTrainThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-sparse")

    @Option(help: "Comma-separated model names.") var models = "mlp,resnet20,resnet18"
    @Option(help: "Comma-separated overall sparsities (ERK).") var sparsities = "0.9,0.99"
    @Option(help: "Comma-separated strategies.") var strategies = "static,rigl,srigl"
    @Option(help: "Comma-separated paths: masked, sparse.") var paths = "masked,sparse"
    @Option(help: "The sparse path's training.sparse_kernels: auto (per-layer choice) or on.") var sparseKernels = "auto"
    @Option(help: "ΔT: optimizer steps between mask updates.") var interval = 100
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Input images of the convolutional models: cifar (3×32×32) or fmnist (1×28×28).") var images = "cifar"
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Timed ordinary steps per case (median taken; each after a step of the dense model, or in rounds of five when a step takes under 10 ms, then at least 100).")
    var steps = 5
    @Option(help: "Timed update steps per dynamic case (median taken; at least 8 when an ordinary step takes under 10 ms).")
    var updates = 2
    @Option(help: "Write a CSV of the results here.") var csv: String?
    @Flag(help: "Print a per-layer time breakdown of one step of each path timed.") var profile = false
    @Flag(inversion: .prefixedNo, help: "Time the dense step (for the ratios).") var dense = true

    func run() throws { try Parallel.withThreads(threads) { try measure() } }

    static func input(_ model: String, images: String = "cifar") -> ModelInput {
        model == "mlp" || images == "fmnist" ? ModelInput(channels: 1, height: 28, width: 28, classes: 10)
                                             : ModelInput(channels: 3, height: 32, width: 32, classes: 10)
    }

    func measure() throws {
        var lines = ["model,strategy,sparsity,batch,threads,path,step_ms,update_step_ms,dense_step_ms,speedup_vs_dense,"
                     + "sparse_kernel_layers,round_trip_ns_before,round_trip_ns_after"]
        guard images == "cifar" || images == "fmnist" else { throw ValidationError("--images \(images): valid: cifar, fmnist") }
        guard let sparseMode = SparseKernelMode(rawValue: sparseKernels), sparseMode != .off else {
            throw ValidationError("--sparse-kernels \(sparseKernels): valid: auto, on")
        }
        for name in models.split(separator: ",").map(String.init) {
            let input = Self.input(name, images: images)
            var rng = Xoshiro256(seed: 1)
            var x = Tensor(shape: [input.channels, batch, input.height, input.width])
            for i in 0..<x.count { x.storage[i] = rng.normal() }
            let labels = (0..<batch).map { _ in rng.index(below: input.classes) }
            let baseline = try Case(model: name, input: input, sparse: nil)
            let denseTime = dense ? baseline.median(steps) { baseline.step(x, labels, n: $0) } : .nan
            print(String(format: "%-9@ dense: %.2f ms/step", name as NSString, denseTime * 1000))
            for sparsity in sparsities.split(separator: ",").compactMap({ Double($0) }) {
                for strategyName in strategies.split(separator: ",").map(String.init) {
                    guard let strategy = Self.strategy(strategyName) else {
                        throw ValidationError("unknown strategy \(strategyName); valid: static, set, rigl, srigl")
                    }
                    for path in paths.split(separator: ",").map(String.init) {
                        guard path == "masked" || path == "sparse" else {
                            throw ValidationError("unknown path \(path); valid: masked, sparse")
                        }
                        let settings = SparsitySettings(
                            strategy: strategy, sparsity: sparsity, distribution: .erk,
                            schedule: UpdateSchedule(interval: interval, endStep: Int.max, initialDropFraction: 0.3),
                            kernels: path == "sparse" ? sparseMode : .off)
                        let c = try Case(model: name, input: input, sparse: settings)
                        Parallel.placementProbes = (0, 0, 0)
                        Parallel.refreshPlacement(interval: 0)   // each case starts from a fresh measurement
                        // The threads' cache-line round trip before and after the case: on a
                        // virtual machine the host may move the CPUs apart while it runs.
                        let tripBefore = CPUInfo.threadRoundTripNanoseconds() ?? .nan
                        // Ordinary steps are 1, 2, …; update steps ΔT, 2ΔT, … (dense gradient + update).
                        // Each is timed right after a step of the dense model, and the case's
                        // ratios use those dense steps: on a shared machine the speed drifts
                        // within a run, and a baseline timed minutes earlier would carry the drift.
                        let (pairedDense, ordinary) = dense
                            ? BenchEnvironment.pairedMedians(steps, { baseline.step(x, labels, n: $0) }, { c.step(x, labels, n: $0) })
                            : (Double.nan, c.median(steps) { c.step(x, labels, n: $0) })
                        var maskUpdates: [Double] = []
                        var layerTimings: [String: [(Double, Double, Double)]] = [:]
                        var warmedUp = false   // the median's untimed first call is not recorded
                        let update = strategy.isDynamic
                            ? c.median(ordinary < 0.01 ? max(updates, 8) : updates) {
                                let t = c.step(x, labels, n: interval * ($0 + 1))
                                defer { warmedUp = true }
                                guard warmedUp else { return }
                                maskUpdates.append(t)
                                for u in c.sparse?.lastUpdateTimings ?? [] {
                                    layerTimings[u.layer, default: []].append((u.selection, u.change, u.rebuild))
                                }
                            } : ordinary
                        let amortised = (Double(interval - 1) * ordinary + update) / Double(interval)
                        let tripAfter = CPUInfo.threadRoundTripNanoseconds() ?? .nan
                        let choices = c.sparse?.kernelChoices ?? []
                        let onSparse = choices.filter(\.sparse).count
                        let ratio = dense ? String(format: "%.2fx vs dense (%.2f ms, timed alongside)", pairedDense / amortised,
                                                   pairedDense * 1000) : "dense not timed"
                        // Three decimals for sub-millisecond steps (the MLP's).
                        let f = ordinary < 0.001 ? "%.3f" : "%.2f"
                        print(String(format: "%-9@ %-6@ %.2f %-6@: \(f) ms/step amortised (ordinary \(f), update \(f)); "
                                     + "%@; %d of %d sparse layers on sparse kernels; threads' round trip %.0f/%.0f ns; "
                                     + "placement probes: %d close, %d apart, %d not taken",
                                     name as NSString, strategyName as NSString, sparsity, path as NSString,
                                     amortised * 1000, ordinary * 1000, update * 1000, ratio as NSString, onSparse,
                                     choices.count, tripBefore, tripAfter, Parallel.placementProbes.close,
                                     Parallel.placementProbes.apart, Parallel.placementProbes.failed))
                        lines.append(String(format: "%@,%@,%.2f,%d,%d,%@,%.3f,%.3f,%.3f,%.3f,%d/%d,%.0f,%.0f", name,
                                            strategyName, sparsity, batch, threads, path, amortised * 1000, update * 1000,
                                            pairedDense * 1000, pairedDense / amortised, onSparse, choices.count,
                                            tripBefore, tripAfter))
                        if strategy.isDynamic {
                            // The mask update within the update step (selections, change,
                            // kernel rebuild), and its share of training at ΔT.
                            let mask = BenchEnvironment.medianOf(maskUpdates)
                            print(String(format: "  mask update %.2f ms of the update step: %.2f%% of training at ΔT = %d",
                                         mask * 1000, mask / (amortised * Double(interval)) * 100, interval))
                        }
                        if profile && strategy.isDynamic {
                            for layer in layerTimings.keys.sorted() {
                                let t = layerTimings[layer]!
                                print(String(format: "  update %@: selection %.3f ms, change %.3f ms, rebuild %.3f ms", layer as NSString,
                                             BenchEnvironment.medianOf(t.map(\.0)) * 1000, BenchEnvironment.medianOf(t.map(\.1)) * 1000,
                                             BenchEnvironment.medianOf(t.map(\.2)) * 1000))
                            }
                        }
                        if profile {
                            c.sparse?.prepareBackward(forStep: 1)   // an ordinary step's backward
                            for choice in choices { print("  \(choice.description)") }
                            Profiler.profile(c.model, x, labels, repeats: 21)
                            c.profilePhases(x, labels, n: 1)
                        }
                    }
                }
            }
        }
        if let csv { try BenchEnvironment.writeCSV(lines, to: csv) }
    }

    /// A registered strategy with its defaults (nil for an unknown name).
    static func strategy(_ name: String) -> (any SparsityScheduler)? { StrategyRegistry.make(name) }

    /// One model (fresh weights, seed 1) with its optimizer and, unless dense, its masks.
    struct Case {
        let model: Sequential
        let optimizer: SGD
        let sparse: SparseModel?

        init(model name: String, input: ModelInput, sparse settings: SparsitySettings?) throws {
            var rng = Xoshiro256(seed: 1)
            let model = try ModelRegistry.build(name, input: input, rng: &rng)
            let parameters = model.namedParameters().map(\.parameter)
            optimizer = SGD(parameters: parameters, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
            var maskRNG = Xoshiro256(seed: 2)
            sparse = try settings.map { try SparseModel(model: model, parameters: parameters, settings: $0, input: input, rng: &maskRNG) }
            self.model = model
        }

        /// Optimizer step `n` (1-based) as the trainer runs it, mask update included;
        /// returns the seconds `afterStep` took.
        @discardableResult
        func step(_ x: Tensor, _ labels: [Int], n: Int) -> Double {
            var maskRNG = Xoshiro256(seed: UInt64(n))
            Parallel.refreshPlacement()   // as the trainer does at every step
            model.zeroGradients()
            let r = CrossEntropy().evaluate(logits: model.forward(x, training: true), labels: labels)
            sparse?.prepareBackward(forStep: n)
            _ = model.backward(r.gradient)
            sparse?.prepareGradients(forStep: n)
            optimizer.step(learningRate: 0.01)
            let t = Date()
            for u in sparse?.afterStep(n, rng: &maskRNG) ?? [] {
                optimizer.zeroState(parameter: u.layer.parameterIndex, at: u.change.dropped + u.change.grown)
            }
            return Date().timeIntervalSince(t)
        }

        /// Prints the time of each phase of ordinary step `n`.
        func profilePhases(_ x: Tensor, _ labels: [Int], n: Int, repeats: Int = 21) {
            var phases: [(String, [Double])] = []
            func timed(_ name: String, _ body: () -> Void) {
                let t = Date(); body(); let dt = Date().timeIntervalSince(t)
                if let i = phases.firstIndex(where: { $0.0 == name }) { phases[i].1.append(dt) } else { phases.append((name, [dt])) }
            }
            for _ in 0..<repeats {
                var maskRNG = Xoshiro256(seed: UInt64(n))
                timed("zero gradients") { model.zeroGradients() }
                var gradient = Tensor(shape: [0])
                timed("forward + loss") { gradient = CrossEntropy().evaluate(logits: model.forward(x, training: true), labels: labels).gradient }
                timed("backward") { sparse?.prepareBackward(forStep: n); _ = model.backward(gradient) }
                timed("gradient masking") { sparse?.prepareGradients(forStep: n) }
                timed("optimizer step") { optimizer.step(learningRate: 0.01) }
                timed("after step") { _ = sparse?.afterStep(n, rng: &maskRNG) }
            }
            print("  phases (median): " + phases.map { String(format: "%@ %.3f ms", $0.0, BenchEnvironment.medianOf($0.1) * 1000) }.joined(separator: ", "))
        }

        func median(_ count: Int, _ body: (Int) -> Void) -> Double { BenchEnvironment.median(count, body) }
    }
}
