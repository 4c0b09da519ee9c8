import Foundation
import Yams

/// Encodes a config into a YAML node tree in one linear pass, keys in the order the
/// types encode them, numbers written plainly (`0.9`, `1e-08`).
///
/// (Yams's own encoder copies a sequence's node on every element it appends, so a
/// list of n numbers took O(n²) time: 20,000 entries about 12 s.)
enum ConfigRendering {
    static func node<T: Encodable>(_ value: T) throws -> Node {
        let root = NodeBuilder()
        try root.encode(value)
        return root.node()
    }
}

/// One node under construction; containers hold children by reference, so adding an
/// element never copies its siblings.
final class NodeBuilder {
    var scalar: Node?
    var pairs: [(String, NodeBuilder)]?
    var items: [NodeBuilder]?

    func node() -> Node {
        if let pairs { return Node(pairs.map { (Node($0.0), $0.1.node()) }) }
        if let items { return Node(items.map { $0.node() }) }
        return scalar ?? Node("null", Tag(.null))
    }

    func encode<T: Encodable>(_ value: T) throws {
        switch value {
        case let v as Double:
            scalar = Node(v.isFinite ? String(describing: v) : v.isNaN ? ".nan" : v > 0 ? ".inf" : "-.inf", Tag(.float))
        case let v as Float:
            try encode(Double(v))
        case let v as String:
            scalar = .scalar(v.represented())
        case let v as Bool:
            scalar = .scalar(v.represented())
        case let v as Int:
            scalar = Node(String(v), Tag(.int))
        case let v as UInt64:
            scalar = Node(String(v), Tag(.int))
        default:
            try value.encode(to: NodeEncoder(builder: self, codingPath: []))
        }
    }
}

struct NodeEncoder: Encoder {
    let builder: NodeBuilder
    var codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if builder.pairs == nil { builder.pairs = [] }
        return KeyedEncodingContainer(KeyedNodeContainer<Key>(builder: builder, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        if builder.items == nil { builder.items = [] }
        return UnkeyedNodeContainer(builder: builder, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer {
        SingleNodeContainer(builder: builder, codingPath: codingPath)
    }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let builder: NodeBuilder
    var codingPath: [CodingKey]

    func child(_ key: Key) -> NodeBuilder {
        let child = NodeBuilder()
        builder.pairs!.append((key.stringValue, child))
        return child
    }
    mutating func encodeNil(forKey key: Key) throws { _ = child(key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try child(key).encode(value) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                        forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(builder: child(key), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        NodeEncoder(builder: child(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> Encoder { NodeEncoder(builder: builder, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> Encoder {
        NodeEncoder(builder: child(key), codingPath: codingPath + [key])
    }
}

struct UnkeyedNodeContainer: UnkeyedEncodingContainer {
    let builder: NodeBuilder
    var codingPath: [CodingKey]
    var count: Int { builder.items!.count }

    func child() -> NodeBuilder {
        let child = NodeBuilder()
        builder.items!.append(child)
        return child
    }
    mutating func encodeNil() throws { _ = child() }
    mutating func encode<T: Encodable>(_ value: T) throws { try child().encode(value) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(builder: child(), codingPath: codingPath).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        NodeEncoder(builder: child(), codingPath: codingPath).unkeyedContainer()
    }
    mutating func superEncoder() -> Encoder { NodeEncoder(builder: child(), codingPath: codingPath) }
}

struct SingleNodeContainer: SingleValueEncodingContainer {
    let builder: NodeBuilder
    var codingPath: [CodingKey]
    mutating func encodeNil() throws { builder.scalar = Node("null", Tag(.null)) }
    mutating func encode<T: Encodable>(_ value: T) throws { try builder.encode(value) }
}
