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
    /// `pinned` (at most `WorkerPool.maxPinned` iterations): iteration `p` on thread `p`
    /// (the caller is thread 0) whenever that thread is there to take it.
    @usableFromInline
    static func run(_ count: Int, pinned: Bool = false, _ body: (Int) -> Void) {
        if dst_parallel_depth() > 0 {
            for i in 0..<count { body(i) }
        } else if count > WorkerPool.maxCount {
            let parts = threads
            run(parts) { p in for i in (count * p / parts)..<(count * (p + 1) / parts) { body(i) } }
        } else if !WorkerPool.shared.run(count, participants: threads, pinned: pinned && count <= WorkerPool.maxPinned,
                                         body) {
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

    // MARK: Batches split by images

    /// The images of thread part `part` of `parts`: contiguous, in order.
    @inlinable
    public static func images(part: Int, of parts: Int, batch: Int) -> Range<Int> {
        (batch * part / parts)..<(batch * (part + 1) / parts)
    }

    /// Splits a batch of `batch` images into one contiguous range per thread, range `p`
    /// always on thread `p` when it is there to take it (serially when `work` is small).
    ///
    /// The layers of a convolutional network split their batch this way wherever the
    /// work allows it (convolutions, batch norm, ReLU, residual adds), so each thread
    /// reads what it wrote itself in the loop before. When the two threads run on cores
    /// that share no cache, any other split moves the activations between the cores at
    /// every layer: measured on ResNet-20, SRigL 90%, a step 1.4x longer.
    @inlinable
    public static func forImages(_ batch: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let parts = parts(batch, work: work)
        if parts <= 1 { body(0..<batch); return }
        run(parts, pinned: true) { p in body(images(part: p, of: parts, batch: batch)) }
    }

    /// Sums over a batch are taken in two fixed halves, added at the end
    /// (`halfImages`), so that they are the same whatever the thread count.
    public static let halves = 2

    /// The images of half `half` of a batch.
    @inlinable
    public static func halfImages(_ half: Int, batch: Int) -> Range<Int> {
        images(part: half, of: halves, batch: batch)
    }

    /// Runs `body(half, items)` for both halves of a batch and every item of `0..<items`
    /// (channels, rows): on one thread half after half, else with thread `p` of `T` on
    /// half `2p/T` (thread `p`'s images in `forImages` when `T` is even) and its share of
    /// the items.
    @inlinable
    public static func forHalves(items: Int, work: Int, _ body: (_ half: Int, _ items: Range<Int>) -> Void) {
        let parts = parts(halves * max(items, 1), work: work)
        if parts <= 1 {
            for h in 0..<halves { body(h, 0..<items) }
            return
        }
        run(parts, pinned: true) { p in
            let h = halves * p / parts
            let first = (parts * h + halves - 1) / halves, last = (parts * (h + 1) + halves - 1) / halves
            let k = last - first, q = p - first
            body(h, (items * q / k)..<(items * (q + 1) / k))
        }
    }

    /// Runs `body(run)` over the elements of channel-major `[C, N, plane]` data, each
    /// thread on its images of every channel (`forImages`).
    @inlinable
    public static func forImageRuns(channels: Int, batch: Int, plane: Int, work: Int, _ body: (Range<Int>) -> Void) {
        forImages(batch, work: work) { images in
            guard !images.isEmpty else { return }
            for c in 0..<channels {
                let start = (c * batch + images.lowerBound) * plane
                body(start..<(start + images.count * plane))
            }
        }
    }

    /// Runs `body(range)` over the `count` elements of a tensor of shape `shape` in
    /// parts: a rank-4 activation (channel-major `[C, N, H, W]`) by images
    /// (`forImageRuns`), anything else in contiguous ranges (`forRanges`).
    @inlinable
    public static func forElements(of shape: [Int], count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        if shape.count == 4 {
            forImageRuns(channels: shape[0], batch: shape[1], plane: shape[2] * shape[3], work: work, body)
        } else {
            forRanges(count, work: work, body)
        }
    }
}
