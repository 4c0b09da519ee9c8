import DSData
import DSTestSupport
import Foundation
import Testing

@Suite struct FormatTests {
    @Test func md5MatchesRFC1321TestSuite() {
        #expect(MD5.hex([UInt8]()) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("message digest".utf8)) == "f96b697d7cb7938d525a2f31aaf161d0")
        let digits = String(repeating: "1234567890", count: 8)
        #expect(MD5.hex(Array(digits.utf8)) == "57edf4a22be3c955ac49da2e2107b67a")
        var incremental = MD5()
        for chunk in stride(from: 0, to: 80, by: 7) {
            incremental.update(Array(digits.utf8)[chunk..<min(chunk + 7, 80)])
        }
        #expect(incremental.finalizeHex() == "57edf4a22be3c955ac49da2e2107b67a")
    }

    @Test func gzipRoundTripsAndDetectsDamage() throws {
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let z = FileReading.gzip(data)
        #expect(try FileReading.gunzip(z, name: "x.gz") == data)
        #expect(throws: DataError.self) { try FileReading.gunzip(Array(z.prefix(z.count / 2)), name: "x.gz") }
        var corrupt = z
        for i in 20..<40 { corrupt[i] ^= 0xff }
        do {
            _ = try FileReading.gunzip(corrupt, name: "bad.gz")
            Issue.record("corrupt gzip accepted")
        } catch let error as DataError {
            #expect(error.message.contains("bad.gz"))
        }
    }

    @Test func idxParsesAndReportsTruncation() throws {
        let file = Fixtures.idx(shape: [2, 2, 3], values: Array(0..<12))
        let parsed = try IDX.parse(file, expectedRank: 3, name: "f")
        #expect(parsed.shape == [2, 2, 3])
        #expect(parsed.values == Array(0..<12))
        do {
            _ = try IDX.parse(Array(file.dropLast(3)), expectedRank: 3, name: "images.idx")
            Issue.record("truncated IDX accepted")
        } catch let e as DataError {
            #expect(e.message.contains("images.idx") && e.message.contains("truncated"))
        }
        #expect(throws: DataError.self) { try IDX.parse([1, 2, 8, 3] + file.dropFirst(4), expectedRank: 3, name: "f") }
        #expect(throws: DataError.self) { try IDX.parse(file, expectedRank: 1, name: "f") }
    }

    @Test func idxFilesLoadRawOrGzipped() throws {
        let root = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory(), train: 10, test: 4, size: 8)
        let splits = try DatasetCatalog.load("fashion-mnist", root: root)
        #expect(splits.train.count == 10 && splits.test.count == 4)
        #expect(splits.train.height == 8 && splits.train.channels == 1)
        // A raw (uncompressed) copy is preferred when present and reads the same.
        let dir = root + "/fashion-mnist"
        let raw = try FileReading.contents(of: dir + "/t10k-images-idx3-ubyte.gz")
        _ = FileManager.default.createFile(atPath: dir + "/t10k-images-idx3-ubyte", contents: Data(raw))
        #expect(try DatasetCatalog.load("fashion-mnist", root: root).test.pixels == splits.test.pixels)
    }

    @Test func missingDatasetSaysHowToGetIt() {
        do {
            _ = try DatasetCatalog.load("mnist", root: "/nonexistent-root")
            Issue.record("missing dataset accepted")
        } catch let e as DataError {
            #expect(e.message.contains("dst data get mnist"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: DataError.self) { try DatasetCatalog.info("imagenet") }
    }

    @Test func cifarBatchesParseAndRejectPartialRecords() throws {
        let dir = Fixtures.temporaryDirectory()
        var bytes = [UInt8]()
        for r in 0..<3 { bytes += [UInt8(r)] + [UInt8](repeating: UInt8(r * 10), count: 3072) }
        _ = FileManager.default.createFile(atPath: dir + "/b.bin", contents: Data(bytes))
        let ds = try CIFAR10Binary.load(files: [dir + "/b.bin"])
        #expect(ds.count == 3 && ds.labels == [0, 1, 2] && ds.pixels[3072] == 10)
        _ = FileManager.default.createFile(atPath: dir + "/short.bin", contents: Data(bytes.dropLast(5)))
        #expect(throws: DataError.self) { try CIFAR10Binary.load(files: [dir + "/short.bin"]) }
    }

    @Test func tarRoundTrips() throws {
        let files: [(path: String, data: [UInt8])] = [("a/x.bin", [1, 2, 3]), ("a/y.bin", Array(repeating: 7, count: 600))]
        let entries = try Tar.entries(Tar.archive(files), name: "t.tar")
        #expect(entries.map(\.path) == ["a/x.bin", "a/y.bin"])
        #expect(Array(entries[1].data) == files[1].data)
    }
}
