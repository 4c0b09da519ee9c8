import DSData
import DSTestSupport
import Foundation
import Testing

/// The real download code against a local HTTP server serving generated files.
@Suite(.serialized) struct DownloaderTests {
    /// Serves `files` and returns the server and a `DatasetInfo` listing them with
    /// their true MD5s (as the catalog lists the published ones).
    func serve(_ name: String, _ files: [String: [UInt8]]) throws -> (LocalHTTPServer, DatasetInfo) {
        let dir = Fixtures.temporaryDirectory("serve")
        for (file, bytes) in files { _ = FileManager.default.createFile(atPath: dir + "/" + file, contents: Data(bytes)) }
        let server = try LocalHTTPServer(directory: dir)
        var info = try DatasetCatalog.info(name)
        info.remoteFiles = files.keys.sorted().map { RemoteFile(name: $0, md5: MD5.hex(files[$0]!)) }
        return (server, info)
    }

    func idxFiles() -> [String: [UInt8]] {
        let tmp = Fixtures.writeIDXDataset(root: Fixtures.temporaryDirectory(), train: 12, test: 6)
        var files: [String: [UInt8]] = [:]
        for f in try! FileManager.default.contentsOfDirectory(atPath: tmp + "/fashion-mnist") {
            files[f] = [UInt8](FileManager.default.contents(atPath: tmp + "/fashion-mnist/" + f)!)
        }
        return files
    }

    @Test func downloadsVerifiesAndLoadsIDX() throws {
        let (server, info) = try serve("mnist", idxFiles())
        defer { server.stop() }
        let root = Fixtures.temporaryDirectory("data")
        let dir = try Downloader(root: root, baseURL: server.baseURL).fetch(info)
        #expect(dir == root + "/mnist")
        let splits = try DatasetCatalog.load("mnist", root: root)
        #expect(splits.train.count == 12 && splits.test.count == 6)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "no temporary files remain")
    }

    @Test func checksumMismatchWritesNothing() throws {
        var files = idxFiles()
        let (server, info) = try serve("mnist", files)
        defer { server.stop() }
        // Damage a served file after its checksum was recorded.
        files["t10k-labels-idx1-ubyte.gz"]![12] ^= 0xff
        _ = FileManager.default.createFile(atPath: server.directory + "/t10k-labels-idx1-ubyte.gz",
                                       contents: Data(files["t10k-labels-idx1-ubyte.gz"]!))
        let root = Fixtures.temporaryDirectory("data")
        do {
            try Downloader(root: root, baseURL: server.baseURL).fetch(info)
            Issue.record("a damaged file was accepted")
        } catch let e as DataError {
            #expect(e.message.contains("t10k-labels-idx1-ubyte.gz") && e.message.contains("checksum"))
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/mnist/t10k-labels-idx1-ubyte.gz"))
    }

    @Test func catalogChecksumsAreEnforced() throws {
        // Served files are not the published ones, so the catalog's MD5s must reject them.
        let (server, _) = try serve("fashion-mnist", idxFiles())
        defer { server.stop() }
        #expect(throws: DataError.self) {
            try Downloader(root: Fixtures.temporaryDirectory("data"), baseURL: server.baseURL).fetch("fashion-mnist")
        }
    }

    @Test func missingFileIsAnHTTPError() throws {
        let (server, info) = try serve("mnist", ["other.bin": [1, 2, 3]])
        defer { server.stop() }
        var wanted = info
        wanted.remoteFiles = [RemoteFile(name: "train-images-idx3-ubyte.gz", md5: "0")]
        do {
            try Downloader(root: Fixtures.temporaryDirectory("data"), baseURL: server.baseURL).fetch(wanted)
            Issue.record("a 404 was accepted")
        } catch let e as DataError {
            #expect(e.message.contains("404") && e.message.contains("train-images-idx3-ubyte.gz"))
        }
    }

    @Test func cifarArchiveIsExtracted() throws {
        var members: [(path: String, data: [UInt8])] = []
        for (i, name) in ((1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]).enumerated() {
            var bytes = [UInt8]()
            for r in 0..<2 { bytes += [UInt8((i + r) % 10)] + [UInt8](repeating: UInt8(i), count: 3072) }
            members.append(("cifar-10-batches-bin/" + name, bytes))
        }
        members.append(("cifar-10-batches-bin/readme.html", Array("hi".utf8)))
        let archive = FileReading.gzip(Tar.archive(members))
        let (server, info) = try serve("cifar10", ["cifar-10-binary.tar.gz": archive])
        defer { server.stop() }
        let root = Fixtures.temporaryDirectory("data")
        try Downloader(root: root, baseURL: server.baseURL).fetch(info)
        let splits = try DatasetCatalog.load("cifar10", root: root)
        #expect(splits.train.count == 10 && splits.test.count == 2)
        #expect(splits.train.channels == 3 && splits.test.pixels[0] == 5)
    }
}
