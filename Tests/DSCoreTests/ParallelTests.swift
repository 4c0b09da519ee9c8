import Foundation
import Testing
@testable import DSCore

/// The worker pool behind `Parallel`: every index runs exactly once, whatever the loop
/// size, back to back (the workers' polling window), after the workers fell asleep,
/// nested inside a loop body (run serially) and from two callers at once (one of
/// them falls back to GCD).
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
}
