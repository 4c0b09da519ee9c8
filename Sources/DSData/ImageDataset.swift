/// Images and labels held in memory as bytes.
public struct ImageDataset: Sendable {
    /// `[count, channels, height, width]` pixel bytes, sample-major.
    public var pixels: [UInt8]
    public var labels: [UInt8]
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(pixels: [UInt8], labels: [UInt8], channels: Int, height: Int, width: Int) {
        precondition(pixels.count == labels.count * channels * height * width,
                     "ImageDataset: \(pixels.count) pixels for \(labels.count) images of \(channels)x\(height)x\(width)")
        self.pixels = pixels; self.labels = labels
        self.channels = channels; self.height = height; self.width = width
    }

    public var count: Int { labels.count }
    public var sampleSize: Int { channels * height * width }
}

/// A dataset's train and test splits and what a model needs to know of it.
public struct DatasetSplits: Sendable {
    public var name: String
    public var train: ImageDataset
    public var test: ImageDataset
    public var classes: Int
    /// Per-channel mean and standard deviation of the training pixels in `[0, 1]`.
    public var mean: [Float]
    public var std: [Float]
}
