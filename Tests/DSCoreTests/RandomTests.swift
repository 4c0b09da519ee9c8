import DSCore
import Testing

@Suite struct RandomTests {
    @Test func sameSeedSameStream() {
        var a = Xoshiro256(seed: 42), b = Xoshiro256(seed: 42), c = Xoshiro256(seed: 43)
        let sa = (0..<5).map { _ in a.next() }, sb = (0..<5).map { _ in b.next() }
        let sc = (0..<5).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
    }

    @Test func boundedIndicesAreInRangeAndCoverIt() {
        var rng = Xoshiro256(seed: 1)
        var seen = Set<Int>()
        for _ in 0..<2000 {
            let i = rng.index(below: 7)
            #expect(i >= 0 && i < 7)
            seen.insert(i)
        }
        #expect(seen.count == 7)
    }

    @Test func normalHasUnitMoments() {
        var rng = Xoshiro256(seed: 3)
        let xs = (0..<20_000).map { _ in Double(rng.normal()) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        #expect(abs(mean) < 0.03)
        #expect(abs(variance - 1) < 0.05)
    }

    @Test func shuffleIsASeededPermutation() {
        var a = Array(0..<50), b = Array(0..<50)
        var r1 = Xoshiro256(seed: 9), r2 = Xoshiro256(seed: 9)
        r1.shuffle(&a); r2.shuffle(&b)
        #expect(a == b)
        #expect(a != Array(0..<50))
        #expect(a.sorted() == Array(0..<50))
    }
}
