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
        return times.sorted()[times.count / 2]
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
