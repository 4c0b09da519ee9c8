/// Deterministic top-k selection: larger score first, and on equal scores the lower
/// index (row-major in the `[nOut, fanIn]` view) wins, so a seed reproduces a run.
public enum Selection {
    /// The `k` indices from `candidates` with the largest `score`, in selection order.
    /// O(n + k log k): a selection pass finds the k-th largest score, and only the
    /// indices at or above it are sorted (NaN scores rank below every number).
    public static func largest(_ k: Int, of candidates: [Int], score: (Int) -> Float) -> [Int] {
        let k = min(k, candidates.count)
        guard k > 0 else { return [] }
        let scores = candidates.map { (c: Int) -> Float in
            let s = score(c)
            return s.isNaN ? -.infinity : s
        }
        var work = scores
        let threshold = kthLargest(&work, k)
        var chosen: [(index: Int, score: Float)] = [], ties: [Int] = []
        chosen.reserveCapacity(k)
        for (j, c) in candidates.enumerated() {
            if scores[j] > threshold { chosen.append((c, scores[j])) } else if scores[j] == threshold { ties.append(c) }
        }
        ties.sort()   // equal scores: the lower index wins
        chosen += ties.prefix(k - chosen.count).map { ($0, threshold) }
        chosen.sort { a, b in a.score > b.score || (a.score == b.score && a.index < b.index) }
        return chosen.map(\.index)
    }

    /// The `k`-th largest value of `values` (1-based), reordering `values`
    /// (quickselect, median-of-three pivots).
    static func kthLargest(_ values: inout [Float], _ k: Int) -> Float {
        precondition(k >= 1 && k <= values.count, "kthLargest: k = \(k) of \(values.count)")
        let target = k - 1   // position in descending order
        return values.withUnsafeMutableBufferPointer { v in
            var lo = 0, hi = v.count - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                // Median of three, as the pivot value.
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
