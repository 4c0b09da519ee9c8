import Foundation

/// The `dst` executable built beside the test bundle, run as a child process.
public enum DSTProcess {
    public static var path: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dst").path
    }

    public static var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// Starts `dst arguments` with its standard error (and output, in `<path>.out`)
    /// collected into a temporary file;
    /// with `user`, as that user (through `runuser`, which needs root).
    public static func start(_ arguments: [String], as user: String? = nil,
                             environment: [String: String] = [:]) throws -> (process: Process, stderr: String) {
        let p = Process()
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let user {
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            p.arguments = ["-u", user, "--", path] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = arguments
        }
        let errPath = Fixtures.temporaryPath("dst-stderr")
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath + ".out", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: errPath + ".out")
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        return (p, errPath)
    }

    /// Runs `dst arguments` to the end: exit status, whether a signal ended it, and
    /// what it printed on standard error.
    @discardableResult
    public static func run(_ arguments: [String], as user: String? = nil, environment: [String: String] = [:])
        throws -> (status: Int32, signalled: Bool, stderr: String, stdout: String) {
        let (p, errPath) = try start(arguments, as: user, environment: environment)
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        let output = (try? String(contentsOfFile: errPath + ".out", encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: errPath)
        try? FileManager.default.removeItem(atPath: errPath + ".out")
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal, text, output)
    }
}
