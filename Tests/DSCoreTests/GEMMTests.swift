import DSCore
import DSTestSupport
import Testing

@Suite struct GEMMTests {
    func check(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, threads: Int) {
        Parallel.withThreads(threads) { checkProduct(m: m, n: n, k: k, ta: ta, tb: tb, threads: threads) }
    }

    func checkProduct(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, threads: Int) {
        let a = randomTensor(ta ? [k, m] : [m, k], seed: 1)
        let b = randomTensor(tb ? [n, k] : [k, n], seed: 2)
        let fast = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
        let slow = Reference.gemm(a, b, transposeA: ta, transposeB: tb)
        #expect(fast.shape == [m, n])
        let worst = zip(fast.storage, slow.storage).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(worst < 1e-4, "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb) threads=\(threads): error \(worst)")
    }

    @Test("sgemm equals the triple loop for every transpose combination")
    func smallShapes() {
        for ta in [false, true] {
            for tb in [false, true] { check(m: 5, n: 7, k: 3, ta: ta, tb: tb, threads: 1) }
        }
    }

    @Test("split GEMMs (columns, rows, long K) equal the triple loop")
    func parallelSplits() {
        for ta in [false, true] {
            for tb in [false, true] {
                check(m: 8, n: 700, k: 800, ta: ta, tb: tb, threads: 2)     // columns of C
                check(m: 300, n: 40, k: 400, ta: ta, tb: tb, threads: 2)    // rows of C
                check(m: 6, n: 5, k: 140_000, ta: ta, tb: tb, threads: 2)   // long K
            }
        }
    }

    @Test("a long-K split gives the same bits every time")
    func splitIsDeterministic() {
        let a = randomTensor([4, 200_000], seed: 3), b = randomTensor([200_000, 3], seed: 4)
        Parallel.withThreads(2) {
            #expect(Tensor.matmul(a, b) == Tensor.matmul(a, b))
        }
    }
}

@Suite struct TensorTests {
    @Test func swappingOuterAxes() {
        let t = Tensor(shape: [2, 3, 2], values: (0..<12).map(Float.init))
        let s = t.swappingOuterAxes()
        #expect(s.shape == [3, 2, 2])
        #expect(s[1, 0, 1] == t[0, 1, 1])
        #expect(s[2, 1, 0] == t[1, 2, 0])
        #expect(s.swappingOuterAxes() == t)
    }

    @Test func indexingIsRowMajor() {
        var t = Tensor(shape: [2, 3])
        t[1, 2] = 5
        #expect(t.storage[5] == 5)
        #expect(t.reshaped([3, 2])[2, 1] == 5)
    }
}

@Suite struct TransposeTests {
    @Test("transpose moves every element, on tile edges and with row strides")
    func transposeMovesEveryElement() {
        // 128×784 and 131×600 are large enough to be split over threads (bands of 16 rows).
        for (rows, columns) in [(1, 1), (16, 16), (17, 33), (128, 784), (131, 600), (3, 50), (64, 5)] {
            let lda = columns + 3, ldb = rows + 2
            let a = (0..<(rows * lda)).map { Float($0) }
            var b = [Float](repeating: -1, count: columns * ldb)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeMutableBufferPointer { pb in
                    BLAS.transpose(rows: rows, columns: columns, pa.baseAddress!, lda: lda, into: pb.baseAddress!, ldb: ldb)
                }
            }
            var wrong = 0
            for c in 0..<columns {
                for r in 0..<ldb where b[c * ldb + r] != (r < rows ? a[r * lda + c] : -1) { wrong += 1 }
            }
            #expect(wrong == 0, "\(rows)x\(columns): \(wrong) elements wrong")
        }
    }
}
