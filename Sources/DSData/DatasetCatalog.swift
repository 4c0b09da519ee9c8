import Foundation

/// One downloadable file of a dataset and the MD5 its authors publish.
public struct RemoteFile: Sendable {
    public var name: String
    public var md5: String
    public init(name: String, md5: String) { self.name = name; self.md5 = md5 }
}

/// What the library knows of a dataset: where its files live, where they come from,
/// and its normalisation constants.
public struct DatasetInfo: Sendable {
    public var name: String
    public var classes: Int
    /// Canonical download location (a directory URL ending in `/`).
    public var baseURL: String
    public var remoteFiles: [RemoteFile]
    /// Directories searched besides `<root>/<name>/`.
    public var systemDirectories: [String]
    /// Per-channel mean and std of the training pixels scaled to `[0, 1]`.
    public var mean: [Float]
    public var std: [Float]
    /// Horizontal flips make sense (not for digits or other orientation-bound data).
    public var flipsAreNatural: Bool
}

/// A dataset's split sizes and image shape, as its file headers give them.
public struct DatasetShape: Equatable, Sendable {
    public var trainCount: Int
    public var testCount: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classes: Int
    public init(trainCount: Int, testCount: Int, channels: Int, height: Int, width: Int, classes: Int) {
        self.trainCount = trainCount; self.testCount = testCount
        self.channels = channels; self.height = height; self.width = width; self.classes = classes
    }
}

/// The datasets the library can read and fetch.
public enum DatasetCatalog {
    static let idxFiles = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

    public static let datasets: [String: DatasetInfo] = [
        "mnist": DatasetInfo(
            name: "mnist", classes: 10,
            baseURL: "https://ossci-datasets.s3.amazonaws.com/mnist/",
            remoteFiles: zip(idxFiles, ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"])
                .map { RemoteFile(name: $0.0 + ".gz", md5: $0.1) },
            systemDirectories: ["/usr/share/datasets/mnist"],
            mean: [0.1307], std: [0.3081], flipsAreNatural: false),
        "fashion-mnist": DatasetInfo(
            name: "fashion-mnist", classes: 10,
            baseURL: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            remoteFiles: zip(idxFiles, ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"])
                .map { RemoteFile(name: $0.0 + ".gz", md5: $0.1) },
            systemDirectories: ["/usr/share/datasets/fashion-mnist"],
            mean: [0.2860], std: [0.3530], flipsAreNatural: true),
        "cifar10": DatasetInfo(
            name: "cifar10", classes: 10,
            baseURL: "https://www.cs.toronto.edu/~kriz/",
            remoteFiles: [RemoteFile(name: "cifar-10-binary.tar.gz", md5: "c32a1d4ab5d03f1284b67883e8d87530")],
            systemDirectories: [],
            mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616], flipsAreNatural: true),
    ]

    public static var names: [String] { datasets.keys.sorted() }

    public static func info(_ name: String) throws -> DatasetInfo {
        guard let info = datasets[name] else {
            throw DataError("unknown dataset '\(name)'; valid datasets: \(names.joined(separator: ", "))")
        }
        return info
    }

    static let cifarTrain = (1...5).map { "data_batch_\($0).bin" }
    static let cifarTest = ["test_batch.bin"]

    /// Finds the directory holding the dataset's files, or explains how to get them.
    /// A `<root>/<name>/` folder holding only some of the files is an error naming the
    /// missing ones (never a silent fall-back to a system copy).
    public static func locate(_ name: String, root: String) throws -> String {
        let info = try info(name)
        let local = (root as NSString).appendingPathComponent(name)
        let candidates = [local] + info.systemDirectories
        let missingLocal = missingFiles(info, in: local)
        if missingLocal.isEmpty { return local }
        if FileManager.default.fileExists(atPath: local) && missingLocal.count < expectedFiles(info).count {
            throw DataError("\(local) lacks \(missingLocal.joined(separator: ", ")) of dataset '\(name)'; "
                            + "complete the folder (`dst data get \(name) --root \(root)`) or remove it")
        }
        for dir in info.systemDirectories where missingFiles(info, in: dir).isEmpty { return dir }
        var hint = "run `dst data get \(name) --root \(root)`"
        if name == "fashion-mnist" { hint += ", or install Debian's dataset-fashion-mnist package (make deps)" }
        throw DataError("dataset '\(name)' not found in \(candidates.joined(separator: " or ")); \(hint)")
    }

    static func expectedFiles(_ info: DatasetInfo) -> [String] {
        info.name == "cifar10" ? cifarTrain + cifarTest : idxFiles
    }

    /// The dataset files (IDX ones raw or `.gz`) that `dir` lacks.
    static func missingFiles(_ info: DatasetInfo, in dir: String) -> [String] {
        let fm = FileManager.default
        if info.name == "cifar10" {
            return expectedFiles(info).filter { !fm.fileExists(atPath: dir + "/" + $0) }
        }
        return idxFiles.filter { !fm.fileExists(atPath: dir + "/" + $0) && !fm.fileExists(atPath: dir + "/" + $0 + ".gz") }
    }

    static func idxPath(_ dir: String, _ base: String) -> String {
        FileManager.default.fileExists(atPath: dir + "/" + base) ? dir + "/" + base : dir + "/" + base + ".gz"
    }

    /// Train and test images of an IDX dataset in `dir` must be of one size.
    static func checkImageSizes(_ dir: String, train: (Int, Int), test: (Int, Int)) throws {
        guard train == test else {
            throw DataError("\(idxPath(dir, idxFiles[2])) holds \(test.0)x\(test.1) images but "
                            + "\(idxPath(dir, idxFiles[0])) holds \(train.0)x\(train.1) ones")
        }
    }

    /// The sizes of a dataset's splits read from its file headers (IDX) or file sizes
    /// (CIFAR-10), without loading the data; the checks that need no pixels (sample
    /// counts, image and label counts agreeing, train and test images of one size)
    /// fail here with the file's name.
    public static func describe(_ name: String, root: String) throws -> DatasetShape {
        let info = try info(name)
        let dir = try locate(name, root: root)
        if name == "cifar10" {
            func count(_ files: [String]) throws -> Int {
                try files.reduce(0) { total, file in
                    let path = dir + "/" + file
                    guard let size = FileSystem.size(path), size > 0, size % CIFAR10Binary.recordSize == 0 else {
                        throw DataError("\(path): \(FileSystem.size(path) ?? 0) bytes is not a whole, non-zero number of "
                                        + "\(CIFAR10Binary.recordSize)-byte CIFAR-10 records")
                    }
                    return total + size / CIFAR10Binary.recordSize
                }
            }
            return DatasetShape(trainCount: try count(cifarTrain), testCount: try count(cifarTest),
                                channels: 3, height: 32, width: 32, classes: info.classes)
        }
        func split(_ images: String, _ labels: String) throws -> (count: Int, height: Int, width: Int) {
            let imagePath = idxPath(dir, images), labelPath = idxPath(dir, labels)
            let img = try IDX.header(FileReading.head(of: imagePath, count: 16), expectedRank: 3, name: imagePath)
            let lab = try IDX.header(FileReading.head(of: labelPath, count: 8), expectedRank: 1, name: labelPath)
            guard img.shape[0] == lab.shape[0] else {
                throw DataError("\(imagePath) has \(img.shape[0]) images but \(labelPath) has \(lab.shape[0]) labels")
            }
            return (img.shape[0], img.shape[1], img.shape[2])
        }
        let train = try split(idxFiles[0], idxFiles[1]), test = try split(idxFiles[2], idxFiles[3])
        try checkImageSizes(dir, train: (train.height, train.width), test: (test.height, test.width))
        return DatasetShape(trainCount: train.count, testCount: test.count, channels: 1,
                            height: train.height, width: train.width, classes: info.classes)
    }

    /// Loads the train and test splits of a dataset found under `root`.
    public static func load(_ name: String, root: String) throws -> DatasetSplits {
        let info = try info(name)
        let dir = try locate(name, root: root)
        let train: ImageDataset, test: ImageDataset
        if name == "cifar10" {
            train = try CIFAR10Binary.load(files: cifarTrain.map { dir + "/" + $0 })
            test = try CIFAR10Binary.load(files: cifarTest.map { dir + "/" + $0 })
        } else {
            train = try IDX.load(images: idxPath(dir, idxFiles[0]), labels: idxPath(dir, idxFiles[1]), classes: info.classes)
            test = try IDX.load(images: idxPath(dir, idxFiles[2]), labels: idxPath(dir, idxFiles[3]), classes: info.classes)
            try checkImageSizes(dir, train: (train.height, train.width), test: (test.height, test.width))
        }
        return DatasetSplits(name: name, train: train, test: test, classes: info.classes,
                             mean: info.mean, std: info.std)
    }
}
