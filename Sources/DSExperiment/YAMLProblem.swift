import Foundation
import Yams

/// Short messages for YAML syntax errors: the line and column, the problem, and at
/// most three lines of the file around it (Yams's own descriptions can carry the
/// whole file).
enum YAMLProblem {
    static let contextLines = 1
    static let maximumLineLength = 120

    static func describe(_ error: Error, text: String) -> String {
        guard let yaml = error as? YamlError else { return "YAML syntax error: \(String(describing: error).prefix(300))" }
        switch yaml {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let during = context.map { " (\($0.text))" } ?? ""
            return "line \(mark.line), column \(mark.column): YAML syntax error: \(problem)\(during)\n"
                + snippet(text, line: mark.line)
        case let .duplicatedKeysInMapping(duplicates, context):
            return duplicates.map { key in
                let lines = keyLines(key, in: text, from: context.mark.line)
                let at = lines.count >= 2 ? "lines \(lines[0]) and \(lines[1])"
                    : "line \(lines.first ?? context.mark.line)"
                return "duplicate key '\(key)' at \(at) (each key may appear once in its mapping)\n"
                    + snippet(text, line: lines.count >= 2 ? lines[1] : context.mark.line)
            }.joined(separator: "\n")
        case let .reader(problem, offset, _, _):
            return "YAML reader error: \(problem)" + (offset.map { " at byte \($0)" } ?? "")
        default:
            return "YAML error: \(String(describing: yaml).prefix(300))"
        }
    }

    /// The first two lines (numbered from 1, from `first` on) where `key` is written as
    /// a mapping key: in block style at the first occurrence's column, or anywhere on a
    /// line with a flow mapping (`{a: 1, a: 2}` gives the same line twice).
    static func keyLines(_ key: String, in text: String, from first: Int) -> [Int] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard first >= 1, first <= lines.count else { return [] }
        var found: [Int] = [], column: Int?
        for n in first...lines.count {
            let line = lines[n - 1]
            for c in keyColumns(key, line) where column == nil || c == column || line.contains("{") {
                column = column ?? c
                found.append(n)
                if found.count == 2 { return found }
            }
        }
        return found
    }

    /// Columns where `key` (plain or quoted) starts a `key:` on `line`.
    static func keyColumns(_ key: String, _ line: Substring) -> [Int] {
        var columns: [Int] = []
        for spelling in [key, "\"\(key)\"", "'\(key)'"] {
            var search = line.startIndex
            while let range = line.range(of: spelling, range: search..<line.endIndex) {
                let before = range.lowerBound == line.startIndex ? " " : line[line.index(before: range.lowerBound)]
                if " \t{,-".contains(before) && line[range.upperBound...].drop(while: { $0 == " " }).first == ":" {
                    columns.append(line.distance(from: line.startIndex, to: range.lowerBound))
                }
                search = range.upperBound
            }
        }
        return columns.sorted()
    }

    /// Lines around `line`, numbered, each cut to a readable length.
    static func snippet(_ text: String, line: Int) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard line >= 1, line <= lines.count else { return "" }
        let range = max(1, line - contextLines)...min(lines.count, line + contextLines)
        return range.map { n in
            let content = lines[n - 1]
            let shown = content.count > maximumLineLength ? content.prefix(maximumLineLength) + " …" : String(content)
            let number = String(n)
            return (n == line ? "> " : "  ") + String(repeating: " ", count: max(0, 5 - number.count)) + number + " | " + shown
        }.joined(separator: "\n")
    }
}
