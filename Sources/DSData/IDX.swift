/// The IDX format of MNIST and Fashion-MNIST: big-endian header
/// `00 00 08 ndims`, `ndims` UInt32 extents, then unsigned bytes.
public enum IDX {
    /// The shape in an IDX header of unsigned bytes with `expectedRank` dimensions, and
    /// the header's length. `bytes` may hold just the file's start; the data size the
    /// extents imply is computed without overflow and must stay below 2⁴⁸ bytes.
    public static func header(_ bytes: [UInt8], expectedRank: Int, name: String) throws -> (shape: [Int], dataSize: Int, headerSize: Int) {
        guard bytes.count >= 4 else { throw DataError("\(name): too short for an IDX header (\(bytes.count) bytes)") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DataError("\(name): not an IDX file (magic bytes \(bytes[0]) \(bytes[1]), expected 0 0)")
        }
        guard bytes[2] == 0x08 else {
            throw DataError("\(name): IDX element type 0x\(String(bytes[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let rank = Int(bytes[3])
        guard rank == expectedRank else {
            throw DataError("\(name): IDX file has \(rank) dimensions, expected \(expectedRank)")
        }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else { throw DataError("\(name): truncated IDX header") }
        var shape = [Int]()
        for d in 0..<rank {
            let o = 4 + 4 * d
            shape.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        var size = 1
        for extent in shape {
            let (product, overflow) = size.multipliedReportingOverflow(by: extent)
            guard !overflow, product < 1 << 48 else {
                throw DataError("\(name): IDX header dimensions \(shape) describe more data than any file holds (corrupt header)")
            }
            size = product
        }
        guard shape[0] > 0 else { throw DataError("\(name): the file holds no samples (IDX header dimensions \(shape))") }
        guard shape.dropFirst().allSatisfy({ $0 > 0 }) else {
            throw DataError("\(name): IDX header dimensions \(shape) include a zero extent")
        }
        return (shape, size, headerSize)
    }

    /// Parses an IDX file of unsigned bytes with `expectedRank` dimensions.
    public static func parse(_ bytes: [UInt8], expectedRank: Int, name: String) throws -> (shape: [Int], values: [UInt8]) {
        let (shape, expected, headerSize) = try header(bytes, expectedRank: expectedRank, name: name)
        let actual = bytes.count - headerSize
        guard actual == expected else {
            throw DataError("\(name): IDX header says \(shape) = \(expected) bytes of data, file has \(actual)"
                            + (actual < expected ? " (truncated)" : ""))
        }
        return (shape, Array(bytes[headerSize...]))
    }

    /// Reads an image file and its label file into a dataset (raw or `.gz`).
    public static func load(images imagePath: String, labels labelPath: String, classes: Int) throws -> ImageDataset {
        let img = try parse(FileReading.contents(of: imagePath), expectedRank: 3, name: imagePath)
        let lab = try parse(FileReading.contents(of: labelPath), expectedRank: 1, name: labelPath)
        guard img.shape[0] == lab.shape[0] else {
            throw DataError("\(imagePath) has \(img.shape[0]) images but \(labelPath) has \(lab.shape[0]) labels")
        }
        if let bad = lab.values.firstIndex(where: { Int($0) >= classes }) {
            throw DataError("\(labelPath): label \(lab.values[bad]) at index \(bad) is not below \(classes)")
        }
        return ImageDataset(pixels: img.values, labels: lab.values, channels: 1,
                            height: img.shape[1], width: img.shape[2])
    }
}

/// The CIFAR-10 binary format: records of 1 label byte + 3072 pixel bytes
/// (1024 red, 1024 green, 1024 blue, each 32×32 row-major).
public enum CIFAR10Binary {
    public static let recordSize = 1 + 3 * 32 * 32

    /// Parses one or more batch files into a dataset.
    public static func load(files: [String]) throws -> ImageDataset {
        var pixels = [UInt8](), labels = [UInt8]()
        for file in files {
            let bytes = try FileReading.contents(of: file)
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw DataError("\(file): \(bytes.count) bytes is not a whole number of \(recordSize)-byte CIFAR-10 records"
                                + " (truncated or not a CIFAR-10 binary batch)")
            }
            let n = bytes.count / recordSize
            pixels.reserveCapacity(pixels.count + n * (recordSize - 1))
            for r in 0..<n {
                let o = r * recordSize
                guard bytes[o] < 10 else {
                    throw DataError("\(file): record \(r) has label \(bytes[o]); CIFAR-10 labels are 0–9")
                }
                labels.append(bytes[o])
                pixels.append(contentsOf: bytes[(o + 1)..<(o + recordSize)])
            }
        }
        return ImageDataset(pixels: pixels, labels: labels, channels: 3, height: 32, width: 32)
    }
}
