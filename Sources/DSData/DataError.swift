/// A problem with a dataset file or download, naming the file and what was wrong.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
