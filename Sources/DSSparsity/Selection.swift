/// Deterministic top-k selection: larger score first, and on equal scores the lower
/// index (row-major in the `[nOut, fanIn]` view) wins, so a seed reproduces a run.
public enum Selection {
    /// The `k` indices from `candidates` with the largest `score`, in selection order.
    /// O(n + k log k): a selection pass finds the k-th largest score, and only the
    /// indices at or above it are sorted (NaN scores rank below every number).
    public static func largest<C: RandomAccessCollection>(_ k: Int, of candidates: C, score: (Int) -> Float) -> [Int]
    where C.Element == Int {
        var chosen: [(index: Int, score: Float)] = []
        chosen.reserveCapacity(min(k, candidates.count))
        select(k, of: candidates, score: score) { chosen.append(($0, $1)) }
        chosen.sort { a, b in a.score > b.score || (a.score == b.score && a.index < b.index) }
        return chosen.map(\.index)
    }

    /// The same `k` indices as `largest`, unsorted (those above the k-th largest score
    /// in candidate order, then the ties): for callers that use the selection as a set,
    /// such as a mask update.
    public static func largestSet<C: RandomAccessCollection>(_ k: Int, of candidates: C, score: (Int) -> Float) -> [Int]
    where C.Element == Int {
        var chosen: [Int] = []
        chosen.reserveCapacity(min(k, candidates.count))
        select(k, of: candidates, score: score) { i, _ in chosen.append(i) }
        return chosen
    }

    /// Calls `take(index, score)` for the `k` winners: those above the k-th largest
    /// score in candidate order, then the lowest-index ties at it. Scores are ranked by
    /// an order-preserving integer key (NaN as −∞, −0 as +0).
    private static func select<C: RandomAccessCollection>(_ k: Int, of candidates: C, score: (Int) -> Float,
                                                          take: (Int, Float) -> Void) where C.Element == Int {
        let n = candidates.count, k = min(k, n)
        guard k > 0 else { return }
        let keys = [UInt32](unsafeUninitializedCapacity: n) { buffer, initialized in
            var j = 0
            for c in candidates { buffer[j] = key(score(c)); j += 1 }
            initialized = n
        }
        let threshold = kthLargest(keys, k)
        var ties: [Int] = [], above = 0
        keys.withUnsafeBufferPointer { kp in
            for (j, c) in candidates.enumerated() {
                if kp[j] > threshold { take(c, value(kp[j])); above += 1 } else if kp[j] == threshold { ties.append(c) }
            }
        }
        if ties.count > k - above { ties.sort() }   // equal scores: the lower index wins
        for c in ties.prefix(k - above) { take(c, value(threshold)) }
    }

    /// An unsigned key in the order of the scores.
    @inline(__always)
    static func key(_ score: Float) -> UInt32 {
        let s: Float = score.isNaN ? -.infinity : score == 0 ? 0 : score
        let b = s.bitPattern
        return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }

    /// The score of `key`.
    @inline(__always)
    static func value(_ key: UInt32) -> Float {
        Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
    }

    /// The `k`-th largest of `keys` (1-based): a radix selection, 11 + 11 + 10 bits,
    /// each pass counting only the keys that share the bits fixed so far (a quickselect
    /// for short inputs).
    static func kthLargest(_ keys: [UInt32], _ k: Int) -> UInt32 {
        precondition(k >= 1 && k <= keys.count, "kthLargest: k = \(k) of \(keys.count)")
        if keys.count < 4096 { var work = keys; return quickselect(&work, k) }
        var rank = k, prefix: UInt32 = 0
        var subset = keys
        var histogram = [Int](repeating: 0, count: 2048)
        for (shift, bits) in [(21, 11), (10, 11), (0, 10)] {
            let bins = 1 << bits, mask = UInt32(bins - 1)
            histogram.withUnsafeMutableBufferPointer { h in
                h.update(repeating: 0)
                subset.withUnsafeBufferPointer { for key in $0 { h[Int((key >> UInt32(shift)) & mask)] += 1 } }
                var b = bins - 1
                while h[b] < rank { rank -= h[b]; b -= 1 }
                prefix |= UInt32(b) << UInt32(shift)
            }
            if shift > 0 {
                let high = ~UInt32(0) << UInt32(shift)
                subset = subset.filter { $0 & high == prefix }
            }
        }
        return prefix
    }

    /// The `k`-th largest value (1-based), reordering `values` (median-of-three pivots).
    static func quickselect(_ values: inout [UInt32], _ k: Int) -> UInt32 {
        let target = k - 1   // position in descending order
        return values.withUnsafeMutableBufferPointer { v in
            var lo = 0, hi = v.count - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                let a = v[lo], b = v[mid], c = v[hi]
                let pivot = max(min(a, b), min(max(a, b), c))
                var i = lo, j = hi
                while i <= j {
                    while v[i] > pivot { i += 1 }
                    while v[j] < pivot { j -= 1 }
                    if i <= j { v.swapAt(i, j); i += 1; j -= 1 }
                }
                // v[lo...j] ≥ pivot, v[i...hi] ≤ pivot, v[j+1..<i] == pivot.
                if target <= j { hi = j } else if target >= i { lo = i } else { return pivot }
            }
            return v[target]
        }
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
