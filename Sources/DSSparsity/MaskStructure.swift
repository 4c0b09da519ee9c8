import DSCore

/// Which patterns a layer's mask may take (docs/algorithms.md §3.1): the positions of
/// a `rows × columns` layer split into groups — contiguous runs of flat indices in the
/// `[nOut, fanIn]` view — and each group holds a fixed number of active weights. The
/// structure draws initial masks and does every top-k selection within its groups;
/// strategies only supply the scores.
public protocol MaskStructure: Sendable {
    /// The config name (`unstructured`, `constant_fan_in`, `n_of_m`).
    var name: String { get }
    /// The name with its parameters, as `sparsity.csv` writes it (`n_of_m 2:4`).
    var label: String { get }
    /// The groups, in index order; together they cover every position once.
    func groups(rows: Int, columns: Int) -> [Range<Int>]
    /// Active weights per group for a layer holding about `total` weights (never more
    /// than `total`, except where the structure has a floor, as N:M does).
    func groupCounts(rows: Int, columns: Int, total: Int) -> [Int]
    /// Throws when a layer with this budget cannot take the structure.
    func check(name: String, rows: Int, columns: Int, budget: Int) throws
}

/// No constraint: the whole layer is one group.
public struct Unstructured: MaskStructure {
    public init() {}
    public var name: String { "unstructured" }
    public func groups(rows: Int, columns: Int) -> [Range<Int>] { [0..<(rows * columns)] }
    public func groupCounts(rows: Int, columns: Int, total: Int) -> [Int] { [total] }
    public func check(name: String, rows: Int, columns: Int, budget: Int) throws {}
}

/// Constant fan-in: every row (output neuron) is a group holding `floor(total / nOut)`
/// weights.
public struct ConstantFanIn: MaskStructure {
    public init() {}
    public var name: String { "constant_fan_in" }
    public func groups(rows: Int, columns: Int) -> [Range<Int>] {
        (0..<rows).map { $0 * columns..<($0 + 1) * columns }
    }
    public func groupCounts(rows: Int, columns: Int, total: Int) -> [Int] {
        [Int](repeating: rows > 0 ? total / rows : 0, count: rows)
    }
    public func check(name: String, rows: Int, columns: Int, budget: Int) throws {
        guard budget / rows > 0 else {
            throw SparsityError("layer \(name): sparsity too high for constant fan-in: a budget of \(budget) weights "
                                + "over \(rows) neurons leaves fan-in 0")
        }
    }
}

/// N:M: each row's fan-in is cut into runs of `m` consecutive weights (a convolution's
/// fan-in in `[in, kh, kw]` order), and each run holds `n` active weights. A last run
/// shorter than `m` (fan-in not a multiple of `m`) holds `min(n, length)`: the run as a
/// kernel would pad it to `m` with zeros.
public struct NOfM: MaskStructure {
    public let n: Int
    public let m: Int
    public init(n: Int, m: Int) {
        precondition(n >= 1 && n <= m, "NOfM: need 1 ≤ n ≤ m, got \(n):\(m)")
        self.n = n; self.m = m
    }
    public var name: String { "n_of_m" }
    public var label: String { "n_of_m \(n):\(m)" }

    public func groups(rows: Int, columns: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(rows * ((columns + m - 1) / m))
        for r in 0..<rows {
            var c = 0
            while c < columns {
                out.append(r * columns + c..<r * columns + min(c + m, columns))
                c += m
            }
        }
        return out
    }

    /// Active weights of a row when every run holds `k` (`k` from `n` to `m`).
    func rowCount(columns: Int, perGroup k: Int) -> Int {
        columns / m * k + min(k, columns % m)
    }

    /// `k` per run, the largest in `n...m` whose layer count stays within `total` (`n`
    /// when even that exceeds it): `n` at the layer's N:M budget, `m` when dense, so
    /// gradual pruning can walk from one to the other.
    public func groupCounts(rows: Int, columns: Int, total: Int) -> [Int] {
        var k = m
        while k > n && rows * rowCount(columns: columns, perGroup: k) > total { k -= 1 }
        var out: [Int] = []
        out.reserveCapacity(rows * ((columns + m - 1) / m))
        for _ in 0..<rows {
            var c = 0
            while c < columns { out.append(min(k, min(c + m, columns) - c)); c += m }
        }
        return out
    }

    /// The number of weights an N:M layer holds.
    public func budget(rows: Int, columns: Int) -> Int { rows * rowCount(columns: columns, perGroup: n) }

    public func check(name: String, rows: Int, columns: Int, budget: Int) throws {}
}

extension MaskStructure {
    public var label: String { name }

    /// A random mask: each group's count drawn uniformly within the group.
    public func randomMask(name: String, rows: Int, columns: Int, budget: Int,
                           rng: inout Xoshiro256) throws -> SparseMask {
        try check(name: name, rows: rows, columns: columns, budget: budget)
        var flags = [Bool](repeating: false, count: rows * columns)
        let counts = groupCounts(rows: rows, columns: columns, total: budget)
        for (range, count) in zip(groups(rows: rows, columns: columns), counts) {
            for i in Selection.random(count, of: Array(range), using: &rng) { flags[i] = true }
        }
        return SparseMask(rows: rows, columns: columns, active: flags)
    }

    /// The mask holding, in every group, its count of largest-`score` positions among
    /// the `candidates` (every position when nil). Ties go to the lower index.
    public func selectLargest(rows: Int, columns: Int, counts: [Int], among candidates: [Bool]? = nil,
                              score: (Int) -> Float) -> SparseMask {
        var flags = [Bool](repeating: false, count: rows * columns)
        var pool: [Int] = []
        for (range, count) in zip(groups(rows: rows, columns: columns), counts) where count > 0 {
            pool.removeAll(keepingCapacity: true)
            for i in range where candidates?[i] ?? true { pool.append(i) }
            for i in Selection.largestSet(count, of: pool, score: score) { flags[i] = true }
        }
        return SparseMask(rows: rows, columns: columns, active: flags)
    }
}

/// The structures by config name.
public enum MaskStructureKind: String, CaseIterable, Sendable {
    case unstructured
    case constantFanIn = "constant_fan_in"
    case nOfM = "n_of_m"

    /// The structure, with `n` and `m` for `n_of_m` (checked by the config).
    public func make(n: Int, m: Int) -> any MaskStructure {
        switch self {
        case .unstructured: Unstructured()
        case .constantFanIn: ConstantFanIn()
        case .nOfM: NOfM(n: n, m: m)
        }
    }
}
