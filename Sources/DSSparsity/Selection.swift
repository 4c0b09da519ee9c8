import CSparseKernels
import DSCore

/// Deterministic top-k selection: larger score first, and on equal scores the lower
/// index (row-major in the `[nOut, fanIn]` view) wins, so a seed reproduces a run.
public enum Selection {
    /// The `k` indices from `candidates` with the largest `score`, in selection order.
    /// O(n + k log k): a selection pass finds the k-th largest score, and only the
    /// indices at or above it are sorted (NaN scores rank below every number).
    public static func largest<C: RandomAccessCollection>(_ k: Int, of candidates: C, score: (Int) -> Float) -> [Int]
    where C.Element == Int {
        var chosen: [(index: Int, key: UInt32)] = []
        chosen.reserveCapacity(min(k, candidates.count))
        select(k, of: candidates, key: { key(score($0)) }) { chosen.append(($0, $1)) }
        chosen.sort { a, b in a.key > b.key || (a.key == b.key && a.index < b.index) }
        return chosen.map(\.index)
    }

    /// The same `k` indices as `largest`, unsorted (those above the k-th largest score
    /// in candidate order, then the ties): for callers that use the selection as a set,
    /// such as a mask update.
    public static func largestSet<C: RandomAccessCollection>(_ k: Int, of candidates: C, score: (Int) -> Float) -> [Int]
    where C.Element == Int {
        var chosen: [Int] = []
        chosen.reserveCapacity(min(k, candidates.count))
        select(k, of: candidates, key: { key(score($0)) }) { i, _ in chosen.append(i) }
        return chosen
    }

    /// Calls `take(index, key)` for the `k` winners by an order-preserving integer key
    /// (`key(score)`, or `magnitudeKey`): those above the k-th largest key in candidate
    /// order, then the lowest-index ties at it.
    @inline(__always)
    private static func select<C: RandomAccessCollection>(_ k: Int, of candidates: C, key: (Int) -> UInt32,
                                                          take: (Int, UInt32) -> Void) where C.Element == Int {
        let n = candidates.count, k = min(k, n)
        guard k > 0 else { return }
        let keys = [UInt32](unsafeUninitializedCapacity: n) { buffer, initialized in
            var j = 0
            for c in candidates { buffer[j] = key(c); j &+= 1 }
            initialized = n
        }
        let threshold = kthLargest(keys, k)
        let (above, ties) = keys.withUnsafeBufferPointer { kp in
            var ties: [Int] = [], above = 0
            for (j, c) in candidates.enumerated() where kp[j] >= threshold {
                if kp[j] > threshold { take(c, kp[j]); above &+= 1 } else { ties.append(c) }
            }
            return (above, ties)
        }
        // Equal keys: the lower index wins.
        for c in (ties.count > k - above ? ties.sorted() : ties).prefix(k - above) { take(c, threshold) }
    }

    /// An unsigned key in the order of the scores.
    @inline(__always)
    static func key(_ score: Float) -> UInt32 {
        let s: Float = score.isNaN ? -.infinity : score == 0 ? 0 : score
        let b = s.bitPattern
        return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }

    /// The `k`-th largest of `keys` (1-based): the C selection (a regular sample bounds
    /// the answer from below when k is small against the count, then branch-free
    /// partitions around median-of-three pivots).
    static func kthLargest(_ keys: [UInt32], _ k: Int) -> UInt32 {
        precondition(k >= 1 && k <= keys.count, "kthLargest: k = \(k) of \(keys.count)")
        return keys.withUnsafeBufferPointer { kp in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * kp.count) { scratch in
                ds_kth_largest(kp.baseAddress!, Int64(kp.count), Int64(k), scratch.baseAddress!)
            }
        }
    }

    /// The `k`-th largest value (1-based), reordering `values`.
    static func quickselect(_ values: inout [UInt32], _ k: Int) -> UInt32 {
        values.withUnsafeMutableBufferPointer { quickselect($0, k) }
    }

    /// The key of `|v|`: the order of magnitudes, NaN below every number (the key
    /// `largestSet` gives the score `abs(v)`).
    @inline(__always)
    public static func magnitudeKey(_ v: Float) -> UInt32 {
        let b = v.bitPattern & 0x7FFF_FFFF
        return b > 0x7F80_0000 ? 0x007F_FFFF : b | 0x8000_0000
    }

    /// `largestSet(k, of: candidates) { abs(v[$0]) }` with the scores read straight from
    /// `v`, each winner passed to `take` (in no particular order). Short inputs rank
    /// unique 64-bit keys (magnitude, then the lower index; positions below 2³², as in
    /// every sparse pattern) in scratch memory on the stack: for small `k` against a long
    /// enough input, the keys above a sampled bound, else a bounded min-heap when `k` is
    /// small against the input, else a quickselect.
    public static func largestMagnitudes(_ k: Int, of candidates: UnsafeBufferPointer<Int>, in v: UnsafePointer<Float>,
                                         take: (Int) -> Void) {
        let n = candidates.count, k = min(k, n)
        guard k > 0 else { return }
        if k == n { for c in candidates { take(c) }; return }
        guard n < 4096 else {
            select(k, of: candidates, key: { magnitudeKey(v[$0]) }) { i, _ in take(i) }
            return
        }
        // Larger is better: the magnitude key, then the complement of the index.
        @inline(__always) func rank(_ c: Int) -> UInt64 {
            UInt64(magnitudeKey(v[c])) << 32 | UInt64(~UInt32(truncatingIfNeeded: c))
        }
        @inline(__always) func index(_ r: UInt64) -> Int { Int(~UInt32(truncatingIfNeeded: r)) }
        if k * 8 <= n && n >= 256 {
            // A regular sample of 64 keys bounds the k-th largest from below with a wide
            // margin (its rank in the sample is about 2.5 times the expected one); one
            // branch-free pass keeps the keys at or above the bound, and a quickselect
            // among them finds the winners. When fewer than k pass, every key is ranked.
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { keys in
                let sampleCount = 64
                let bound: UInt64 = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: sampleCount) { sample in
                    for j in 0..<sampleCount { sample[j] = rank(candidates[j &* n / sampleCount]) }
                    let r = min(sampleCount, (5 &* k &* sampleCount + 2 &* n - 1) / (2 &* n) + 1)
                    return quickselect(sample, r)
                }
                var m = 0
                for j in 0..<n {
                    let key = rank(candidates[j])
                    keys[m] = key
                    m &+= (key >= bound).bit
                }
                if m < k {
                    for j in 0..<n { keys[j] = rank(candidates[j]) }
                    m = n
                }
                let passed = UnsafeMutableBufferPointer(rebasing: keys[0..<m])
                let threshold = quickselect(passed, k)
                for j in 0..<m where passed[j] >= threshold { take(index(passed[j])) }
            }
        } else if k * 16 <= n {
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: k) { heap in
                for j in 0..<k { heap[j] = rank(candidates[j]) }
                // Min-heap of the k best so far.
                @inline(__always) func siftDown(_ start: Int) {
                    var i = start
                    let x = heap[i]
                    while true {
                        var child = 2 &* i &+ 1
                        if child >= k { break }
                        if child &+ 1 < k && heap[child &+ 1] < heap[child] { child &+= 1 }
                        if heap[child] >= x { break }
                        heap[i] = heap[child]; i = child
                    }
                    heap[i] = x
                }
                var j = k / 2
                while j > 0 { j -= 1; siftDown(j) }
                for j in k..<n {
                    let r = rank(candidates[j])
                    if r > heap[0] { heap[0] = r; siftDown(0) }
                }
                for j in 0..<k { take(index(heap[j])) }
            }
        } else {
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { keys in
                for j in 0..<n { keys[j] = rank(candidates[j]) }
                let threshold = quickselect(keys, k)
                for j in 0..<n where keys[j] >= threshold { take(index(keys[j])) }
            }
        }
    }

    /// The `k`-th largest key (1-based), reordering them (median-of-three pivots). The
    /// partitions are branch-free (a conditional store index, no data-dependent jumps):
    /// keys above the pivot go to the front, then, when the target lies beyond them,
    /// keys equal to it, so repeated keys always make progress.
    @inline(__always)
    static func quickselect<Key: FixedWidthInteger>(_ v: UnsafeMutableBufferPointer<Key>, _ k: Int) -> Key {
        let target = k - 1   // the position in descending order
        var lo = 0, hi = v.count
        while hi &- lo > 1 {
            let a = v[lo], b = v[lo &+ (hi &- lo) / 2], c = v[hi &- 1]
            let pivot = max(min(a, b), min(max(a, b), c))
            var above = lo
            for i in lo..<hi {
                let x = v[i]
                v[i] = v[above]; v[above] = x
                above &+= (x > pivot).bit
            }
            if target < above { hi = above; continue }
            var equal = above
            for i in above..<hi {
                let x = v[i]
                v[i] = v[equal]; v[equal] = x
                equal &+= (x == pivot).bit
            }
            if target < equal { return pivot }
            lo = equal
        }
        return v[lo]
    }

    /// Where the `k` largest `|v[i]|` over all of `v` begin: a position is among them
    /// when its key (`magnitudeKey`) is above `key`, or equal to it and among the first
    /// `ties` such positions in index order (NaN below every number, as in `largestSet`).
    public static func magnitudeCut(_ k: Int, of v: UnsafeBufferPointer<Float>) -> (key: UInt32, ties: Int) {
        let n = v.count, k = min(k, n)
        guard k > 0 else { return (.max, 0) }
        // Long inputs: a regular sample bounds the cut from below with a wide margin, and
        // one pass keeps the keys at or above the bound; when at least k pass, the cut
        // and the count above it are found among those (else the full selection runs).
        if let bound = sampledBound(k, count: n, key: { magnitudeKey(v[$0]) }) {
            // Long inputs in parts on the threads, each part's keys at its own start,
            // then moved up behind the previous part's.
            let parts = Parallel.parts(n, work: n)
            let passing = [UInt32](unsafeUninitializedCapacity: n) { out, initialized in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: parts) { counts in
                    let (v, out) = (v.baseAddress!, out.baseAddress!)
                    Parallel.forRanges(parts, work: n) { ps in
                        for p in ps {
                            let lo = n * p / parts, hi = n * (p + 1) / parts
                            counts[p] = Int(ds_magnitude_keys_at_least(v + lo, Int64(hi - lo), bound, out + lo))
                        }
                    }
                    var m = counts[0]
                    for p in 1..<parts {
                        (out + m).update(from: out + n * p / parts, count: counts[p])
                        m += counts[p]
                    }
                    initialized = m
                }
            }
            if passing.count >= k { return cut(k, of: passing) }
        }
        let keys = [UInt32](unsafeUninitializedCapacity: n) { buffer, initialized in
            for i in 0..<n { buffer[i] = magnitudeKey(v[i]) }
            initialized = n
        }
        return cut(k, of: keys)
    }

    /// The k-th largest key and how many of the k winners sit at it.
    private static func cut(_ k: Int, of keys: [UInt32]) -> (key: UInt32, ties: Int) {
        keys.withUnsafeBufferPointer { kp in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * kp.count) { scratch in
                var ties: Int64 = 0
                let key = ds_cut_top(kp.baseAddress!, Int64(kp.count), Int64(k), scratch.baseAddress!, &ties)
                return (key, Int(ties))
            }
        }
    }

    /// For `count` keys of which the `k` largest are wanted (k at most a quarter, count
    /// at least 8192): a key that about 1.25 k + 4 √k-in-sample keys reach, from a
    /// regular sample of 2048 (512 below 32,768 keys; nil for short inputs or large k).
    @inline(__always)
    static func sampledBound(_ k: Int, count: Int, key: (Int) -> UInt32) -> UInt32? {
        guard count >= 8192 && k <= count / 4 else { return nil }
        let samples = count >= 32_768 ? 2048 : 512
        let stride = count / samples
        var sample = [UInt32](unsafeUninitializedCapacity: samples) { b, m in
            for j in 0..<samples { b[j] = key(j &* stride) }
            m = samples
        }
        let expected = Double(k) * Double(samples) / Double(count)
        let rank = min(samples, Int(expected * 1.25 + 4 * expected.squareRoot() + 16))
        return quickselect(&sample, rank)
    }

    /// `k` distinct indices drawn uniformly from `candidates` (a partial Fisher–Yates).
    public static func random<G: RandomNumberGenerator>(_ k: Int, of candidates: [Int], using rng: inout G) -> [Int] {
        var pool = candidates
        let k = min(k, pool.count)
        for i in 0..<k {
            let j = i + Int(rng.next(upperBound: UInt64(pool.count - i)))
            pool.swapAt(i, j)
        }
        return Array(pool[0..<k])
    }
}
