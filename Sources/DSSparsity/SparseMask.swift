/// Which weights of one layer are active, in the `[nOut, fanIn]` view.
public struct SparseMask: Equatable, Sendable {
    public let rows: Int
    public let columns: Int
    /// `active[r · columns + c]`.
    public var active: [Bool]

    public init(rows: Int, columns: Int, active: [Bool]) {
        precondition(active.count == rows * columns, "SparseMask: \(active.count) flags for \(rows)x\(columns)")
        self.rows = rows; self.columns = columns; self.active = active
    }

    /// A mask with exactly the positions `indices` active.
    public init(rows: Int, columns: Int, activeIndices indices: [Int]) {
        var flags = [Bool](repeating: false, count: rows * columns)
        for i in indices { flags[i] = true }
        self.init(rows: rows, columns: columns, active: flags)
    }

    /// A fully active mask (a dense layer).
    public static func dense(rows: Int, columns: Int) -> SparseMask {
        SparseMask(rows: rows, columns: columns, active: [Bool](repeating: true, count: rows * columns))
    }

    /// Number of active weights.
    public var count: Int {
        active.withUnsafeBufferPointer { a in
            var n = 0
            for flag in a where flag { n += 1 }
            return n
        }
    }

    /// Flat indices of the active positions, ascending.
    public var activeIndices: [Int] {
        active.withUnsafeBufferPointer { a in
            var out: [Int] = []
            for i in 0..<a.count where a[i] { out.append(i) }
            return out
        }
    }

    /// Active weights per output neuron (row).
    public var rowCounts: [Int] {
        (0..<rows).map { r in
            var n = 0
            for c in 0..<columns where active[r * columns + c] { n += 1 }
            return n
        }
    }
}

/// What one mask update changed in one layer.
public struct MaskChange: Equatable, Sendable {
    /// Positions active before and not after.
    public var dropped: [Int]
    /// Positions active after and not before: they start at 0 with zero optimizer state.
    public var grown: [Int]
    /// Rows with no active weight after the update (SRigL's ablated neurons).
    public var ablatedRows: [Int]
    public init(dropped: [Int] = [], grown: [Int] = [], ablatedRows: [Int] = []) {
        self.dropped = dropped; self.grown = grown; self.ablatedRows = ablatedRows
    }

    /// The change from `old` to `new`.
    public init(from old: SparseMask, to new: SparseMask, ablatedRows: [Int] = []) {
        var dropped: [Int] = [], grown: [Int] = []
        old.active.withUnsafeBufferPointer { a in
            new.active.withUnsafeBufferPointer { b in
                for i in 0..<a.count where a[i] != b[i] {
                    if a[i] { dropped.append(i) } else { grown.append(i) }
                }
            }
        }
        self.init(dropped: dropped, grown: grown, ablatedRows: ablatedRows)
    }
}
