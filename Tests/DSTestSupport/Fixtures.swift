import DSData
import Foundation

/// Temporary folders and small generated datasets for tests.
public enum Fixtures {
    /// This test process's own folder under the system temp directory, removed with
    /// everything in it when the process exits: the tests' temporary folders and files
    /// all go inside, so repeated test runs leave nothing behind.
    public static let root: String = {
        let path = NSTemporaryDirectory() + "dst-tests-\(getpid())-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Fixtures.root) }
        return path
    }()

    /// A new path inside `root` (nothing made there yet).
    public static func temporaryPath(_ label: String) -> String {
        root + "/\(label)-\(UUID().uuidString)"
    }

    /// A new empty folder inside `root`.
    public static func temporaryDirectory(_ label: String = "dst") -> String {
        let path = temporaryPath(label)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// IDX bytes for unsigned-byte data of `shape`.
    public static func idx(shape: [Int], values: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
        for d in shape {
            out += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)]
        }
        return out + values
    }

    /// A learnable toy image task: class `c` images are bright in horizontal band `c`.
    public static func bandImages(count: Int, classes: Int = 4, size: Int = 8, seed: UInt64)
        -> (pixels: [UInt8], labels: [UInt8]) {
        var state = seed &+ 1
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        var pixels = [UInt8](), labels = [UInt8]()
        for _ in 0..<count {
            let c = Int(next() % UInt64(classes))
            labels.append(UInt8(c))
            for y in 0..<size {
                for _ in 0..<size {
                    let inBand = y * classes / size == c
                    pixels.append(UInt8((inBand ? 160 : 40) + Int(next() % 60)))
                }
            }
        }
        return (pixels, labels)
    }

    /// Writes a small Fashion-MNIST-shaped dataset (`.gz` IDX files) into
    /// `<root>/fashion-mnist/` and returns `root`.
    @discardableResult
    public static func writeIDXDataset(root: String, name: String = "fashion-mnist", train: Int = 64,
                                       test: Int = 32, size: Int = 8, seed: UInt64 = 1) -> String {
        let dir = root + "/" + name
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (prefix, count, s) in [("train", train, seed), ("t10k", test, seed + 100)] {
            let data = bandImages(count: count, size: size, seed: s)
            let images = idx(shape: [count, size, size], values: data.pixels)
            let labels = idx(shape: [count], values: data.labels)
            _ = FileManager.default.createFile(atPath: "\(dir)/\(prefix)-images-idx3-ubyte.gz",
                                           contents: Data(FileReading.gzip(images)))
            _ = FileManager.default.createFile(atPath: "\(dir)/\(prefix)-labels-idx1-ubyte.gz",
                                           contents: Data(FileReading.gzip(labels)))
        }
        return root
    }
}
