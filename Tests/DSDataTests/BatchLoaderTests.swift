import DSCore
import DSData
import DSTestSupport
import Testing

@Suite struct BatchLoaderTests {
    func dataset() -> ImageDataset {
        let d = Fixtures.bandImages(count: 10, classes: 4, size: 4, seed: 3)
        return ImageDataset(pixels: d.pixels, labels: d.labels, channels: 1, height: 4, width: 4)
    }

    @Test func batchesAreChannelMajorAndNormalised() {
        let ds = dataset()
        let loader = BatchLoader(dataset: ds, batchSize: 4, mean: [0.5], std: [0.25])
        #expect(loader.batchesPerEpoch == 3)
        let b = loader.evaluationBatch(2)
        #expect(b.images.shape == [1, 2, 4, 4])
        #expect(b.labels == [Int(ds.labels[8]), Int(ds.labels[9])])
        let expected = (Float(ds.pixels[9 * 16 + 5]) / 255 - 0.5) / 0.25
        #expect(abs(b.images[0, 1, 1, 1] - expected) < 1e-6)
    }

    @Test func seedReproducesOrderAndAugmentation() {
        let loader = BatchLoader(dataset: dataset(), batchSize: 5, mean: [0], std: [1],
                                 augmentation: Augmentation(cropPadding: 1, horizontalFlip: true))
        var r1 = Xoshiro256(seed: 4), r2 = Xoshiro256(seed: 4)
        let o1 = loader.shuffledOrder(&r1), o2 = loader.shuffledOrder(&r2)
        #expect(o1 == o2 && o1.sorted() == Array(0..<10))
        #expect(loader.batch(0, of: o1, augmentWith: &r1).images == loader.batch(0, of: o2, augmentWith: &r2).images)
    }

    @Test func flipMirrorsAndCropShifts() {
        let ds = ImageDataset(pixels: [0, 255, 0, 0], labels: [0], channels: 1, height: 2, width: 2)
        let flip = BatchLoader(dataset: ds, batchSize: 1, mean: [0], std: [1],
                               augmentation: Augmentation(cropPadding: 0, horizontalFlip: true))
        var rng = Xoshiro256(seed: 0)
        var seen = Set<[Float]>()
        for _ in 0..<20 { seen.insert(flip.batch(0, of: [0], augmentWith: &rng).images.storage) }
        #expect(seen == [[0, 1, 0, 0], [1, 0, 0, 0]])
        let crop = BatchLoader(dataset: ds, batchSize: 1, mean: [0], std: [1],
                               augmentation: Augmentation(cropPadding: 1, horizontalFlip: false))
        var crops = Set<[Float]>()
        for _ in 0..<200 { crops.insert(crop.batch(0, of: [0], augmentWith: &rng).images.storage) }
        // Offsets (dy, dx) ∈ {−1, 0, 1}²: the bright pixel lands in each of the 4 cells
        // (dy ∈ {−1, 0}, dx ∈ {0, 1}) or is cropped away.
        #expect(crops == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    }

    @Test func validationSplitIsSeededDisjointAndComplete() {
        let ds = dataset()
        let a = ds.validationSplit(size: 3, seed: 1), b = ds.validationSplit(size: 3, seed: 1)
        #expect(a.train == b.train && a.validation == b.validation)
        #expect(a.validation.count == 3 && a.train.count == 7)
        #expect(Set(a.train).isDisjoint(with: a.validation))
        #expect((a.train + a.validation).sorted() == Array(0..<10))
    }
}
