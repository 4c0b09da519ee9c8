import CMachineInfo
import COpenBLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The library's threading: OpenBLAS runs single-threaded and the library splits
/// large GEMMs and loops over its own threads (`WorkerPool`), so no BLAS worker spins
/// while library code runs on the other core.
public enum Parallel {
    /// All cores (what `threads` is outside any `withThreads` scope).
    public static let processors = max(Int(openblas_get_num_procs()), 1)

    @TaskLocal static var scopedThreads: Int?

    /// Threads used for GEMMs and parallel loops here: the innermost `withThreads`
    /// value, else all cores.
    public static var threads: Int { scopedThreads ?? processors }

    /// Runs `body` with `count` threads (`0` = all cores). The setting is scoped to
    /// this task, so concurrent runs with different counts do not interfere.
    public static func withThreads<T>(_ count: Int, _ body: () throws -> T) rethrows -> T {
        prepareProcess()
        return try $scopedThreads.withValue(count > 0 ? count : processors, operation: body)
    }

    /// Process set-up, idempotent: OpenBLAS runs one thread (the library splits GEMMs
    /// itself), and large freed blocks stay in the heap, so per-step activation
    /// buffers are reused without page faults.
    public static func prepareProcess() {
        openblas_set_num_threads(1)
        #if os(Linux)
        // Serve every block from the heap (no per-allocation mmap) and never trim it:
        // activation-sized buffers are then reused step after step without page faults.
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }

    /// Runs `body(i)` for `i` in `0..<count`, on several threads when `work`
    /// (an estimate of the elements touched) is large enough to pay for waking them.
    @inlinable
    public static func forEach(_ count: Int, work: Int, _ body: (Int) -> Void) {
        if count <= 1 || work < 32_768 || threads <= 1 {
            for i in 0..<count { body(i) }
        } else {
            run(count, body)
        }
    }

    /// Runs `body(i)` for `i` in `0..<count` on `threads` threads: the worker pool,
    /// or GCD while the pool serves another caller; serially inside a parallel body.
    @usableFromInline
    static func run(_ count: Int, _ body: (Int) -> Void) {
        if dst_parallel_depth() > 0 {
            for i in 0..<count { body(i) }
        } else if count > WorkerPool.maxCount {
            let parts = threads
            run(parts) { p in for i in (count * p / parts)..<(count * (p + 1) / parts) { body(i) } }
        } else if !WorkerPool.shared.run(count, participants: threads, body) {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// How many ranges `forRanges(total, work: work, split: split)` runs: 1 when `work`
    /// is too small to pay for waking a thread. Two-phase loops (each part counted, then
    /// written at its offset) size their parts with it.
    @inlinable
    public static func parts(_ total: Int, work: Int, split: Int = 1) -> Int {
        (work < 65_536 || threads <= 1) ? 1 : max(min(threads * max(split, 1), total), 1)
    }

    /// Splits `0..<total` into `threads · split` contiguous ranges and runs them in
    /// parallel (serially when `work` is small). A `split` above 1 lets a thread that
    /// starts late take fewer ranges, at the cost of more, smaller bodies.
    @inlinable
    public static func forRanges(_ total: Int, work: Int, split: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = parts(total, work: work, split: split)
        if parts <= 1 { body(0..<total); return }
        run(parts) { p in body((total * p / parts)..<(total * (p + 1) / parts)) }
    }
}
