import Foundation

/// A file that could not be read, written, created or moved; the message is one line
/// naming the path and the cause (`No space left on device`, `Read-only file system`).
public struct FileSystemError: Error, CustomStringConvertible {
    public let path: String
    public let action: String
    public let reason: String
    public var description: String { "\(path): cannot \(action): \(reason)" }
}

/// File operations through POSIX calls, so every failure carries `errno`'s reason
/// instead of a Foundation error dump.
public enum FileSystem {
    /// `strerror` of a POSIX error code.
    public static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Why `path` cannot be read as a regular file, or nil when it can.
    public static func readProblem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT ? "no such file" : reason(errno)
        }
        if info.st_mode & S_IFMT == S_IFDIR { return "is a directory, not a file" }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return reason(errno) }
        close(fd)
        return nil
    }

    /// The size in bytes of the file at `path`, or nil when it cannot be examined.
    public static func size(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    /// Creates `path` and its missing parents.
    public static func createDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw FileSystemError(path: path, action: "create the folder", reason: "a file of that name exists")
            }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try createDirectory(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw FileSystemError(path: path, action: "create the folder", reason: reason(errno))
        }
    }

    /// Renames `source` to `destination` (one atomic step on one file system).
    public static func rename(_ source: String, to destination: String) throws {
        guard Foundation.rename(source, destination) == 0 else {
            throw FileSystemError(path: destination, action: "move \(source) into place", reason: reason(errno))
        }
    }

    /// Writes `data` to `path` atomically: a temporary file beside it, flushed to
    /// disk, then renamed over `path`. A failure leaves `path` as it was.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystemError(path: path, action: "write", reason: reason(errno)) }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure == 0 && Foundation.rename(tmp, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(tmp)
            throw FileSystemError(path: path, action: "write", reason: reason(failure))
        }
    }
}
