import CMachineInfo
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The persistent worker threads behind `Parallel` (one fewer than the cores; the
/// calling thread is the last participant).
///
/// A training step runs dozens of parallel loops of 20–500 µs, separated by short
/// serial stretches. Waking a sleeping thread for each one (what `concurrentPerform`
/// does) costs 5–20 µs and, measured on the 90%-sparse MLP step, made two threads slower
/// than one. Here a worker that finishes a loop keeps polling for the next one for
/// `spinSeconds` before it sleeps on a condition variable, so back-to-back loops start
/// within a microsecond.
///
/// A loop is published as one atomic ticket `generation (24 bits) | pinned (1) | count
/// (19) | claims (20)`: participants claim iterations by compare-and-swap on it, so a
/// worker that looks late at a finished loop cannot claim an iteration of another. In an
/// ordinary loop `claims` is the next index, taken in turn by whoever comes first. In a
/// *pinned* loop (`pinned` set, at most 20 iterations) it is a bit per iteration, and
/// participant `p` (the caller is 0, worker `w` is `w`) claims iteration `p` first, then
/// any left unclaimed: loops that split the same data the same way then leave each part
/// in the caches of the core that made it, while a worker that is asleep or descheduled
/// still only delays its part until another participant takes it. The iteration bodies
/// and their order per index are the caller's; which thread runs an index does not
/// change any result.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(workers: Parallel.processors - 1)

    /// Iterations per loop the ticket can count (larger loops are run in ranges).
    static let maxCount = (1 << 19) - 1
    /// Iterations of a pinned loop (a claim bit each).
    static let maxPinned = 20
    /// How long an idle worker polls before it sleeps.
    static let spinSeconds = 0.0005

    let workers: Int
    /// Shared words, one per cache line (`Word` is the line index).
    private let words: UnsafeMutablePointer<Int64>
    private enum Word: Int { case ticket = 0, done, participants, sleepers, busy, probe }
    /// The loop bodies of the current and the previous generation.
    private let bodies: UnsafeMutablePointer<(Int) -> Void>
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    /// The generation last published (read and written by the submitter only).
    private var generation: Int64 = 0

    private init(workers: Int) {
        self.workers = max(workers, 0)
        words = .allocate(capacity: 6 * 8)
        words.initialize(repeating: 0, count: 6 * 8)
        bodies = .allocate(capacity: 2)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        pthread_cond_init(wake, nil)
        for w in 0..<self.workers {
            let thread = Thread { [unowned self] in self.workerLoop(index: w + 1) }
            thread.start()
        }
    }

    private func word(_ w: Word) -> UnsafeMutablePointer<Int64> { words + w.rawValue * 8 }

    private static func generation(of ticket: Int64) -> Int64 { ticket >> 40 }
    private static func pinned(_ ticket: Int64) -> Bool { (ticket >> 39) & 1 != 0 }
    private static func count(of ticket: Int64) -> Int { Int((ticket >> 20) & 0x7FFFF) }
    private static func index(of ticket: Int64) -> Int { Int(ticket & 0xFFFFF) }

    /// Runs `body(i)` for `i` in `0..<count` on the calling thread and up to
    /// `participants - 1` workers; `pinned`: iteration `p` on participant `p` unless
    /// that one is late (at most `maxPinned` iterations). False (nothing run) when the
    /// pool is serving another caller or `count` is too large.
    func run(_ count: Int, participants: Int, pinned: Bool = false, prepare: () -> Void = {},
             _ body: (Int) -> Void) -> Bool {
        guard count <= (pinned ? Self.maxPinned : Self.maxCount), workers > 0,
              dst_atomic_compare_exchange(word(.busy), 0, 1) != 0 else { return false }
        prepare()   // while the pool is this caller's alone
        withoutActuallyEscaping(body) { escapable in
            generation = (generation + 1) & 0xFFFFFF
            let slot = bodies + Int(generation & 1)
            slot.initialize(to: escapable)
            dst_atomic_store(word(.done), 0)
            dst_atomic_store(word(.participants), Int64(participants))
            let ticket = (generation << 40) | (pinned ? 1 << 39 : 0) | (Int64(count) << 20)
            dst_atomic_store(word(.ticket), ticket)
            if dst_atomic_load(word(.sleepers)) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(mutex)
            }
            claim(generation: generation, participant: 0)
            var spins = 0
            while dst_atomic_load(word(.done)) < Int64(count) {
                spins += 1
                if spins & 1023 == 0 { sched_yield() } else { dst_cpu_relax() }
            }
            slot.deinitialize(count: 1)
        }
        dst_atomic_store(word(.busy), 0)
        return true
    }

    /// Claims and runs iterations of `generation` until none is left (in a pinned loop
    /// iteration `participant` first).
    private func claim(generation: Int64, participant: Int) {
        let depth = dst_parallel_depth()
        dst_set_parallel_depth(depth + 1)
        defer { dst_set_parallel_depth(depth) }
        while true {
            let t = dst_atomic_load(word(.ticket))
            guard Self.generation(of: t) == generation else { return }
            let i: Int, claimed: Int64
            if Self.pinned(t) {
                let free = ~Self.index(of: t) & ((1 << Self.count(of: t)) - 1)
                guard free != 0 else { return }
                i = free >> participant & 1 != 0 ? participant : free.trailingZeroBitCount
                claimed = t | Int64(1 << i)
            } else {
                i = Self.index(of: t)
                guard i < Self.count(of: t) else { return }
                claimed = t + 1
            }
            if dst_atomic_compare_exchange(word(.ticket), t, claimed) != 0 {
                bodies[Int(generation & 1)](i)
                _ = dst_atomic_fetch_add(word(.done), 1)
            }
        }
    }

    /// The cache-line round trip between the calling thread and worker 1, in ns: a
    /// pinned loop of two parts that pass a line back and forth, the median of three
    /// batches of `rounds` trips. Nil when there is no worker, the pool is serving another
    /// caller, the worker did not take its part within a millisecond, or the trips took
    /// more than 2 ms in all (the worker descheduled: a busy machine). No wait is
    /// unbounded: a side that gives up says so (−1), and the worker gives up after 10 ms
    /// without a ping.
    func roundTrip(rounds: Int = 16) -> Double? {
        let line = word(.probe)
        var batches: [Double] = []
        /// Waits until the line holds `value` (true), or −1, or `deadline` (false).
        func reached(_ value: Int64, by deadline: Double) -> Bool {
            var spins = 0
            while true {
                let v = dst_atomic_load(line)
                if v == value { return true }
                if v == -1 { return false }
                spins += 1
                if spins & 255 == 0 && Self.seconds() > deadline { return false }
                dst_cpu_relax()
            }
        }
        let ran = run(2, participants: 2, pinned: true, prepare: { dst_atomic_store(line, 0) }) { part in
            if part == 1 {
                // Say hello (0 → 1) unless the caller gave up (0 → −1), then answer.
                guard dst_atomic_compare_exchange(line, 0, 1) != 0 else { return }
                var deadline = Self.seconds() + 0.01
                for i in 0..<(3 * rounds) {
                    guard reached(Int64(2 * i + 2), by: deadline) else { dst_atomic_store(line, -1); return }
                    deadline = Self.seconds() + 0.01
                    // An answer unless the caller gave up in between (−1 stays).
                    guard dst_atomic_compare_exchange(line, Int64(2 * i + 2), Int64(2 * i + 3)) != 0 else { return }
                }
                return
            }
            let deadline = Self.seconds() + 0.001
            while true {
                let v = dst_atomic_load(line)
                if v == 1 { break }
                if v == -1 { return }   // the worker said hello and gave up waiting for us
                if Self.seconds() > deadline, dst_atomic_compare_exchange(line, 0, -1) != 0 { return }
                dst_cpu_relax()
            }
            let giveUp = Self.seconds() + 0.002
            for b in 0..<3 {
                let start = Self.seconds()
                for i in (b * rounds)..<((b + 1) * rounds) {
                    dst_atomic_store(line, Int64(2 * i + 2))
                    guard reached(Int64(2 * i + 3), by: giveUp) else { dst_atomic_store(line, -1); return }
                }
                batches.append((Self.seconds() - start) / Double(rounds) * 1e9)
            }
        }
        return ran && batches.count == 3 ? batches.sorted()[1] : nil
    }

    private func workerLoop(index: Int) {
        var seen = Self.generation(of: dst_atomic_load(word(.ticket)))
        while true {
            var spins = 0
            var idleSince = 0.0
            while Self.generation(of: dst_atomic_load(word(.ticket))) == seen {
                spins += 1
                dst_cpu_relax()
                guard spins & 255 == 0 else { continue }
                let now = Self.seconds()
                if idleSince == 0 { idleSince = now; continue }
                if now - idleSince < Self.spinSeconds { continue }
                _ = dst_atomic_fetch_add(word(.sleepers), 1)
                pthread_mutex_lock(mutex)
                while Self.generation(of: dst_atomic_load(word(.ticket))) == seen { pthread_cond_wait(wake, mutex) }
                pthread_mutex_unlock(mutex)
                _ = dst_atomic_fetch_add(word(.sleepers), -1)
            }
            seen = Self.generation(of: dst_atomic_load(word(.ticket)))
            if index < Int(dst_atomic_load(word(.participants))) { claim(generation: seen, participant: index) }
        }
    }

    static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
