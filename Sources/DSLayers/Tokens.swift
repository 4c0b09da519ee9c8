import DSCore

/// Cuts images `[C, N, H, W]` into non-overlapping `p × p` patches, one token each:
/// `[N, T, C·p·p]` with `T = (H/p)·(W/p)` in row-major patch order and each patch's
/// values in `[c, y, x]` order (a Linear on the last axis is then the patch embedding).
public final class PatchTokens: Layer {
    public let patchSize: Int
    private var inputShape: [Int] = []
    public init(patchSize: Int) {
        precondition(patchSize > 0, "PatchTokens: patch size \(patchSize)")
        self.patchSize = patchSize
    }

    /// Visits every (source offset in `[C, N, H, W]`, token-major offset) pair.
    private func forEachPair(_ shape: [Int], _ body: (Int, Int) -> Void) {
        let c = shape[0], n = shape[1], h = shape[2], w = shape[3], p = patchSize
        let across = w / p, tokens = (h / p) * across, features = c * p * p
        for b in 0..<n {
            for token in 0..<tokens {
                let py = token / across * p, px = token % across * p
                for ch in 0..<c {
                    for y in 0..<p {
                        for x in 0..<p {
                            body(((ch * n + b) * h + py + y) * w + px + x,
                                 (b * tokens + token) * features + (ch * p + y) * p + x)
                        }
                    }
                }
            }
        }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] % patchSize == 0 && x.shape[3] % patchSize == 0,
                     "PatchTokens(\(patchSize)) got input \(x.shape)")
        inputShape = x.shape
        let c = x.shape[0], n = x.shape[1], p = patchSize
        var y = Tensor(uninitializedShape: [n, (x.shape[2] / p) * (x.shape[3] / p), c * p * p])
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in forEachPair(x.shape) { py[$1] = px[$0] } }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard dy.count > 0 else { return dy }   // empty: not needed upstream
        var dx = Tensor(uninitializedShape: inputShape)
        dy.storage.withUnsafeBufferPointer { pdy in
            dx.storage.withUnsafeMutableBufferPointer { pdx in forEachPair(inputShape) { pdx[$0] = pdy[$1] } }
        }
        return dx
    }
}

/// Prepends a learned class token to every sequence and adds a learned position
/// embedding: `[N, T, D] → [N, T + 1, D]`, `y[n, 0] = cls + pos[0]`,
/// `y[n, t + 1] = x[n, t] + pos[t + 1]`. Both are embeddings: dense, never decayed,
/// drawn from N(0, 0.02²).
public final class ClassTokenAndPosition: Layer {
    public let classToken: Parameter
    public let position: Parameter
    public let tokens: Int, width: Int

    public init(tokens: Int, width: Int, rng: inout Xoshiro256) {
        self.tokens = tokens; self.width = width
        func draw(_ shape: [Int]) -> Tensor {
            var t = Tensor(shape: shape)
            for i in 0..<t.count { t.storage[i] = 0.02 * rng.normal() }
            return t
        }
        classToken = Parameter(name: "class_token", role: .embedding, value: draw([width]))
        position = Parameter(name: "position", role: .embedding, value: draw([tokens + 1, width]))
    }

    public var ownParameters: [Parameter] { [classToken, position] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == tokens && x.shape[2] == width,
                     "ClassTokenAndPosition(\(tokens)×\(width)) got input \(x.shape)")
        let n = x.shape[0], d = width, rows = tokens + 1
        var y = Tensor(uninitializedShape: [n, rows, d])
        for b in 0..<n {
            for i in 0..<d { y.storage[b * rows * d + i] = classToken.value.storage[i] + position.value.storage[i] }
            for t in 0..<tokens {
                for i in 0..<d {
                    y.storage[(b * rows + t + 1) * d + i] = x.storage[(b * tokens + t) * d + i] + position.value.storage[(t + 1) * d + i]
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let n = dy.shape[0], d = width, rows = tokens + 1
        var dx = Tensor(uninitializedShape: [n, tokens, d])
        for b in 0..<n {
            for i in 0..<d { classToken.gradient.storage[i] += dy.storage[b * rows * d + i] }
            for r in 0..<rows {
                for i in 0..<d { position.gradient.storage[r * d + i] += dy.storage[(b * rows + r) * d + i] }
            }
            for t in 0..<tokens {
                for i in 0..<d { dx.storage[(b * tokens + t) * d + i] = dy.storage[(b * rows + t + 1) * d + i] }
            }
        }
        return dx
    }
}

/// The class token's row of each sequence: `[N, T, D] → [N, D]` (token 0).
public final class ClassTokenPool: Layer {
    private var inputShape: [Int] = []
    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 3, "ClassTokenPool got input \(x.shape)")
        inputShape = x.shape
        let n = x.shape[0], t = x.shape[1], d = x.shape[2]
        var y = Tensor(uninitializedShape: [n, d])
        for b in 0..<n { for i in 0..<d { y.storage[b * d + i] = x.storage[b * t * d + i] } }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let n = inputShape[0], t = inputShape[1], d = inputShape[2]
        var dx = Tensor(shape: inputShape)
        for b in 0..<n { for i in 0..<d { dx.storage[b * t * d + i] = dy.storage[b * d + i] } }
        return dx
    }
}
