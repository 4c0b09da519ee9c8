import CSparseKernels
import DSCore
import DSSparsity
import Testing

/// The C scans of mask updates (CSparseKernels/MaskScan.c) against plain Swift
/// references, on the CPU's vector path and on the plain loops, for lengths around the
/// 16- and 64-element blocks; ties, NaN and zeros throughout.
@Suite struct MaskScanTests {
    static let lengths = [0, 1, 15, 16, 17, 63, 64, 65, 127, 200, 255, 256, 257, 1000, 4099, 40_000]

    /// Runs `body` once on the vector path (where the CPU has it) and once on the plain
    /// loops; the setting is the calling thread's, so other tests are not affected.
    func onBothPaths(_ body: (String) -> Void) {
        body("vector")
        ds_mask_scans_portable(1)
        defer { ds_mask_scans_portable(0) }
        body("portable")
    }

    func flags(_ n: Int, density: Int, _ rng: inout Xoshiro256) -> [Bool] {
        (0..<n).map { _ in rng.index(below: 100) < density }
    }

    /// Values with ties, both zeros, NaN and negatives.
    func values(_ n: Int, _ rng: inout Xoshiro256) -> [Float] {
        (0..<n).map { _ in
            let r = rng.index(below: 24)
            return r == 0 ? .nan : r == 1 ? -0.0 : r == 2 ? 0 : r < 12 ? Float(r % 5) - 2 : rng.normal()
        }
    }

    @Test func flagCountsPositionsAndChanges() {
        var rng = Xoshiro256(seed: 21)
        for n in Self.lengths {
            for density in [0, 3, 50, 100] {
                let a = flags(n, density: density, &rng)
                var b = a
                for i in b.indices where rng.index(below: 10) == 0 { b[i].toggle() }
                let set = a.indices.filter { a[$0] }
                let dropped = a.indices.filter { a[$0] && !b[$0] }, grown = a.indices.filter { !a[$0] && b[$0] }
                onBothPaths { path in
                    a.withFlagBytes { fa in
                        b.withFlagBytes { fb in
                            let count = fa.isEmpty ? 0 : Int(ds_flag_count(fa.baseAddress!, Int64(n)))
                            #expect(count == set.count, "\(path) n \(n) density \(density)")
                            var out = [Int32](repeating: -1, count: n + 1)
                            let m = fa.isEmpty ? 0 : Int(ds_flag_positions(fa.baseAddress!, Int64(n), &out))
                            #expect(out.prefix(m).map(Int.init) == set && out[m] == -1, "\(path) n \(n)")
                            guard n > 0 else { return }
                            var counts: [Int64] = [0, 0]
                            ds_flag_changes(fa.baseAddress!, fb.baseAddress!, Int64(n), 0, nil, nil, &counts)
                            #expect(counts == [Int64(dropped.count), Int64(grown.count)], "\(path) n \(n)")
                            // Positions from `first` (a part of a longer mask).
                            var d = [Int64](repeating: -1, count: n), g = [Int64](repeating: -1, count: n)
                            ds_flag_changes(fa.baseAddress!, fb.baseAddress!, Int64(n), 7, &d, &g, &counts)
                            #expect(d.prefix(dropped.count).map(Int.init) == dropped.map { $0 + 7 }, "\(path) n \(n)")
                            #expect(g.prefix(grown.count).map(Int.init) == grown.map { $0 + 7 }, "\(path) n \(n)")
                        }
                    }
                    let change = MaskChange(from: SparseMask(rows: 1, columns: n, active: a),
                                            to: SparseMask(rows: 1, columns: n, active: b))
                    #expect(change.dropped == dropped && change.grown == grown, "\(path) n \(n)")
                }
            }
        }
    }

    /// Masks long enough to be scanned in parts on the threads give the same change as
    /// on one thread, and as the flags say.
    @Test func longMasksChangeTheSameOnAnyThreadCount() {
        var rng = Xoshiro256(seed: 23)
        for n in [65_536, 70_001, 200_003] {
            let a = flags(n, density: 10, &rng)
            var b = a
            for i in b.indices where rng.index(below: 20) == 0 { b[i].toggle() }
            let dropped = a.indices.filter { a[$0] && !b[$0] }, grown = a.indices.filter { !a[$0] && b[$0] }
            for threads in [1, 2, 3] {
                let change = Parallel.withThreads(threads) {
                    MaskChange(from: SparseMask(rows: 1, columns: n, active: a), to: SparseMask(rows: 1, columns: n, active: b))
                }
                #expect(change.dropped == dropped && change.grown == grown, "n \(n) threads \(threads)")
            }
        }
    }

    /// The change from the two masks' position lists (a merge on sparse masks, the flags
    /// compared on denser ones) is the change the flags give.
    @Test func changesFromPositionListsMatchTheFlags() {
        var rng = Xoshiro256(seed: 24)
        for n in [0, 1, 17, 200, 4099, 40_000] {
            for density in [0, 1, 3, 10, 50] {
                let a = flags(n, density: density, &rng)
                var b = a
                for i in b.indices where rng.index(below: 50) == 0 { b[i].toggle() }
                if n > 1 { b[0] = true; b[n - 1] = !a[n - 1] }   // changes at both ends
                let (old, new) = (SparseMask(rows: 1, columns: n, active: a), SparseMask(rows: 1, columns: n, active: b))
                let positions = { (f: [Bool]) in f.indices.filter { f[$0] }.map { Int32($0) } }
                let change = MaskChange(from: old, positions: positions(a), to: new, positions: positions(b), ablatedRows: [3])
                #expect(change == MaskChange(from: old, to: new, ablatedRows: [3]), "n \(n) density \(density)")
            }
        }
    }

    @Test func magnitudeKeysAtLeastABound() {
        var rng = Xoshiro256(seed: 22)
        for n in Self.lengths where n > 0 {
            let v = values(n, &rng)
            for bound in [0, Selection.magnitudeKey(.nan), Selection.magnitudeKey(0), Selection.magnitudeKey(1),
                          Selection.magnitudeKey(2.5)] {
                let expected = v.map(Selection.magnitudeKey).filter { $0 >= bound }
                onBothPaths { path in
                    var out = [UInt32](repeating: 0, count: n)
                    let m = Int(ds_magnitude_keys_at_least(v, Int64(n), bound, &out))
                    #expect(Array(out.prefix(m)) == expected, "\(path) n \(n) bound \(bound)")
                }
            }
        }
    }

    /// Flagged or above a key (SRigL's salient count): each position counted once, and
    /// the keys equal to it counted whether flagged or not.
    @Test func flaggedOrAboveAKey() {
        var rng = Xoshiro256(seed: 26)
        for n in Self.lengths {
            let v = values(n, &rng)
            for density in [0, 30, 100] {
                let f = flags(n, density: density, &rng)
                for key in [0, Selection.magnitudeKey(.nan), Selection.magnitudeKey(0), Selection.magnitudeKey(1),
                            Selection.magnitudeKey(2.5)] {
                    let keys = v.map(Selection.magnitudeKey)
                    let count = keys.indices.filter { f[$0] || keys[$0] > key }.count
                    let equal = keys.filter { $0 == key }.count
                    onBothPaths { path in
                        var e: Int64 = -1
                        let c = f.withFlagBytes { ds_flagged_or_above($0.baseAddress, v, Int64(n), key, &e) }
                        #expect(Int(c) == count && Int(e) == equal, "\(path) n \(n) density \(density) key \(key)")
                    }
                }
            }
        }
    }

    /// Indices of the `count` largest `|v|` among `candidates`, ties to the lower index,
    /// NaN below every number: a full sort.
    func largest(_ count: Int, of candidates: [Int], in v: [Float]) -> Set<Int> {
        let m = { (i: Int) -> Float in v[i].isNaN ? -1 : abs(v[i]) }
        return Set(candidates.sorted { m($0) > m($1) || (m($0) == m($1) && $0 < $1) }.prefix(count))
    }

    /// The set flags after `ds_grow_largest` grows `count` of `start`'s clear ones by |v|.
    func grown(_ start: [Bool], _ v: [Float], _ count: Int) -> Set<Int> {
        var f = start
        var keys = [UInt32](repeating: 0, count: 3 * v.count)
        f.withMutableFlagBytes { fb in
            keys.withUnsafeMutableBufferPointer { k in
                ds_grow_largest(fb.baseAddress!, v, Int64(v.count), Int64(count), k.baseAddress!, k.baseAddress! + v.count)
            }
        }
        return Set(f.indices.filter { f[$0] })
    }

    /// Growth fills the clear flags with the largest |v| there; the two-pass selection
    /// for up to eight winners (16 and 32 sets), the short sampled selection, its
    /// fallback and the full one all run.
    @Test func growingTheLargestMatchesAFullSort() {
        var rng = Xoshiro256(seed: 23)
        for n in Self.lengths where n > 0 {
            for density in [0, 10, 60, 99] {
                let start = flags(n, density: density, &rng)
                let v = values(n, &rng)
                let free = start.indices.filter { !start[$0] }
                for count in Set([0, 1, free.count / 20, free.count / 3, free.count]) {
                    let expected = largest(count, of: free, in: v).union(start.indices.filter { start[$0] })
                    onBothPaths { path in
                        #expect(grown(start, v, count) == expected, "\(path) n \(n) density \(density) count \(count)")
                    }
                }
            }
        }
    }

    /// Growth of up to eight weights in rows whose keys tie at the two-pass bound: rows of
    /// equal values (a neuron with an all-zero gradient grows its first free positions),
    /// a few larger values above a tied rest (the winners then include the first tied
    /// ones), and more larger values than winners (the general selection decides).
    @Test func growingAmongTiedKeysMatchesAFullSort() {
        var rng = Xoshiro256(seed: 27)
        for n in [256, 300, 784, 1000] {
            for larger in [0, 1, 3, 12] {
                for tied: Float in [0, -0.5] {
                    var v = [Float](repeating: tied, count: n)
                    for _ in 0..<larger { v[rng.index(below: n)] = 1 + Float(rng.index(below: 3)) }
                    let start = flags(n, density: 30, &rng)
                    let free = start.indices.filter { !start[$0] }
                    for count in [1, 2, 5, 8] {
                        let expected = largest(count, of: free, in: v).union(start.indices.filter { start[$0] })
                        onBothPaths { path in
                            #expect(grown(start, v, count) == expected, "\(path) n \(n) larger \(larger) tied \(tied) count \(count)")
                        }
                    }
                }
            }
        }
    }

    /// The keep selection takes the largest nonzero |w| among eligible positions and
    /// reports whether a NaN is among them.
    @Test func selectingTheLargestNonzeroMatchesAFullSort() {
        var rng = Xoshiro256(seed: 24)
        for n in Self.lengths where n > 0 {
            for density in [10, 60, 100] {
                let eligible = flags(n, density: density, &rng)
                let w = values(n, &rng)
                let candidates = eligible.indices.filter { eligible[$0] && w[$0] != 0 }
                // A twentieth takes the sampled bound on the longer inputs.
                for count in Set([1, candidates.count / 20, candidates.count / 7, candidates.count / 2, candidates.count,
                                  candidates.count + 3]) {
                    let expected = largest(count, of: candidates, in: w)
                    onBothPaths { path in
                        var f = [Bool](repeating: false, count: n)
                        let nan = eligible.withFlagBytes { e in
                            f.withMutableFlagBytes { fb in
                                ds_select_largest_nonzero(e.baseAddress!, w, Int64(n), Int64(count), fb.baseAddress!)
                            }
                        }
                        #expect(Set(f.indices.filter { f[$0] }) == expected, "\(path) n \(n) count \(count)")
                        #expect(nan == (expected.contains { w[$0].isNaN } ? 1 : 0), "\(path) n \(n) count \(count)")
                        // The same selection from the eligible positions and their weights.
                        let positions = eligible.indices.filter { eligible[$0] }.map(Int32.init)
                        let weights = positions.map { w[Int($0)] }
                        var g = [Bool](repeating: false, count: n)
                        let nanAt = g.withMutableFlagBytes { gb in
                            positions.isEmpty ? 0 : ds_select_largest_nonzero_at(positions, weights, Int64(positions.count),
                                                                                 Int64(count), gb.baseAddress!)
                        }
                        #expect(g == f && nanAt == nan, "\(path) n \(n) count \(count), from positions")
                    }
                }
            }
        }
    }

    /// Both orders of a pattern against a naive build; a
    /// pattern built without its column order has the same row order.
    @Test func patternOrdersMatchANaiveBuild() {
        var rng = Xoshiro256(seed: 25)
        for (rows, columns) in [(1, 1), (3, 64), (7, 65), (20, 130), (5, 200), (33, 17)] {
            for density in [0, 5, 40, 100] {
                let active = flags(rows * columns, density: density, &rng)
                let mask = SparseMask(rows: rows, columns: columns, active: active)
                let positions = active.indices.filter { active[$0] }
                let byColumn = positions.sorted { ($0 % columns, $0 / columns) < ($1 % columns, $1 / columns) }
                onBothPaths { path in
                    let p = SparsePattern(mask: mask)
                    let label = "\(path) \(rows)x\(columns) density \(density)"
                    #expect(p.positions.map(Int.init) == positions, "\(label)")
                    #expect(p.columnIndex.map(Int.init) == positions.map { $0 % columns }, "\(label)")
                    #expect((0...rows).map { Int(p.rowStart[$0]) } == (0...rows).map { r in positions.filter { $0 < r * columns }.count },
                            "\(label)")
                    #expect(p.transposedPositions.map(Int.init) == byColumn, "\(label)")
                    #expect(p.rowIndex.map(Int.init) == byColumn.map { $0 / columns }, "\(label)")
                    #expect(p.transposedEntries.map { positions[Int($0)] } == byColumn, "\(label)")
                    #expect((0...columns).map { Int(p.columnStart[$0]) } == (0...columns).map { c in
                        positions.filter { $0 % columns < c }.count
                    }, "\(label)")
                    let rowOnly = SparsePattern(mask: mask, columnOrder: false)
                    #expect(rowOnly == p && !rowOnly.hasColumnOrder && p.hasColumnOrder, "\(label)")
                }
            }
        }
    }
}
