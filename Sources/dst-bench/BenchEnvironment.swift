import DSCore
import DSData
import Foundation

/// The BLAS kernels every benchmark row ran with: the `blas_core` and `blas_fallback`
/// columns, and a warning before any table when the dense baselines ran on a core
/// weaker than the CPU supports (which inflates every "vs dense" ratio).
enum BenchEnvironment {
    static let blasCore = BLASInfo.current.core
    static var fallback: Bool { BLASCoreSelection.isFallback(core: blasCore, cpu: .current) }
    static let csvColumns = "blas_core,blas_fallback"
    static var csvCells: String { "\(blasCore),\(fallback ? 1 : 0)" }

    /// The median of `values` (0 when empty).
    static func medianOf(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.sorted()[values.count / 2]
    }

    /// Median seconds of `count` calls of `body(i)` (`i` from 1), after one untimed
    /// warm-up call `body(1)`.
    static func median(_ count: Int, _ body: (Int) -> Void) -> Double {
        body(1)
        var times: [Double] = []
        for i in 0..<max(count, 1) {
            let t = Date()
            body(i + 1)
            times.append(Date().timeIntervalSince(t))
        }
        return medianOf(times)
    }

    /// Median seconds of `first(i)` and of `second(i)` (`i` from 1), timed in alternating
    /// rounds, for a ratio of the two that holds while the machine's speed drifts. Short
    /// steps (under 10 ms in the untimed warm-up pair) run in rounds of five calls each,
    /// the first of each round untimed, so neither is timed on the other's cache
    /// contents, and at least 100 of each are timed (they are cheap, and the machine is
    /// noisy); long ones alternate call by call, `count` timed calls of each.
    static func pairedMedians(_ count: Int, _ first: (Int) -> Void, _ second: (Int) -> Void) -> (Double, Double) {
        let t0 = Date()
        first(1); second(1)
        let round = Date().timeIntervalSince(t0) < 0.01 ? 5 : 1
        var a: [Double] = [], b: [Double] = []
        func timed(_ body: (Int) -> Void, into times: inout [Double]) {
            for j in 0..<round {
                let t = Date()
                body(times.count + 2)
                if round == 1 || j > 0 { times.append(Date().timeIntervalSince(t)) }
            }
        }
        let wanted = round > 1 ? max(count, 100) : max(count, 1)
        while a.count < wanted {
            timed(first, into: &a)
            timed(second, into: &b)
        }
        return (medianOf(a), medianOf(b))
    }

    /// Writes CSV `lines` (a header, then rows) with the two columns added.
    static func writeCSV(_ lines: [String], to path: String) throws {
        guard let header = lines.first else { return }
        let all = [header + "," + csvColumns] + lines.dropFirst().map { $0 + "," + csvCells }
        try FileReading.writeAtomically(Data((all.joined(separator: "\n") + "\n").utf8), to: path)
    }

    static func warnIfFallback() {
        let chooser = BLASCoreSelection.outcome?.chooser.rawValue ?? "library"
        print("BLAS: OpenBLAS \(BLASInfo.current.version), core \(blasCore) (chosen by \(chooser)), CPU \(CPUInfo.current.model)")
        if fallback {
            print("warning: OpenBLAS runs its \(blasCore) kernels, weaker than this CPU supports: dense baselines are slow "
                  + "and every ratio against them is inflated (unset OPENBLAS_CORETYPE to let dst-bench select a core)")
        }
    }
}
