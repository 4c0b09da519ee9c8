import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fetches a dataset from its canonical URL (or a mirror), verifies each file's MD5
/// and writes it atomically into `<root>/<name>/`.
public struct Downloader {
    public var root: String
    /// Replaces the dataset's canonical base URL (a mirror, or a test server).
    public var baseURL: String?
    public var log: (String) -> Void

    public init(root: String, baseURL: String? = nil, log: @escaping (String) -> Void = { _ in }) {
        self.root = root; self.baseURL = baseURL; self.log = log
    }

    /// Downloads and verifies every file of `name`; returns the dataset directory.
    @discardableResult
    public func fetch(_ name: String) throws -> String {
        try fetch(DatasetCatalog.info(name))
    }

    /// Downloads and verifies the files `info` lists; returns the dataset directory.
    @discardableResult
    public func fetch(_ info: DatasetInfo) throws -> String {
        let name = info.name
        let dir = (root as NSString).appendingPathComponent(name)
        try FileSystem.createDirectory(dir)
        var base = baseURL ?? info.baseURL
        if !base.hasSuffix("/") { base += "/" }
        for file in info.remoteFiles {
            let url = base + file.name
            log("fetching \(url)")
            let bytes = try Downloader.get(url)
            let digest = MD5.hex(bytes)
            guard digest == file.md5 else {
                throw DataError("\(url): checksum mismatch (MD5 \(digest), expected \(file.md5)); nothing was written")
            }
            if name == "cifar10" {
                try extractCIFAR(bytes, from: url, into: dir)
            } else {
                try FileReading.writeAtomically(Data(bytes), to: dir + "/" + file.name)
            }
        }
        log("\(name) ready in \(dir)")
        return dir
    }

    /// Writes the CIFAR-10 batch files out of the verified `.tar.gz` archive.
    func extractCIFAR(_ archive: [UInt8], from url: String, into dir: String) throws {
        let tar = try FileReading.gunzip(archive, name: url)
        let wanted = Set(DatasetCatalog.cifarTrain + DatasetCatalog.cifarTest)
        var written = Set<String>()
        for entry in try Tar.entries(tar, name: url) {
            let base = (entry.path as NSString).lastPathComponent
            guard wanted.contains(base) else { continue }
            try FileReading.writeAtomically(Data(entry.data), to: dir + "/" + base)
            written.insert(base)
        }
        let missing = wanted.subtracting(written).sorted()
        guard missing.isEmpty else {
            throw DataError("\(url): archive lacks \(missing.joined(separator: ", "))")
        }
    }

    /// The body of a successful HTTP GET, or an error naming the URL.
    static func get(_ urlString: String) throws -> [UInt8] {
        guard let url = URL(string: urlString) else { throw DataError("\(urlString): not a valid URL") }
        final class Box: @unchecked Sendable { var data: Data?; var response: URLResponse?; var error: Error? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let task = URLSession.shared.dataTask(with: url) { data, response, error in
            box.data = data; box.response = response; box.error = error
            done.signal()
        }
        task.resume()
        done.wait()
        if let error = box.error {
            throw DataError("\(urlString): download failed: \(error.localizedDescription)")
        }
        if let http = box.response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            throw DataError("\(urlString): HTTP status \(http.statusCode)")
        }
        guard let data = box.data else { throw DataError("\(urlString): empty response") }
        return [UInt8](data)
    }
}
