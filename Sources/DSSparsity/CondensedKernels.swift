import DSCore

/// Sparse × dense kernels shared by the condensed (constant fan-in) and CSR layers.
///
/// Batch 1 is a gather-dot per output neuron (the condensed layer has a faster
/// lane-block path, `LaneBlockPlan`). Larger batches work on feature-major activations
/// `x [F, ldX]`: a stored weight then multiplies a contiguous run of columns,
/// `y[j][c..<c+64] += w · x[index][c..<c+64]`, with two output rows in flight so eight
/// vector accumulators hide the FMA latency (32 columns and four rows for layers with
/// more than 1024 inputs). Columns go in such blocks, then 16, then single columns, each
/// packed into a tile that stays in cache across all output rows.
public enum SparseKernels {
    /// `Σ_i values[i] · x[indices[i]]` for `count` terms (two 8-wide accumulators).
    @inline(__always)
    static func gatherDot<I: FixedWidthInteger>(_ values: UnsafePointer<Float>, _ indices: UnsafePointer<I>,
                                                _ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i &+ 16 <= count {
            let p = indices + i
            let g0 = SIMD8<Float>(x[Int(p[0])], x[Int(p[1])], x[Int(p[2])], x[Int(p[3])],
                                  x[Int(p[4])], x[Int(p[5])], x[Int(p[6])], x[Int(p[7])])
            let g1 = SIMD8<Float>(x[Int(p[8])], x[Int(p[9])], x[Int(p[10])], x[Int(p[11])],
                                  x[Int(p[12])], x[Int(p[13])], x[Int(p[14])], x[Int(p[15])])
            a0.addProduct(UnsafeRawPointer(values + i).loadUnaligned(as: SIMD8<Float>.self), g0)
            a1.addProduct(UnsafeRawPointer(values + (i &+ 8)).loadUnaligned(as: SIMD8<Float>.self), g1)
            i &+= 16
        }
        var s = (a0 + a1).sum()
        while i < count { s += values[i] * x[Int(indices[i])]; i &+= 1 }
        return s
    }

    /// The `work` estimate for a batch-1 pass over `weights` weights: below about a
    /// million weights the pass ends before a second thread is awake (measured: two
    /// threads slower than one on 236k weights), so it stays on one.
    static func batchOneWork(weights: Int) -> Int { weights / 16 }

    /// One output row's stored weights: `count` values and the input rows they read.
    struct Row<I: FixedWidthInteger> {
        var values: UnsafePointer<Float>
        var indices: UnsafePointer<I>
        var count: Int
        var bias: Float
        /// `y[row]`, at the block's first column.
        var out: UnsafeMutablePointer<Float>
    }

    /// Four 16-wide accumulators: 64 columns of one output row.
    struct Accumulator64 {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()

        @inline(__always)
        mutating func add(_ w: Float, _ src: UnsafePointer<Float>) {
            let w = SIMD16<Float>(repeating: w), p = UnsafeRawPointer(src)
            a0.addProduct(w, p.loadUnaligned(as: SIMD16<Float>.self))
            a1.addProduct(w, p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
            a2.addProduct(w, p.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
            a3.addProduct(w, p.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
        }

        @inline(__always)
        func store(bias: Float, to out: UnsafeMutablePointer<Float>) {
            let b = SIMD16<Float>(repeating: bias), p = UnsafeMutableRawPointer(out)
            p.storeBytes(of: a0 + b, as: SIMD16<Float>.self)
            p.storeBytes(of: a1 + b, toByteOffset: 64, as: SIMD16<Float>.self)
            p.storeBytes(of: a2 + b, toByteOffset: 128, as: SIMD16<Float>.self)
            p.storeBytes(of: a3 + b, toByteOffset: 192, as: SIMD16<Float>.self)
        }
    }

    /// `out = bias + Σ_i values[i] · x[indices[i]][0..<64]` for rows `a` and `b`
    /// (`x` already offset to the block's first column).
    @inline(__always)
    static func block64<I: FixedWidthInteger>(_ a: Row<I>, _ b: Row<I>, _ x: UnsafePointer<Float>, _ ldX: Int) {
        var ya = Accumulator64(), yb = Accumulator64()
        let both = min(a.count, b.count)
        for i in 0..<both {
            ya.add(a.values[i], x + Int(a.indices[i]) &* ldX)
            yb.add(b.values[i], x + Int(b.indices[i]) &* ldX)
        }
        for i in both..<a.count { ya.add(a.values[i], x + Int(a.indices[i]) &* ldX) }
        for i in both..<b.count { yb.add(b.values[i], x + Int(b.indices[i]) &* ldX) }
        ya.store(bias: a.bias, to: a.out)
        yb.store(bias: b.bias, to: b.out)
    }

    /// `out = bias + Σ_i values[i] · x[indices[i]][0..<32]` for four rows at once
    /// (eight accumulators, like `block64` on two rows, on a tile half as wide).
    @inline(__always)
    static func block32<I: FixedWidthInteger>(_ rows: (Row<I>, Row<I>, Row<I>, Row<I>), _ x: UnsafePointer<Float>) {
        var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
                   SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        @inline(__always)
        func add(_ a: inout SIMD16<Float>, _ b: inout SIMD16<Float>, _ row: Row<I>, _ i: Int) {
            let w = SIMD16<Float>(repeating: row.values[i]), p = UnsafeRawPointer(x + Int(row.indices[i]) &* 32)
            a.addProduct(w, p.loadUnaligned(as: SIMD16<Float>.self))
            b.addProduct(w, p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
        }
        let all = min(rows.0.count, rows.1.count, rows.2.count, rows.3.count)
        for i in 0..<all {
            add(&acc.0, &acc.1, rows.0, i); add(&acc.2, &acc.3, rows.1, i)
            add(&acc.4, &acc.5, rows.2, i); add(&acc.6, &acc.7, rows.3, i)
        }
        for i in all..<rows.0.count { add(&acc.0, &acc.1, rows.0, i) }
        for i in all..<rows.1.count { add(&acc.2, &acc.3, rows.1, i) }
        for i in all..<rows.2.count { add(&acc.4, &acc.5, rows.2, i) }
        for i in all..<rows.3.count { add(&acc.6, &acc.7, rows.3, i) }
        @inline(__always)
        func store(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ row: Row<I>) {
            let bias = SIMD16<Float>(repeating: row.bias), p = UnsafeMutableRawPointer(row.out)
            p.storeBytes(of: a + bias, as: SIMD16<Float>.self)
            p.storeBytes(of: b + bias, toByteOffset: 64, as: SIMD16<Float>.self)
        }
        store(acc.0, acc.1, rows.0); store(acc.2, acc.3, rows.1)
        store(acc.4, acc.5, rows.2); store(acc.6, acc.7, rows.3)
    }

    /// One row over 64 columns (the odd row left of a pair).
    @inline(__always)
    static func block64<I: FixedWidthInteger>(_ a: Row<I>, _ x: UnsafePointer<Float>, _ ldX: Int) {
        var ya = Accumulator64()
        for i in 0..<a.count { ya.add(a.values[i], x + Int(a.indices[i]) &* ldX) }
        ya.store(bias: a.bias, to: a.out)
    }

    /// The same over 16 columns (two accumulators per row, even and odd terms).
    @inline(__always)
    static func block16<I: FixedWidthInteger>(_ row: Row<I>, _ x: UnsafePointer<Float>, _ ldX: Int) {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i &+ 2 <= row.count {
            a0.addProduct(SIMD16(repeating: row.values[i]),
                          UnsafeRawPointer(x + Int(row.indices[i]) &* ldX).loadUnaligned(as: SIMD16<Float>.self))
            a1.addProduct(SIMD16(repeating: row.values[i &+ 1]),
                          UnsafeRawPointer(x + Int(row.indices[i &+ 1]) &* ldX).loadUnaligned(as: SIMD16<Float>.self))
            i &+= 2
        }
        if i < row.count {
            a0.addProduct(SIMD16(repeating: row.values[i]),
                          UnsafeRawPointer(x + Int(row.indices[i]) &* ldX).loadUnaligned(as: SIMD16<Float>.self))
        }
        UnsafeMutableRawPointer(row.out).storeBytes(of: a0 + a1 + SIMD16(repeating: row.bias), as: SIMD16<Float>.self)
    }

    /// One column.
    @inline(__always)
    static func column<I: FixedWidthInteger>(_ row: Row<I>, _ x: UnsafePointer<Float>, _ ldX: Int) {
        var s = row.bias
        for i in 0..<row.count { s += row.values[i] * x[Int(row.indices[i]) &* ldX] }
        row.out.pointee = s
    }

    /// Runs a feature-major product `body(xT [inputs, batch], yT [outputs, batch])` for
    /// batch-major `x [batch, inputs]` → `y [batch, outputs]`, transposing in and out.
    static func featureMajor(batch: Int, inputs: Int, outputs: Int, _ x: UnsafePointer<Float>,
                             _ y: UnsafeMutablePointer<Float>,
                             _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let xT = UnsafeMutablePointer<Float>.allocate(capacity: inputs * batch)
        let yT = UnsafeMutablePointer<Float>.allocate(capacity: outputs * batch)
        defer { xT.deallocate(); yT.deallocate() }
        BLAS.transpose(rows: batch, columns: inputs, x, lda: inputs, into: xT, ldb: batch)
        body(xT, yT)
        BLAS.transpose(rows: outputs, columns: batch, yT, lda: batch, into: y, ldb: outputs)
    }

    /// `y[row r][0..<columns]` for the `count` rows of a sparse matrix given by `row(r, c)`
    /// (its weights, bias and output at column `c`), from `x [features, ldX]`.
    ///
    /// Each block of 64 or 32 (then 16, then 1) columns is first copied into a packed
    /// `[features][width]` tile: rows of `x` a power-of-two stride apart would map to a
    /// few cache sets and evict each other. With as many blocks as threads, each thread
    /// takes whole blocks (its own tile, in its own core's cache); else the rows of each
    /// block are split over the threads.
    @inline(__always)
    static func columns<I: FixedWidthInteger>(rows count: Int, columns: Int, features: Int, work: Int,
                                              x: UnsafePointer<Float>, ldX: Int, row: (Int, Int) -> Row<I>) {
        // 64-wide tiles while one stays well inside L2 (≤ 256 KB), 32-wide beyond.
        let wide = features <= 1024 ? 64 : 32
        var blocks: [(start: Int, width: Int)] = []
        var c = 0
        while c < columns {
            let width = columns - c >= wide ? wide : columns - c >= 16 ? 16 : 1
            blocks.append((c, width))
            c += width
        }
        func pack(_ b: (start: Int, width: Int), into tile: UnsafeMutablePointer<Float>) {
            for f in 0..<features { (tile + f &* b.width).update(from: x + (f &* ldX &+ b.start), count: b.width) }
        }
        /// Rows `range` of block `b`, from its packed tile.
        @inline(__always)
        func run(_ b: (start: Int, width: Int), rows range: Range<Int>, tile: UnsafeMutablePointer<Float>) {
            let (c0, width) = b
            switch width {
            case 64:
                var r = range.lowerBound
                while r &+ 2 <= range.upperBound {
                    block64(row(r, c0), row(r &+ 1, c0), tile, 64)
                    r &+= 2
                }
                if r < range.upperBound { block64(row(r, c0), tile, 64) }
            case 32:
                var r = range.lowerBound
                while r &+ 4 <= range.upperBound {
                    block32((row(r, c0), row(r &+ 1, c0), row(r &+ 2, c0), row(r &+ 3, c0)), tile)
                    r &+= 4
                }
                while r < range.upperBound {   // the last rows, 16 columns at a time
                    block16(row(r, c0), tile, 32)
                    block16(row(r, c0 &+ 16), tile + 16, 32)
                    r &+= 1
                }
            case 16:
                for r in range { block16(row(r, c0), tile, 16) }
            default:
                for r in range { column(row(r, c0), tile, 1) }
            }
        }
        /// A cache-line aligned tile, so no 64-byte load straddles two lines.
        func withTile(_ body: (UnsafeMutablePointer<Float>) -> Void) {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(features, 1) * 64 * 4, alignment: 64)
            defer { raw.deallocate() }
            body(raw.bindMemory(to: Float.self, capacity: max(features, 1) * 64))
        }
        if blocks.count >= Parallel.threads {
            Parallel.forRanges(blocks.count, work: work) { range in
                withTile { tile in
                    for b in range { pack(blocks[b], into: tile); run(blocks[b], rows: 0..<count, tile: tile) }
                }
            }
        } else {
            withTile { tile in
                for b in blocks {
                    pack(b, into: tile)
                    Parallel.forRanges(count, work: work * b.width / max(columns, 1)) { run(b, rows: $0, tile: tile) }
                }
            }
        }
    }
}

extension CondensedLinear {
    /// `y [B, outputFeatures]` from `x [B, inputFeatures]` (batch-major). Batch 1 runs the
    /// lane-block kernel where the CPU has it, else a gather-dot per neuron; larger
    /// batches transpose to feature-major, run `forwardColumns` and transpose back.
    public func forward(batch: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        if batch == 1 { forwardOne(x, into: y); return }
        SparseKernels.featureMajor(batch: batch, inputs: inputFeatures, outputs: outputFeatures, x, y) {
            forwardColumns($0, ldCol: batch, columns: batch, into: $1, ldY: batch)
        }
    }

    /// Convenience over arrays.
    public func forward(_ x: [Float], batch: Int) -> [Float] {
        precondition(x.count == batch * inputFeatures, "CondensedLinear: input of \(x.count) for batch \(batch)")
        var y = [Float](repeating: 0, count: batch * outputFeatures)
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { forward(batch: batch, px.baseAddress!, into: $0.baseAddress!) } }
        return y
    }

    /// The obviously-correct loop, in Double: the test oracle.
    public func referenceForward(_ x: [Float], batch: Int) -> [Float] {
        var y = [Float](repeating: 0, count: batch * outputFeatures)
        for b in 0..<batch {
            for j in 0..<outputFeatures { y[b * outputFeatures + j] = bias[j] }
            for (r, row) in activeRows.enumerated() {
                var s = Double(bias[Int(row)])
                for i in 0..<fanIn {
                    s += Double(values[r * fanIn + i]) * Double(x[b * inputFeatures + indices[r * fanIn + i]])
                }
                y[b * outputFeatures + Int(row)] = Float(s)
            }
        }
        return y
    }

    /// `y [outputFeatures]` from one input: `y[j] = bias[j] + Σ_i values[r, i] · x[indices[r, i]]`.
    /// `laneBlocks: false` forces the gather-dot (to test both).
    public func forwardOne(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, laneBlocks: Bool = true) {
        bias.withUnsafeBufferPointer { forwardOne(x, into: y, laneBlocks: laneBlocks, bias: $0.baseAddress!) }
    }

    /// The same with the bias `bias [outputFeatures]` in place of the layer's own.
    func forwardOne(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, laneBlocks: Bool,
                    bias: UnsafePointer<Float>) {
        y.update(from: bias, count: outputFeatures)
        let m = activeRows.count, k = fanIn
        guard m > 0 else { return }
        activeRows.withUnsafeBufferPointer { rows in
            if laneBlocks, let plan = laneBlockPlan {
                let lanes = LaneBlockPlan.lanes
                let out = UnsafeMutablePointer<Float>.allocate(capacity: plan.groups * lanes)
                defer { out.deallocate() }
                Parallel.forRanges(plan.groups, work: SparseKernels.batchOneWork(weights: m * k)) {
                    plan.forward(x, groups: $0, into: out)
                }
                plan.laneRows.withUnsafeBufferPointer { lane in
                    for p in 0..<m { y[Int(rows[Int(lane[p])])] += out[p] }
                }
                return
            }
            switch indices {
            case .narrow(let idx): idx.withUnsafeBufferPointer { gatherDots(x, y, rows.baseAddress!, $0.baseAddress!) }
            case .wide(let idx): idx.withUnsafeBufferPointer { gatherDots(x, y, rows.baseAddress!, $0.baseAddress!) }
            }
        }
    }

    private func gatherDots<I: FixedWidthInteger>(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                                 _ rows: UnsafePointer<Int32>, _ idx: UnsafePointer<I>) {
        let m = activeRows.count, k = fanIn
        values.withUnsafeBufferPointer { pv in
            Parallel.forRanges(m, work: SparseKernels.batchOneWork(weights: m * k)) { range in
                for r in range {
                    y[Int(rows[r])] += SparseKernels.gatherDot(pv.baseAddress! + r &* k, idx + r &* k, x, k)
                }
            }
        }
    }

    /// Feature-major form, used by convolutions (on their im2col columns) and batches:
    /// `y[j][c] = bias[j] + Σ_i values[r, i] · col[indices[r, i]][c]` for `c < columns`
    /// (`col [inputFeatures, ldCol]`, `y [outputFeatures, ldY]`); ablated rows get their bias.
    public func forwardColumns(_ col: UnsafePointer<Float>, ldCol: Int, columns: Int,
                               into y: UnsafeMutablePointer<Float>, ldY: Int) {
        bias.withUnsafeBufferPointer {
            forwardColumns(col, ldCol: ldCol, columns: columns, into: y, ldY: ldY, bias: $0.baseAddress!, parallel: true)
        }
    }

    /// The same with the bias `bias [outputFeatures]` in place of the layer's own;
    /// `parallel: false` stays on the calling thread.
    func forwardColumns(_ col: UnsafePointer<Float>, ldCol: Int, columns: Int, into y: UnsafeMutablePointer<Float>,
                        ldY: Int, bias: UnsafePointer<Float>, parallel: Bool) {
        switch indices {
        case .narrow(let idx):
            idx.withUnsafeBufferPointer { runColumns(col, ldCol, columns, y, ldY, $0.baseAddress!, bias, parallel) }
        case .wide(let idx):
            idx.withUnsafeBufferPointer { runColumns(col, ldCol, columns, y, ldY, $0.baseAddress!, bias, parallel) }
        }
    }

    private func runColumns<I: FixedWidthInteger>(_ col: UnsafePointer<Float>, _ ldCol: Int, _ columns: Int,
                                                 _ y: UnsafeMutablePointer<Float>, _ ldY: Int,
                                                 _ idx: UnsafePointer<I>, _ bias: UnsafePointer<Float>,
                                                 _ parallel: Bool) {
        let k = fanIn, m = activeRows.count
        activeRows.withUnsafeBufferPointer { rows in
            var isActive = [Bool](repeating: false, count: outputFeatures)
            for r in rows { isActive[Int(r)] = true }
            for j in 0..<outputFeatures where !isActive[j] { (y + j * ldY).update(repeating: bias[j], count: columns) }
            guard m > 0 else { return }
            values.withUnsafeBufferPointer { pv in
                let v = pv.baseAddress!
                SparseKernels.columns(rows: m, columns: columns, features: inputFeatures,
                                      work: parallel ? m * k * columns : 0, x: col, ldX: ldCol) { r, c in
                    let j = Int(rows[r])
                    return SparseKernels.Row(values: v + r &* k, indices: idx + r &* k, count: k, bias: bias[j],
                                             out: y + (j &* ldY &+ c))
                }
            }
        }
    }
}
