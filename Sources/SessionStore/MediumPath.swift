// Paths and names on the medium are bytes: Rock Ridge records names as they
// were given, not necessarily UTF-8 (old discs carry Latin-1 names), and a
// commit must find them and write them back byte for byte.

/// An absolute path on the medium ("/" the root), as bytes.
public struct MediumPath: Hashable, Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public let bytes: [UInt8]

    public static let root = MediumPath(bytes: [0x2F])

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The path of these names, from the root down.
    public init(components: some Sequence<some Collection<UInt8>>) {
        var bytes: [UInt8] = []
        for name in components { bytes += [0x2F] + name }
        self.bytes = bytes.isEmpty ? Self.root.bytes : bytes
    }

    public init(_ string: String) {
        bytes = Array(string.utf8)
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    /// The path of `name` in the directory at this path.
    public func appending(_ name: some Collection<UInt8>) -> MediumPath {
        MediumPath(bytes: (self == .root ? [] : bytes) + [0x2F] + name)
    }

    /// The names along the path, the root's (none) first.
    public var components: [ArraySlice<UInt8>] {
        bytes.split(separator: 0x2F)
    }

    /// For messages: names that are not UTF-8 show with replacement characters.
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
func withCString<R>(_ bytes: some Collection<UInt8>, _ body: (UnsafePointer<CChar>) throws(IsofuseError) -> R) throws(IsofuseError) -> R {
    let terminated = Array(bytes) + [0]
    return try terminated.withUnsafeBufferPointer { buffer throws(IsofuseError) in
        try buffer.withMemoryRebound(to: CChar.self) { characters throws(IsofuseError) in try body(characters.baseAddress!) }
    }
}
