import CSparseKernels
import DSCore
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
        active.trueCount
    }

    /// Flat indices of the active positions, ascending.
    public var activeIndices: [Int] {
        let n = count
        return [Int](unsafeUninitializedCapacity: n) { out, initialized in
            active.withFlagBytes { a in
                // Branch-free compaction: every position is written, the next slot
                // advances only past active ones.
                var j = 0
                for i in 0..<a.count where j < n {
                    out[j] = i
                    j &+= Int(a[i])
                }
            }
            initialized = n
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
        precondition(old.active.count == new.active.count, "MaskChange: \(old.active.count) flags against \(new.active.count)")
        var dropped: [Int] = [], grown: [Int] = []
        old.active.withFlagBytes { a in
            new.active.withFlagBytes { b in
                // A scan of 64 flags at a time (most of a mask does not change); on
                // large masks in parts of whole 64-flag blocks on the threads, each part
                // counted, then written at its offset (the lists stay ascending).
                guard let pa = a.baseAddress, let pb = b.baseAddress else { return }
                let n = a.count, blocks = (n + 63) / 64
                let parts = Parallel.parts(blocks, work: n)
                func part(_ p: Int) -> Range<Int> { min(n, 64 * (blocks * p / parts))..<min(n, 64 * (blocks * (p + 1) / parts)) }
                var counts = [Int64](repeating: 0, count: 2 * parts)
                counts.withUnsafeMutableBufferPointer { c in
                    let c = c.baseAddress!
                    Parallel.forRanges(parts, work: n) { ps in
                        for p in ps {
                            let r = part(p)
                            ds_flag_changes(pa + r.lowerBound, pb + r.lowerBound, Int64(r.count), Int64(r.lowerBound),
                                            nil, nil, c + 2 * p)
                        }
                    }
                    var droppedAt = [0], grownAt = [0]
                    for p in 0..<parts {
                        droppedAt.append(droppedAt[p] + Int(c[2 * p]))
                        grownAt.append(grownAt[p] + Int(c[2 * p + 1]))
                    }
                    dropped = [Int](repeating: 0, count: droppedAt[parts])
                    grown = [Int](repeating: 0, count: grownAt[parts])
                    dropped.withInt64Buffer { d in
                        grown.withInt64Buffer { g in
                            Parallel.forRanges(parts, work: n) { ps in
                                for p in ps {
                                    let r = part(p)
                                    ds_flag_changes(pa + r.lowerBound, pb + r.lowerBound, Int64(r.count),
                                                    Int64(r.lowerBound), d.map { $0 + droppedAt[p] },
                                                    g.map { $0 + grownAt[p] }, c + 2 * p)
                                }
                            }
                        }
                    }
                }
            }
        }
        self.init(dropped: dropped, grown: grown, ablatedRows: ablatedRows)
    }
}

extension MaskChange {
    /// The change between two masks whose active positions (each ascending) are known:
    /// a merge of the two lists, O(active weights), where comparing the flags is
    /// O(positions). The merge is taken when the lists hold under an eighth as many
    /// entries as the mask has positions, else the flags are compared.
    public init(from old: SparseMask, positions oldPositions: [Int32], to new: SparseMask, positions newPositions: [Int32],
                ablatedRows: [Int] = []) {
        let n = oldPositions.count, m = newPositions.count
        guard 8 * (n + m) <= old.active.count else {
            self.init(from: old, to: new, ablatedRows: ablatedRows)
            return
        }
        var dropped = [Int](repeating: 0, count: n), grown = [Int](repeating: 0, count: m)
        var dc = 0, gc = 0
        oldPositions.withUnsafeBufferPointer { a in
            newPositions.withUnsafeBufferPointer { b in
                dropped.withUnsafeMutableBufferPointer { d in
                    grown.withUnsafeMutableBufferPointer { g in
                        // Most positions stay: the branch on equal heads predicts well
                        // (measured faster than a branch-free merge).
                        var i = 0, j = 0
                        while i < n && j < m {
                            let x = a[i], y = b[j]
                            if x == y {
                                i &+= 1; j &+= 1
                            } else if x < y {
                                d[dc] = Int(x); dc &+= 1; i &+= 1
                            } else {
                                g[gc] = Int(y); gc &+= 1; j &+= 1
                            }
                        }
                        for k in i..<n { d[dc] = Int(a[k]); dc &+= 1 }
                        for k in j..<m { g[gc] = Int(b[k]); gc &+= 1 }
                    }
                }
            }
        }
        dropped.removeLast(n - dc)
        grown.removeLast(m - gc)
        self.init(dropped: dropped, grown: grown, ablatedRows: ablatedRows)
    }
}

extension Array where Element == Int {
    /// The elements as `Int64`s (the same bytes on 64-bit platforms), for C kernels
    /// that write positions; the pointer may be nil for an empty array.
    @inline(__always)
    mutating func withInt64Buffer<R>(_ body: (UnsafeMutablePointer<Int64>?) -> R) -> R {
        withUnsafeMutableBufferPointer { p in
            p.withMemoryRebound(to: Int64.self) { body($0.baseAddress) }
        }
    }
}
