import DSCore
import DSTestSupport
import DSTraining
import Foundation
import Testing

@Suite struct CrossEntropyTests {
    @Test func matchesHandComputation() {
        let logits = Tensor(shape: [2, 3], values: [1, 2, 3, 0, 0, 0])
        let r = CrossEntropy().evaluate(logits: logits, labels: [2, 1])
        let l0 = -log(exp(3.0) / (exp(1.0) + exp(2.0) + exp(3.0)))
        let l1 = -log(1.0 / 3)
        #expect(abs(Double(r.loss) - (l0 + l1) / 2) < 1e-5)
        #expect(r.correct == 1)   // row 1 is a three-way tie: argmax is class 0
        let p00 = exp(1.0) / (exp(1.0) + exp(2.0) + exp(3.0))
        #expect(abs(Double(r.gradient[0, 0]) - p00 / 2) < 1e-6)
        #expect(abs(Double(r.gradient[1, 1]) - (1.0 / 3 - 1) / 2) < 1e-6)
    }

    @Test func labelSmoothingMatchesItsDefinition() {
        let logits = Tensor(shape: [1, 4], values: [0.5, -1, 2, 0])
        let eps = 0.2
        let r = CrossEntropy(labelSmoothing: Float(eps)).evaluate(logits: logits, labels: [2])
        let z = logits.storage.map(Double.init)
        let lse = log(z.map { exp($0) }.reduce(0, +))
        let expected = (0..<4).map { j in -((j == 2 ? 1 - eps : 0) + eps / 4) * (z[j] - lse) }.reduce(0, +)
        #expect(abs(Double(r.loss) - expected) < 1e-5)
        #expect(abs(r.gradient.storage.reduce(0, +)) < 1e-6, "softmax − target sums to zero")
    }

    @Test func gradientMatchesFiniteDifferences() {
        let logits = randomTensor([3, 5], seed: 4)
        let labels = [0, 4, 2]
        let ce = CrossEntropy(labelSmoothing: 0.1)
        let g = ce.evaluate(logits: logits, labels: labels).gradient
        for i in 0..<logits.count {
            var p = logits, m = logits
            p.storage[i] += 1e-2; m.storage[i] -= 1e-2
            let numeric = (ce.evaluate(logits: p, labels: labels).loss - ce.evaluate(logits: m, labels: labels).loss) / 2e-2
            #expect(abs(numeric - g.storage[i]) < 2e-3)
        }
    }
}
