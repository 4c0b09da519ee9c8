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
    public static func locate(_ name: String, root: String) throws -> String {
        let info = try info(name)
        let candidates = [(root as NSString).appendingPathComponent(name)] + info.systemDirectories
        for dir in candidates where hasFiles(info, in: dir) { return dir }
        var hint = "run `dst data get \(name) --root \(root)`"
        if name == "fashion-mnist" { hint += ", or install Debian's dataset-fashion-mnist package (make deps)" }
        throw DataError("dataset '\(name)' not found in \(candidates.joined(separator: " or ")); \(hint)")
    }

    static func hasFiles(_ info: DatasetInfo, in dir: String) -> Bool {
        let fm = FileManager.default
        if info.name == "cifar10" {
            return (cifarTrain + cifarTest).allSatisfy { fm.fileExists(atPath: dir + "/" + $0) }
        }
        return idxFiles.allSatisfy { fm.fileExists(atPath: dir + "/" + $0) || fm.fileExists(atPath: dir + "/" + $0 + ".gz") }
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
            func path(_ base: String) -> String {
                FileManager.default.fileExists(atPath: dir + "/" + base) ? dir + "/" + base : dir + "/" + base + ".gz"
            }
            train = try IDX.load(images: path(idxFiles[0]), labels: path(idxFiles[1]), classes: info.classes)
            test = try IDX.load(images: path(idxFiles[2]), labels: path(idxFiles[3]), classes: info.classes)
        }
        return DatasetSplits(name: name, train: train, test: test, classes: info.classes,
                             mean: info.mean, std: info.std)
    }
}
