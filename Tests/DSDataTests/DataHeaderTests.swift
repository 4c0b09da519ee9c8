import DSData
import DSTestSupport
import Foundation
import Testing

/// Dataset files with impossible or inconsistent headers are errors naming the file,
/// found from the headers alone, never a trap or a silent fall-back.
@Suite struct DataHeaderTests {
    func writeIDX(_ path: String, shape: [Int], values: [UInt8] = []) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(FileReading.gzip(Fixtures.idx(shape: shape, values: values))))
    }

    func dataError(_ body: () throws -> Void) -> String {
        do {
            try body()
            Issue.record("no error")
            return ""
        } catch let e as DataError {
            return e.message
        } catch {
            Issue.record("unexpected error \(error)")
            return ""
        }
    }

    @Test func hugeDimensionsAreAnErrorNotAnOverflow() {
        // 0xFFFFFFFF³ overflows Int; the product is checked.
        var header: [UInt8] = [0, 0, 8, 3]
        for _ in 0..<3 { header += [0xff, 0xff, 0xff, 0xff] }
        let message = dataError { _ = try IDX.parse(header + [1, 2, 3], expectedRank: 3, name: "big.idx") }
        #expect(message.contains("big.idx") && message.contains("corrupt header"), "\(message)")
        // Large but representable: refused against the file's length.
        let large = Fixtures.idx(shape: [1 << 20, 1 << 10, 1 << 10], values: [])
        #expect(dataError { _ = try IDX.parse(large, expectedRank: 3, name: "large.idx") }.contains("truncated"))
    }

    @Test func zeroSamplesNameTheFile() {
        let message = dataError { _ = try IDX.parse(Fixtures.idx(shape: [0, 28, 28], values: []), expectedRank: 3, name: "empty.idx") }
        #expect(message.contains("empty.idx") && message.contains("no samples"))
    }

    @Test func headersDescribeTheSplitsWithoutLoadingThem() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("describe") + "/data", train: 40, test: 12, size: 8)
        let shape = try DatasetCatalog.describe("fashion-mnist", root: root)
        #expect(shape == DatasetShape(trainCount: 40, testCount: 12, channels: 1, height: 8, width: 8, classes: 10))
    }

    @Test func testImagesOfAnotherSizeAreRefused() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("shape") + "/data", train: 40, test: 12, size: 8)
        let path = root + "/fashion-mnist/t10k-images-idx3-ubyte.gz"
        writeIDX(path, shape: [12, 4, 16], values: [UInt8](repeating: 0, count: 12 * 64))
        for message in [dataError { _ = try DatasetCatalog.describe("fashion-mnist", root: root) },
                        dataError { _ = try DatasetCatalog.load("fashion-mnist", root: root) }] {
            #expect(message.contains(path) && message.contains("4x16") && message.contains("8x8"), "\(message)")
        }
    }

    @Test func aFolderMissingOneFileIsNamedNotReplacedByTheSystemCopy() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("partial") + "/data")
        try FileManager.default.removeItem(atPath: root + "/fashion-mnist/t10k-labels-idx1-ubyte.gz")
        let message = dataError { _ = try DatasetCatalog.locate("fashion-mnist", root: root) }
        #expect(message.contains("lacks t10k-labels-idx1-ubyte") && message.contains(root + "/fashion-mnist"), "\(message)")
    }

    @Test func emptyAndMismatchedFilesNameTheFile() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory("zero") + "/data", train: 16, test: 8)
        let labels = root + "/fashion-mnist/train-labels-idx1-ubyte.gz"
        writeIDX(labels, shape: [0])
        let zero = dataError { _ = try DatasetCatalog.describe("fashion-mnist", root: root) }
        #expect(zero.contains(labels) && zero.contains("no samples"), "\(zero)")
        _ = FileManager.default.createFile(atPath: labels, contents: Data())
        let empty = dataError { _ = try DatasetCatalog.describe("fashion-mnist", root: root) }
        #expect(empty.contains(labels) && empty.contains("too short"), "\(empty)")
    }
}
