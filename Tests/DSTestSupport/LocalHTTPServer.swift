import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A static file server on 127.0.0.1 (Python's `http.server`), for testing downloads
/// without the internet. Stopped by `stop()`.
public final class LocalHTTPServer {
    public let directory: String
    public let port: Int
    private let process: Process

    /// Serves `directory` on a free port; waits until it answers.
    public init(directory: String) throws {
        self.directory = directory
        var lastError: Error?
        for _ in 0..<10 {
            let port = Int.random(in: 20_000..<60_000)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { lastError = error; continue }
            if LocalHTTPServer.waitUntilReady(port: port, process: p) {
                self.port = port
                self.process = p
                return
            }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        throw lastError ?? NSError(domain: "LocalHTTPServer", code: 1,
                                   userInfo: [NSLocalizedDescriptionKey: "could not start python3 -m http.server"])
    }

    public var baseURL: String { "http://127.0.0.1:\(port)/" }

    /// Ends the server (SIGKILL: a child of Foundation's `Process` may inherit a
    /// signal mask that blocks SIGTERM).
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    static func waitUntilReady(port: Int, process: Process) -> Bool {
        for _ in 0..<100 {
            guard process.isRunning else { return false }
            let done = DispatchSemaphore(value: 0)
            final class Flag: @unchecked Sendable { var ok = false }
            let flag = Flag()
            let task = URLSession.shared.dataTask(with: URL(string: "http://127.0.0.1:\(port)/")!) { _, response, _ in
                flag.ok = (response as? HTTPURLResponse) != nil
                done.signal()
            }
            task.resume()
            done.wait()
            if flag.ok { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }
}
