import ArgumentParser
import DSCore
import DSData
import DSLayers
import DSSparsity
import DSTraining
import Foundation

/// The cost of sparsity per strategy: one mask update plus `ΔT` steps of masking
/// gradients and weights, as a share of the training time between two updates, all
/// measured in the same run.
struct MaskUpdateCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mask-update")

    @Option(help: "Comma-separated model names.") var models = "resnet20,resnet18"
    @Option(help: "Overall sparsity.") var sparsity = 0.9
    @Option(help: "ΔT: optimizer steps between mask updates.") var interval = 100
    @Option(help: "Batch size of the training steps.") var batch = 128
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Timed training steps (median taken).") var steps = 5
    @Option(help: "Timed mask updates per strategy (median taken).") var updates = 3
    @Option(help: "Write a CSV of the results here.") var csv: String?

    func run() throws { try Parallel.withThreads(threads) { try measure() } }

    func measure() throws {
        var lines = ["model,strategy,sparsity,update_ms,masking_ms_per_step,step_ms,interval,share_of_training"]
        for name in models.split(separator: ",").map(String.init) {
            var rng = Xoshiro256(seed: 1)
            let input = ModelInput(channels: 3, height: 32, width: 32, classes: 10)
            let model = try ModelRegistry.build(name, input: input, rng: &rng)
            let parameters = model.namedParameters().map(\.parameter)
            let optimizer = SGD(parameters: parameters, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
            var x = Tensor(shape: [3, batch, 32, 32])
            for i in 0..<x.count { x.storage[i] = rng.normal() }
            let labels = (0..<batch).map { _ in rng.index(below: 10) }
            step(model, optimizer, x, labels)
            var stepTimes: [Double] = []
            for _ in 0..<steps {
                let t = Date(); step(model, optimizer, x, labels); stepTimes.append(Date().timeIntervalSince(t))
            }
            let stepTime = stepTimes.sorted()[stepTimes.count / 2]
            let strategies: [any SparsityScheduler] = [SETStrategy(), RigLStrategy(), SRigLStrategy()]
            for strategy in strategies {
                // A fresh copy of the model for each strategy (same seed, dense weights).
                var freshRNG = Xoshiro256(seed: 1)
                let model = try ModelRegistry.build(name, input: input, rng: &freshRNG)
                let parameters = model.namedParameters().map(\.parameter)
                step(model, SGD(parameters: parameters, momentum: 0.9), x, labels)   // fills the dense gradient
                var maskRNG = Xoshiro256(seed: 2)
                let settings = SparsitySettings(
                    strategy: strategy, sparsity: sparsity, distribution: .erk,
                    schedule: UpdateSchedule(interval: interval, endStep: Int.max, initialDropFraction: 0.3))
                let sparse = try SparseModel(model: model, parameters: parameters, settings: settings, rng: &maskRNG)
                var times: [Double] = []
                for u in 0..<updates {
                    let updateStep = interval * (u + 1)
                    sparse.prepareGradients(forStep: updateStep)   // keeps the (current) dense gradient
                    let t = Date()
                    _ = sparse.afterStep(updateStep, rng: &maskRNG)
                    times.append(Date().timeIntervalSince(t))
                }
                let updateTime = times.sorted()[times.count / 2]
                // The per-step masking of gradients and weights between updates.
                var maskTimes: [Double] = []
                for _ in 0..<updates {
                    let t = Date()
                    sparse.prepareGradients(forStep: 1)
                    _ = sparse.afterStep(1, rng: &maskRNG)
                    maskTimes.append(Date().timeIntervalSince(t))
                }
                let maskTime = maskTimes.sorted()[maskTimes.count / 2]
                let overhead = updateTime + Double(interval) * maskTime
                let share = overhead / (overhead + Double(interval) * stepTime)
                print(String(format: "%-9@ %-6@ sparsity %.2f: update %.1f ms, masking %.2f ms/step, step %.1f ms; "
                             + "share of training at ΔT=%d: %.2f%%",
                             name as NSString, strategy.name as NSString, sparsity, updateTime * 1000, maskTime * 1000,
                             stepTime * 1000, interval, share * 100))
                lines.append(String(format: "%@,%@,%.2f,%.2f,%.3f,%.2f,%d,%.5f", name, strategy.name, sparsity,
                                    updateTime * 1000, maskTime * 1000, stepTime * 1000, interval, share))
            }
        }
        if let csv {
            try BenchEnvironment.writeCSV(lines, to: csv)
        }
    }

    /// One forward + backward + SGD step.
    func step(_ model: Sequential, _ optimizer: Optimizer, _ x: Tensor, _ labels: [Int]) {
        model.zeroGradients()
        let r = CrossEntropy().evaluate(logits: model.forward(x, training: true), labels: labels)
        _ = model.backward(r.gradient)
        optimizer.step(learningRate: 0.01)
    }
}
