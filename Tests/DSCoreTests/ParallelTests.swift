import CMachineInfo
import Foundation
import Testing
@testable import DSCore

/// The worker pool behind `Parallel`: every index runs exactly once, whatever the loop
/// size, back to back (the workers' polling window), after the workers fell asleep,
/// nested inside a loop body (run serially) and from two callers at once (one of
/// them falls back to GCD); pinned loops run part 0 on the caller and the others on the
/// workers that own them; batches split by images and halves cover every image once.
@Suite struct ParallelTests {
    /// Runs `Parallel.forEach(count)` and returns how often each index ran.
    func counts(_ count: Int) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
        hits.initialize(repeating: 0, count: max(count, 1))
        defer { hits.deallocate() }
        Parallel.forEach(count, work: Int.max) { i in hits[i] += 1 }   // each index is one slot: no race
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    @Test func everyIndexRunsOnce() {
        Parallel.withThreads(2) {
            for count in [2, 3, 17, 1000] + [Int](repeating: 64, count: 200) {
                #expect(counts(count) == [Int](repeating: 1, count: count), "count \(count)")
            }
            Thread.sleep(forTimeInterval: 0.01)   // past the polling window: workers sleep
            #expect(counts(50) == [Int](repeating: 1, count: 50), "after the workers slept")
        }
    }

    /// Flags cleared in parts are all clear, in memory a set array of the same size
    /// just gave back, on one thread and in parts on two.
    @Test func flagsClearedInPartsAreClear() {
        for threads in [1, 2] {
            Parallel.withThreads(threads) {
                for count in [0, 1, 65_535, 65_536, 200_003] {
                    do { let set = [Bool](repeating: true, count: count); #expect(set.trueCount == count) }
                    let flags = [Bool](clearedInParts: count)
                    #expect(flags.count == count && flags.trueCount == 0, "threads \(threads) count \(count)")
                }
            }
        }
    }

    @Test func nestedLoopsRunEveryIndex() {
        Parallel.withThreads(2) {
            let total = UnsafeMutablePointer<Int>.allocate(capacity: 8 * 8)
            total.initialize(repeating: 0, count: 64)
            defer { total.deallocate() }
            Parallel.forEach(8, work: Int.max) { i in
                Parallel.forEach(8, work: Int.max) { j in total[i * 8 + j] += 1 }
            }
            #expect(Array(UnsafeBufferPointer(start: total, count: 64)) == [Int](repeating: 1, count: 64))
        }
    }

    @Test func concurrentCallersEachGetEveryIndex() {
        let results = UnsafeMutablePointer<Bool>.allocate(capacity: 2)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { caller in
            results[caller] = Parallel.withThreads(2) {
                (0..<100).allSatisfy { _ in counts(37) == [Int](repeating: 1, count: 37) }
            }
        }
        #expect(results[0] && results[1])
    }

    /// `forRanges(split:)` hands out `threads · split` contiguous, disjoint ranges (fewer
    /// when the total is smaller) that cover every index once.
    @Test func splitRangesCoverEveryIndexOnce() {
        Parallel.withThreads(2) {
            for (total, split, parts) in [(37, 8, 16), (10, 8, 10), (1000, 4, 8), (5, 1, 2)] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: total)
                hits.initialize(repeating: 0, count: total)
                defer { hits.deallocate() }
                let starts = UnsafeMutablePointer<Int>.allocate(capacity: total)   // 1 where a range begins
                starts.initialize(repeating: 0, count: total)
                defer { starts.deallocate() }
                Parallel.forRanges(total, work: Int.max, split: split) { r in
                    starts[r.lowerBound] += 1
                    for i in r { hits[i] += 1 }
                }
                #expect(Array(UnsafeBufferPointer(start: hits, count: total)) == [Int](repeating: 1, count: total),
                        "total \(total) split \(split)")
                let count = UnsafeBufferPointer(start: starts, count: total).reduce(0, +)
                #expect(count == parts, "total \(total) split \(split): \(count) ranges")
            }
        }
    }

    /// A pinned loop runs each part once, part 0 on the calling thread and part 1 on the
    /// worker in at least some of 100 loops back to back (it goes to the caller only when
    /// the worker is late). Each part waits a while for the other to start, so that the
    /// caller, done with a part that takes no time, does not take part 1 before an
    /// awake worker could (part 0 waits up to 1 ms, part 1 up to 100 ms, so a worker that
    /// finished part 1 cannot take part 0 unless the caller stalls that long).
    @Test func pinnedLoopsRunEachPartOnItsThread() {
        let started = UnsafeMutablePointer<Int64>.allocate(capacity: 2)
        let ran = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        let onCaller = UnsafeMutablePointer<Bool>.allocate(capacity: 2)
        defer { started.deallocate(); ran.deallocate(); onCaller.deallocate() }
        var served = 0, partOneOnWorker = 0
        for _ in 0..<100 {
            started.initialize(repeating: 0, count: 2)
            ran.initialize(repeating: 0, count: 2)
            let caller = pthread_self()
            let pooled = WorkerPool.shared.run(2, participants: 2, pinned: true) { p in
                dst_atomic_store(started + p, 1)
                let deadline = Date().addingTimeInterval(p == 0 ? 0.001 : 0.1)
                while dst_atomic_load(started + (1 - p)) == 0 && Date() < deadline {}
                onCaller[p] = pthread_equal(pthread_self(), caller) != 0
                ran[p] += 1
            }
            guard pooled else { continue }   // the pool served another test's loop
            served += 1
            #expect(ran[0] == 1 && ran[1] == 1)
            #expect(onCaller[0], "part 0 ran on the calling thread")
            if !onCaller[1] { partOneOnWorker += 1 }
        }
        #expect(served == 0 || partOneOnWorker > 0, "part 1 ran on the worker in \(partOneOnWorker) of \(served) loops")
    }

    /// `forImages` gives each thread one contiguous range in order, `forHalves` each
    /// (half, item) pair exactly once, for one to five threads.
    @Test func imagePartsAndHalvesCoverEveryImageOnce() {
        for threads in 1...5 {
            Parallel.withThreads(threads) {
                for batch in [1, 2, 7, 128] {
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: batch)
                    hits.initialize(repeating: 0, count: batch)
                    defer { hits.deallocate() }
                    Parallel.forImages(batch, work: Int.max) { images in for n in images { hits[n] += 1 } }
                    #expect(Array(UnsafeBufferPointer(start: hits, count: batch)) == [Int](repeating: 1, count: batch),
                            "threads \(threads) batch \(batch)")
                    #expect(Parallel.halfImages(0, batch: batch).upperBound == Parallel.halfImages(1, batch: batch).lowerBound
                            && Parallel.halfImages(1, batch: batch).upperBound == batch)
                }
                for items in [0, 1, 7, 64] {
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: 2 * max(items, 1))
                    hits.initialize(repeating: 0, count: 2 * max(items, 1))
                    defer { hits.deallocate() }
                    Parallel.forHalves(items: items, work: Int.max) { half, range in
                        for i in range { hits[half * items + i] += 1 }
                    }
                    #expect(Array(UnsafeBufferPointer(start: hits, count: 2 * items)) == [Int](repeating: 1, count: 2 * items),
                            "threads \(threads) items \(items)")
                }
            }
        }
    }

    /// `forElements` covers every element of a rank-4 activation (split by images of
    /// every channel) and of any other shape (contiguous ranges) exactly once.
    @Test func elementPartsCoverEveryElementOnce() {
        for threads in 1...3 {
            Parallel.withThreads(threads) {
                for shape in [[3, 5, 4, 4], [2, 1, 3, 3], [7, 9]] {
                    let count = shape.reduce(1, *)
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
                    hits.initialize(repeating: 0, count: count)
                    defer { hits.deallocate() }
                    Parallel.forElements(of: shape, count: count, work: Int.max) { r in for i in r { hits[i] += 1 } }
                    #expect(Array(UnsafeBufferPointer(start: hits, count: count)) == [Int](repeating: 1, count: count),
                            "threads \(threads) shape \(shape)")
                }
            }
        }
    }

    /// The pool's round-trip probe returns a plausible time or nil (the pool busy with
    /// another test's loop, or the worker too late), and never waits for a part that
    /// does not come: back to back, and after the worker fell asleep.
    @Test func roundTripProbeAlwaysReturns() {
        var measured = 0
        let start = Date()
        for i in 0..<40 {
            if i == 20 { Thread.sleep(forTimeInterval: 0.01) }   // past the polling window
            if let t = WorkerPool.shared.roundTrip() {
                #expect(t > 0 && t <= 2e6 / 16, "round trip \(t) ns")   // at most 2 ms for 48 trips
                measured += 1
            }
        }
        // Other tests' loops may hold the pool: keep trying for a while.
        while measured == 0 && Date().timeIntervalSince(start) < 30 {
            if WorkerPool.shared.roundTrip() != nil { measured += 1 }
        }
        #expect(measured > 0)
    }

    /// Probes from several threads at once (training runs in parallel tests) all return:
    /// only one holds the pool at a time, and a side left waiting gives up.
    @Test(.timeLimit(.minutes(5))) func concurrentProbesAllReturn() {
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<20 { _ = WorkerPool.shared.roundTrip() }
        }
    }

    /// With the threads apart, loops that are not pinned need eight times more work
    /// before they split; pinned ones keep the plain threshold.
    @Test func threadsApartRaiseTheUnpinnedThreshold() {
        Parallel.withThreads(2) {
            defer { Parallel.assumeThreadsApart(false) }
            Parallel.assumeThreadsApart(false)
            #expect(Parallel.parts(100, work: 100_000) == 2)
            Parallel.assumeThreadsApart(true)
            #expect(Parallel.parts(100, work: 100_000) == 1)
            #expect(Parallel.parts(100, work: 16 * 65_536) == 2)
            #expect(Parallel.pinnedParts(100, work: 100_000) == 2)
        }
    }
}
