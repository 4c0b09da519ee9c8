import DSCore

/// Training-time augmentation (applied per sample before normalisation).
public struct Augmentation: Equatable, Sendable {
    /// Pad by this many zero pixels on each side, then crop back at a random offset.
    public var cropPadding: Int
    /// Mirror left–right with probability 1/2.
    public var horizontalFlip: Bool
    public init(cropPadding: Int = 0, horizontalFlip: Bool = false) {
        self.cropPadding = cropPadding; self.horizontalFlip = horizontalFlip
    }
    public static let none = Augmentation()
}

/// A batch of images in the library's channel-major layout.
public struct Batch {
    /// `[C, N, H, W]`, normalised per channel.
    public var images: Tensor
    public var labels: [Int]
}

/// Turns a subset of a dataset into normalised, optionally augmented batches.
public struct BatchLoader {
    public let dataset: ImageDataset
    /// The sample indices this loader draws from (a split or part of one).
    public let indices: [Int]
    public let batchSize: Int
    public let augmentation: Augmentation
    /// `lut[c][v] = (v/255 − mean[c]) / std[c]`.
    private let lookup: [[Float]]

    public init(dataset: ImageDataset, indices: [Int]? = nil, batchSize: Int,
                mean: [Float], std: [Float], augmentation: Augmentation = .none) {
        precondition(batchSize > 0, "batch size must be positive")
        precondition(mean.count == dataset.channels && std.count == dataset.channels,
                     "normalisation needs \(dataset.channels) means and stds")
        self.dataset = dataset
        self.indices = indices ?? Array(0..<dataset.count)
        self.batchSize = batchSize
        self.augmentation = augmentation
        lookup = (0..<dataset.channels).map { c in
            (0..<256).map { (Float($0) / 255 - mean[c]) / std[c] }
        }
    }

    public var count: Int { indices.count }
    public var batchesPerEpoch: Int { (indices.count + batchSize - 1) / batchSize }

    /// This loader's indices, shuffled by `rng` (Fisher–Yates).
    public func shuffledOrder(_ rng: inout Xoshiro256) -> [Int] {
        var order = indices
        rng.shuffle(&order)
        return order
    }

    /// The `b`-th batch of `order` (the last one may be smaller).
    public func batch(_ b: Int, of order: [Int], augmentWith rng: inout Xoshiro256) -> Batch {
        let lo = b * batchSize, hi = min(lo + batchSize, order.count)
        return assemble(Array(order[lo..<hi]), rng: &rng, augment: true)
    }

    /// The `b`-th batch in index order, without augmentation (evaluation).
    public func evaluationBatch(_ b: Int) -> Batch {
        let lo = b * batchSize, hi = min(lo + batchSize, indices.count)
        var unused = Xoshiro256(seed: 0)
        return assemble(Array(indices[lo..<hi]), rng: &unused, augment: false)
    }

    func assemble(_ samples: [Int], rng: inout Xoshiro256, augment: Bool) -> Batch {
        let c = dataset.channels, h = dataset.height, w = dataset.width, n = samples.count
        let pad = augment ? augmentation.cropPadding : 0
        var images = Tensor(shape: [c, n, h, w])
        var labels = [Int](repeating: 0, count: n)
        dataset.pixels.withUnsafeBufferPointer { px in
            images.storage.withUnsafeMutableBufferPointer { out in
                for (slot, sample) in samples.enumerated() {
                    labels[slot] = Int(dataset.labels[sample])
                    let dy = pad > 0 ? rng.index(below: 2 * pad + 1) - pad : 0
                    let dx = pad > 0 ? rng.index(below: 2 * pad + 1) - pad : 0
                    let flip = augment && augmentation.horizontalFlip && rng.index(below: 2) == 1
                    let src = px.baseAddress! + sample * dataset.sampleSize
                    for ch in 0..<c {
                        let lut = lookup[ch]
                        let plane = src + ch * h * w
                        let dst = out.baseAddress! + (ch * n + slot) * h * w
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sx = (flip ? w - 1 - x : x) + dx
                                let v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : 0
                                dst[y * w + x] = lut[Int(v)]
                            }
                        }
                    }
                }
            }
        }
        return Batch(images: images, labels: labels)
    }
}

extension ImageDataset {
    /// Splits `0..<count` into (train, validation) index lists: a seeded shuffle, the
    /// last `validationSize` indices held out; both lists are returned sorted.
    public func validationSplit(size: Int, seed: UInt64) -> (train: [Int], validation: [Int]) {
        precondition(size >= 0 && size < count, "validation size \(size) must be in 0..<\(count)")
        var order = Array(0..<count)
        var rng = Xoshiro256(seed: seed)
        rng.shuffle(&order)
        return (Array(order[..<(count - size)]).sorted(), Array(order[(count - size)...]).sorted())
    }
}
