import Foundation

/// Renders run events: a live bar with ETA on a terminal, one line per epoch otherwise
/// (logs, batch schedulers).
public final class ProgressPrinter {
    let live: Bool
    private var lastDraw = Date.distantPast

    public init(live: Bool = isatty(STDOUT_FILENO) != 0) { self.live = live }

    public func handle(_ event: RunEvent) {
        switch event {
        case let .started(folder, parameters, trainSamples, testSamples):
            emit("run folder \(folder): \(parameters) parameters, \(trainSamples) training / \(testSamples) test samples")
        case let .kernels(choices):
            let sparse = choices.filter(\.sparse).count
            emit("kernels: \(sparse) of \(choices.count) sparse layers on sparse kernels")
            for c in choices { emit("  \(c.description)") }
        case let .kernelSwitch(step, choices):
            if live { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
            for c in choices { emit("step \(step): \(c.description)") }
        case let .batch(p):
            guard live, p.done == p.total || Date().timeIntervalSince(lastDraw) > 0.2 else { return }
            lastDraw = Date()
            let width = 24, filled = width * p.done / max(p.total, 1)
            // Time left: the rest of this epoch plus the remaining epochs at this pace.
            let perBatch = p.elapsed / Double(max(p.done, 1))
            let eta = perBatch * Double(p.total - p.done + (p.epochs - p.epoch) * p.total)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "epoch %d/%d [%@] %d/%d step %d loss %.4f acc %.4f sparsity %.3f ETA %@",
                              p.epoch, p.epochs, bar, p.done, p.total, p.step, p.loss, p.accuracy, p.sparsity,
                              Self.clock(eta))
            FileHandle.standardOutput.write(Data(("\r" + line + "\u{1B}[K").utf8))
        case let .epoch(epoch, epochs, row):
            if live { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
            var line = "epoch \(epoch)/\(epochs) step \(row["step"] ?? "") lr \(row["lr"] ?? "")"
                + " train_loss \(row["train_loss"] ?? "") train_acc \(row["train_acc"] ?? "")"
                + " test_loss \(row["test_loss"] ?? "") test_acc \(row["test_acc"] ?? "")"
            if let v = row["val_acc"] { line += " val_acc \(v)" }
            line += " sparsity \(row["sparsity"] ?? "") \(row["epoch_seconds"] ?? "")s"
            emit(line)
        }
    }

    private func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%02d:%02d", s / 60, s % 60)
    }
}
