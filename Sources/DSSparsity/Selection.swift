/// Deterministic top-k selection: larger score first, and on equal scores the lower
/// index (row-major in the `[nOut, fanIn]` view) wins, so a seed reproduces a run.
public enum Selection {
    /// The `k` indices from `candidates` with the largest `score`, in selection order.
    public static func largest(_ k: Int, of candidates: [Int], score: (Int) -> Float) -> [Int] {
        guard k > 0 else { return [] }
        if k >= candidates.count { return candidates.sorted { better($0, $1, score) } }
        let scored = candidates.map { (index: $0, score: score($0)) }
        let sorted = scored.sorted { a, b in a.score > b.score || (a.score == b.score && a.index < b.index) }
        return sorted.prefix(k).map(\.index)
    }

    static func better(_ a: Int, _ b: Int, _ score: (Int) -> Float) -> Bool {
        let sa = score(a), sb = score(b)
        return sa > sb || (sa == sb && a < b)
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
