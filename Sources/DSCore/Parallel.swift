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

    // MARK: Threads that share no cache

    /// Set while the threads' last measured round trip says they share no cache: loops
    /// that are not pinned then need `apartWorkFactor` times more work before they go on
    /// several threads.
    private static let apart: UnsafeMutablePointer<Int64> = {
        let p = UnsafeMutablePointer<Int64>.allocate(capacity: 8)
        p.initialize(repeating: 0, count: 8)
        return p
    }()
    /// When the last measurement was taken (seconds, monotonic), and what it said.
    nonisolated(unsafe) private static var probedAt = -Double.infinity
    /// No measurement before this (25 ms after one that failed).
    nonisolated(unsafe) private static var retryAt = -Double.infinity
    nonisolated(unsafe) public private(set) static var lastRoundTripNanoseconds: Double?

    /// A round trip at or above this means cores that share no cache (measured on this
    /// machine kind: about 60 ns on cores that share one, 300–400 ns otherwise).
    public static let apartRoundTripNanoseconds = 150.0
    /// How much more work a loop that is not pinned needs on cores that share no cache.
    /// Such a loop hands its data from thread to thread, which then costs more than the
    /// second thread gains below about half a million elements. Measured with the CPUs
    /// apart: the 90% MLP step (every loop of it below that) 0.49 ms on two threads
    /// against 0.35 ms with this factor (one thread: 0.35 ms; ×4 left its largest loops
    /// on two threads, 0.53 ms); our dense MLP step and ResNet-20's sparse step the
    /// same with and without it (×16 made the dense step 12% slower: its optimizer loop
    /// over 235,000 weights gains from the second thread).
    public static let apartWorkFactor = 8

    /// Whether the threads ran on cores that share no cache at the last measurement.
    public static var threadsApart: Bool { dst_atomic_load(apart) != 0 }

    /// Measures the threads' round trip again (`WorkerPool.roundTrip`, about 3 µs on
    /// close cores, 15 µs apart) when the last measurement is older than `interval`
    /// seconds. The host may move the threads between cores at any time; the trainer
    /// calls this at every step, so a change takes effect within a quarter of a second.
    public static func refreshPlacement(interval: Double = 0.25) {
        guard dst_parallel_depth() == 0, threads > 1, WorkerPool.shared.workers > 0 else { return }
        let now = WorkerPool.seconds()
        guard now - probedAt >= interval, now >= retryAt else { return }
        guard let trip = WorkerPool.shared.roundTrip() else {
            // Try again 25 ms later: a worker that has only just started misses the first
            // loop it could have seen, and a sleeping one may wake too late.
            retryAt = now + 0.025
            placementProbes.failed += 1
            return
        }
        probedAt = now
        lastRoundTripNanoseconds = trip
        let isApart = trip >= apartRoundTripNanoseconds
        dst_atomic_store(apart, isApart ? 1 : 0)
        if isApart { placementProbes.apart += 1 } else { placementProbes.close += 1 }
    }

    /// Counts of `refreshPlacement`'s measurements: close, apart, and failed (the pool
    /// busy or the worker late), for reports; reset by whoever reads them.
    nonisolated(unsafe) public static var placementProbes = (close: 0, apart: 0, failed: 0)

    /// Sets what the last measurement would have said (tests).
    static func assumeThreadsApart(_ on: Bool) { dst_atomic_store(apart, on ? 1 : 0) }

    /// `work` as the thresholds of loops that are not pinned see it.
    @inlinable
    static func unpinnedWork(_ work: Int) -> Int { threadsApart ? work / apartWorkFactor : work }

    /// Runs `body(i)` for `i` in `0..<count`, on several threads when `work`
    /// (an estimate of the elements touched) is large enough to pay for waking them.
    @inlinable
    public static func forEach(_ count: Int, work: Int, _ body: (Int) -> Void) {
        if count <= 1 || unpinnedWork(work) < 32_768 || threads <= 1 {
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
        pinnedParts(total, work: unpinnedWork(work), split: split)
    }

    /// `parts` for pinned loops, which keep their data on its thread: the plain threshold.
    @inlinable
    static func pinnedParts(_ total: Int, work: Int, split: Int = 1) -> Int {
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
        let parts = pinnedParts(batch, work: work)
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
        let parts = pinnedParts(halves * max(items, 1), work: work)
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
