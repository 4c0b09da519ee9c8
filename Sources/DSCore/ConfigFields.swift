import Foundation

/// Collects every configuration problem, so one run reports them all at once.
/// (Config sections of every module decode with `Fields`, so the strategy options in
/// the sparsity module report problems the same way as the experiment's sections.)
public final class IssueSink {
    public var issues: [String] = []
    public init() {}
    public func add(_ path: [CodingKey], _ message: String) {
        issues.append("\(ConfigPath.string(path)): \(message)")
    }
}

public enum ConfigPath {
    public static func string(_ path: [CodingKey]) -> String {
        let parts = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return parts.isEmpty ? "(top level)" : parts.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }
}

extension CodingUserInfoKey {
    public static let configIssues = CodingUserInfoKey(rawValue: "dst.configIssues")!
}

/// Reads a config section's keys with defaults; a value of the wrong type is
/// recorded as an issue (with its key path) and replaced by the default, so decoding
/// continues and every problem is reported together.
public struct Fields<Key: CodingKey> {
    public let container: KeyedDecodingContainer<Key>?
    public let sink: IssueSink

    public init(_ decoder: Decoder, _ keys: Key.Type) {
        sink = decoder.userInfo[.configIssues] as? IssueSink ?? IssueSink()
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            sink.add(decoder.codingPath, "expected a mapping of keys")
            container = nil
        }
    }

    public func callAsFunction<T: Decodable>(_ key: Key, _ fallback: T) -> T {
        guard let container else { return fallback }
        do {
            let value = try container.decodeIfPresent(T.self, forKey: key) ?? fallback
            let numbers = (value as? Double).map { [$0] } ?? (value as? [Double]) ?? []
            if let bad = numbers.first(where: { !$0.isFinite }) {
                sink.add(container.codingPath + [key], "must be a finite number, got \(bad)")
                return fallback
            }
            return value
        } catch let DecodingError.typeMismatch(_, context) {
            sink.add(context.codingPath.isEmpty ? container.codingPath + [key] : context.codingPath,
                     "expected \(Fields.describe(T.self))")
        } catch let DecodingError.dataCorrupted(context) {
            sink.add(context.codingPath.isEmpty ? container.codingPath + [key] : context.codingPath,
                     "expected \(Fields.describe(T.self)) (\(context.debugDescription))")
        } catch {
            sink.add(container.codingPath + [key], "\(error)")
        }
        return fallback
    }

    public static func describe(_ type: Any.Type) -> String {
        let names: [(Any.Type, String)] = [
            (Int.self, "an integer"), (UInt64.self, "a non-negative integer"), (Double.self, "a number"),
            (Bool.self, "true or false"), (String.self, "a string"), ([Int].self, "a list of integers"),
            ([Double].self, "a list of numbers"), ([String].self, "a list of strings"),
        ]
        return names.first { $0.0 == type }?.1 ?? "a mapping of keys"
    }
}
