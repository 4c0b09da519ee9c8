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
