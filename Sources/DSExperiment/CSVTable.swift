import DSData
import Foundation

/// A CSV file that is rewritten whole, atomically (temp file + rename), each time a
/// row is added: a reader never sees a half-written row, and a crash loses nothing
/// already written.
public struct CSVTable {
    public let path: String
    public let columns: [String]
    public private(set) var rows: [[String]] = []

    public init(path: String, columns: [String]) {
        self.path = path; self.columns = columns
    }

    /// The header and rows (keyed by column) of a CSV file as this library writes it
    /// (no quoting); nil when the file cannot be read. A row with the wrong number of
    /// cells (a line cut short) is skipped.
    public static func read(_ path: String) -> (header: [String], rows: [[String: String]])? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").map(String.init)
        guard let first = lines.first else { return ([], []) }
        let header = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().compactMap { line -> [String: String]? in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return cells.count == header.count ? Dictionary(zip(header, cells), uniquingKeysWith: { a, _ in a }) : nil
        }
        return (header, rows)
    }

    /// Continues an existing file, keeping the rows `keep` accepts, which must number
    /// `expectedRows` (the rows a checkpoint says were written): a table deleted or cut
    /// short since is an error, never silently restarted with the later rows only.
    public init(resuming path: String, columns: [String], expectedRows: Int,
                keep: ([String: String]) -> Bool) throws {
        self.init(path: path, columns: columns)
        let existing = CSVTable.read(path) ?? ([], [])
        if !existing.header.isEmpty && existing.header != columns {
            throw RunError("\(path): columns differ from this version's (\(existing.header.joined(separator: ",")))")
        }
        rows = existing.rows.filter(keep).map { row in columns.map { row[$0] ?? "" } }
        guard rows.count == expectedRows else {
            let state = FileManager.default.fileExists(atPath: path) ? "holds \(rows.count)" : "is missing"
            throw RunError("\(path) \(state), but the last checkpoint follows \(expectedRows) row(s) of it "
                           + "(the file was deleted or truncated since); restore the file, or start the run again with --force")
        }
        try write()
    }

    /// Appends a row (values keyed by column; missing columns are left empty) and
    /// rewrites the file.
    public mutating func append(_ values: [String: String]) throws {
        let unknown = Set(values.keys).subtracting(columns)
        precondition(unknown.isEmpty, "CSV \(path): values for unknown columns \(unknown.sorted())")
        rows.append(columns.map { values[$0] ?? "" })
        try write()
    }

    public func write() throws {
        let text = ([columns] + rows).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try FileReading.writeAtomically(Data(text.utf8), to: path)
    }
}
