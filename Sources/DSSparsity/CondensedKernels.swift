import DSCore

/// Sparse × dense kernels for condensed (constant fan-in) and CSR layers.
///
/// Batch 1 is a gather-dot per output neuron. Larger batches first transpose the
/// activations into feature-major tiles `xT[F][T]` (T = 64, or 16 for a short tail), so
/// each stored weight multiplies `T` contiguous floats: `y[j][0..<T] += w · xT[idx][0..<T]`.
/// Both split the output neurons over `Parallel.threads`.
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

    /// `y[0..<T] = Σ_i values[i] · xT[indices[i]][0..<T]` for tiles of `width` 64 or 16.
    @inline(__always)
    static func tileAccumulate<I: FixedWidthInteger>(_ values: UnsafePointer<Float>, _ indices: UnsafePointer<I>,
                                                     _ count: Int, _ xT: UnsafePointer<Float>, width: Int,
                                                     into y: UnsafeMutablePointer<Float>) {
        if width == 64 {
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            for i in 0..<count {
                let w = SIMD16<Float>(repeating: values[i])
                let src = UnsafeRawPointer(xT + Int(indices[i]) &* 64)
                a0.addProduct(w, src.loadUnaligned(as: SIMD16<Float>.self))
                a1.addProduct(w, src.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
                a2.addProduct(w, src.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
                a3.addProduct(w, src.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
            }
            let out = UnsafeMutableRawPointer(y)
            out.storeBytes(of: a0, as: SIMD16<Float>.self)
            out.storeBytes(of: a1, toByteOffset: 64, as: SIMD16<Float>.self)
            out.storeBytes(of: a2, toByteOffset: 128, as: SIMD16<Float>.self)
            out.storeBytes(of: a3, toByteOffset: 192, as: SIMD16<Float>.self)
        } else {
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
            var i = 0
            while i &+ 2 <= count {
                a0.addProduct(SIMD16(repeating: values[i]),
                              UnsafeRawPointer(xT + Int(indices[i]) &* 16).loadUnaligned(as: SIMD16<Float>.self))
                a1.addProduct(SIMD16(repeating: values[i &+ 1]),
                              UnsafeRawPointer(xT + Int(indices[i &+ 1]) &* 16).loadUnaligned(as: SIMD16<Float>.self))
                i &+= 2
            }
            if i < count {
                a0.addProduct(SIMD16(repeating: values[i]),
                              UnsafeRawPointer(xT + Int(indices[i]) &* 16).loadUnaligned(as: SIMD16<Float>.self))
            }
            UnsafeMutableRawPointer(y).storeBytes(of: a0 + a1, as: SIMD16<Float>.self)
        }
    }

    /// Transposes rows `b0..<b0+n` of `x [B, F]` into `xT [F][width]` (zero padding).
    static func transposeTile(_ x: UnsafePointer<Float>, features: Int, rows b0: Int, count n: Int, width: Int,
                              into xT: UnsafeMutablePointer<Float>) {
        if n < width { xT.update(repeating: 0, count: features * width) }
        for b in 0..<n {
            let src = x + (b0 &+ b) &* features
            for f in 0..<features { xT[f &* width &+ b] = src[f] }
        }
    }
}

extension CondensedLinear {
    /// `y [B, outputFeatures]` from `x [B, inputFeatures]` (row-major), the fast path:
    /// gather-dot at batch 1, feature-major tiles above.
    public func forward(batch: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        switch indices {
        case .narrow(let idx): idx.withUnsafeBufferPointer { run(batch, x, y, $0.baseAddress!) }
        case .wide(let idx): idx.withUnsafeBufferPointer { run(batch, x, y, $0.baseAddress!) }
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

    private func run<I: FixedWidthInteger>(_ batch: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                          _ idx: UnsafePointer<I>) {
        let k = fanIn, nOut = outputFeatures, features = inputFeatures, m = activeRows.count
        values.withUnsafeBufferPointer { pv in
            activeRows.withUnsafeBufferPointer { rows in
                bias.withUnsafeBufferPointer { pb in
                    let v = pv.baseAddress!
                    // Ablated (and all) outputs start at their bias.
                    for b in 0..<batch { (y + b * nOut).update(from: pb.baseAddress!, count: nOut) }
                    if batch == 1 {
                        Parallel.forRanges(m, work: m * k * 4) { range in
                            for r in range {
                                y[Int(rows[r])] += SparseKernels.gatherDot(v + r &* k, idx + r &* k, x, k)
                            }
                        }
                        return
                    }
                    var b0 = 0
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: features * 64 + m * 64)
                    defer { scratch.deallocate() }
                    while b0 < batch {
                        let width = batch - b0 >= 64 ? 64 : 16
                        let n = min(width, batch - b0)
                        let xT = scratch, yT = scratch + features * 64
                        SparseKernels.transposeTile(x, features: features, rows: b0, count: n, width: width, into: xT)
                        Parallel.forRanges(m, work: m * k * width) { range in
                            for r in range {
                                SparseKernels.tileAccumulate(v + r &* k, idx + r &* k, k, xT, width: width,
                                                             into: yT + r &* width)
                            }
                        }
                        for r in 0..<m {
                            let j = Int(rows[r])
                            for b in 0..<n { y[(b0 &+ b) &* nOut &+ j] += yT[r &* width &+ b] }
                        }
                        b0 += n
                    }
                }
            }
        }
    }
}

extension CondensedLinear {
    /// A convolution in condensed form on its column matrix (feature-major already):
    /// `y[j][c] = bias[j] + Σ_i values[r, i] · col[indices[r, i]][c]` for `c < columns`,
    /// in column blocks that stay in cache; ablated rows get their bias.
    public func forwardColumns(_ col: UnsafePointer<Float>, ldCol: Int, columns: Int,
                               into y: UnsafeMutablePointer<Float>, ldY: Int) {
        switch indices {
        case .narrow(let idx): idx.withUnsafeBufferPointer { runColumns(col, ldCol, columns, y, ldY, $0.baseAddress!) }
        case .wide(let idx): idx.withUnsafeBufferPointer { runColumns(col, ldCol, columns, y, ldY, $0.baseAddress!) }
        }
    }

    private func runColumns<I: FixedWidthInteger>(_ col: UnsafePointer<Float>, _ ldCol: Int, _ columns: Int,
                                                 _ y: UnsafeMutablePointer<Float>, _ ldY: Int,
                                                 _ idx: UnsafePointer<I>) {
        let k = fanIn, block = 256
        for j in 0..<outputFeatures { (y + j * ldY).update(repeating: bias[j], count: columns) }
        values.withUnsafeBufferPointer { pv in
            activeRows.withUnsafeBufferPointer { rows in
                Parallel.forRanges(rows.count, work: rows.count * k * columns) { range in
                    for r in range {
                        let out = y + Int(rows[r]) * ldY
                        let v = pv.baseAddress! + r * k, p = idx + r * k
                        var c0 = 0
                        while c0 < columns {
                            let n = min(block, columns - c0)
                            for i in 0..<k {
                                let w = v[i], src = col + Int(p[i]) * ldCol + c0, dst = out + c0
                                for c in 0..<n { dst[c] += w * src[c] }
                            }
                            c0 += n
                        }
                    }
                }
            }
        }
    }
}
