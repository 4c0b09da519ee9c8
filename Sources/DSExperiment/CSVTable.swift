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

    /// Continues an existing file, keeping the rows `keep` accepts (a missing file
    /// starts empty).
    public init(resuming path: String, columns: [String], keep: ([String: String]) -> Bool) throws {
        self.init(path: path, columns: columns)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let lines = text.split(separator: "\n").map(String.init)
        guard let headerLine = lines.first else { return }
        let header = headerLine.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard header == columns else {
            throw RunError("\(path): columns differ from this version's (\(header.joined(separator: ",")))")
        }
        for line in lines.dropFirst() {
            let values = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard values.count == columns.count else { continue }
            if keep(Dictionary(uniqueKeysWithValues: zip(columns, values))) { rows.append(values) }
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
