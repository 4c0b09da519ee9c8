import DSData
import Foundation

/// A run folder that another process is using.
public struct RunFolderBusy: Error, CustomStringConvertible {
    public let folder: String
    public let holder: String
    public var description: String {
        "\(folder) is in use by \(holder); wait for it to finish or stop it (a second run, resume or sweep task "
            + "on the same folder is refused)"
    }
}

/// The claim one process holds on a run folder name for as long as it trains.
///
/// The claim is an exclusive `flock` on `<parent>/.<name>.lock`, a file beside the run
/// folder (so it also guards a folder that does not exist yet or is being replaced).
/// The kernel drops the lock when the process exits, however it exits, so a crashed
/// run never leaves a stale claim behind; the file keeps the holder's process id and
/// host for the message a refused process prints. Lock files are left in place:
/// deleting one while another process waits on it would let two processes hold "the"
/// lock at once.
public final class RunFolderClaim {
    public let folder: String
    public let lockPath: String
    private var descriptor: Int32

    /// Claims `folder`, or throws `RunFolderBusy` naming the holder.
    public init(folder: String) throws {
        let url = URL(fileURLWithPath: folder).standardizedFileURL
        let parent = url.deletingLastPathComponent().path
        self.folder = folder
        lockPath = parent + "/." + url.lastPathComponent + ".lock"
        try FileSystem.createDirectory(parent)
        descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if descriptor < 0 && errno == EACCES {
            descriptor = open(lockPath, O_RDONLY | O_CLOEXEC)   // another user's lock file still locks
        }
        guard descriptor >= 0 else {
            throw RunError("\(lockPath): cannot open the run folder's lock file: \(FileSystem.reason(errno))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            guard code == EWOULDBLOCK else {
                throw RunError("\(lockPath): cannot lock the run folder: \(FileSystem.reason(code))")
            }
            throw RunFolderBusy(folder: folder, holder: holder.isEmpty ? "another process" : holder)
        }
        let text = "process \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    deinit { release() }

    /// Gives the claim up (also done when the claim is freed or the process exits).
    public func release() {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        close(descriptor)
        descriptor = -1
    }
}

/// Creating and replacing run folders so that nothing is lost on the way.
enum RunFolderSetup {
    /// Builds a new run folder in a hidden sibling, lets `fill` write its first files,
    /// then moves it into place. With `replacing`, the existing folder is first moved
    /// aside and deleted only once the new one is in place; if anything fails before
    /// that, the old folder is put back untouched.
    static func create(_ folder: String, replacing: Bool, fill: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: folder).standardizedFileURL
        let parent = url.deletingLastPathComponent().path, name = url.lastPathComponent
        let staging = "\(parent)/.\(name).new-\(getpid())"
        let aside = "\(parent)/.\(name).replaced-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try FileSystem.createDirectory(staging)
        do {
            try fill(staging)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        if replacing {
            try FileSystem.rename(folder, to: aside)
        }
        do {
            try FileSystem.rename(staging, to: folder)
        } catch {
            if replacing { try? FileSystem.rename(aside, to: folder) }
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        if replacing { try? FileManager.default.removeItem(atPath: aside) }
    }

    /// Throws unless files can be created in `folder` (a read-only volume or folder is
    /// found before any training, not after an epoch).
    static func checkWritable(_ folder: String) throws {
        let probe = folder + "/.write-test-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RunError("\(folder): cannot write into the run folder: \(FileSystem.reason(errno))")
        }
        close(fd)
        unlink(probe)
    }
}
