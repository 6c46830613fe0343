// An immutable snapshot of one session's directory tree.
//
// Layout, chosen for memory and lookup speed (a mount keeps one per session it
// shows, with hundreds of thousands of files):
// - one fixed-size `Record` per node in one array; node 0 is the root;
// - the children of a directory are consecutive records, sorted by name
//   bytes, so a name lookup is a binary search and a listing is a range;
// - names and symlink targets live in one byte buffer; extents, MD5s and
//   extended attributes in side tables that only nodes using them pay for
//   (an empty file has no extent; MD5s are read only for a check).
// libisofs' own tree costs about 620 bytes a node (a million files: 609 MiB);
// this one under 90 (records 72, names, side tables).

/// A node of a `Tree`: its index. Stable for the life of the tree.
public struct NodeID: Hashable, Sendable, Comparable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let root = NodeID(rawValue: 0)
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    var index: Int { Int(rawValue) }
}

public enum NodeKind: UInt8, Sendable, Codable {
    case directory, regularFile, symlink, fifo, characterDevice, blockDevice, socket
}

/// A run of consecutive blocks holding part of a file's content.
public struct Extent: Hashable, Sendable {
    /// The first block (2048 bytes each) on the medium.
    public var block: UInt32
    /// Bytes of content in this run (all but the last extent of a file are whole blocks).
    public var byteCount: UInt32

    public var byteOffset: UInt64 { UInt64(block) * 2048 }
}

/// Seconds and nanoseconds since 1970 UTC.
public struct Timestamp: Hashable, Sendable, Codable {
    public var seconds: Int64
    public var nanoseconds: Int32
    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}

/// POSIX ACLs in their long text form ("user::rwx\ngroup::r-x\nother::r-x\n").
public struct ACLText: Hashable, Sendable, Codable {
    public var access: String?
    public var `default`: String?
    public init(access: String?, default: String?) {
        self.access = access
        self.default = `default`
    }
}

/// What a node carries besides its name and kind.
public struct NodeAttributes: Hashable, Sendable {
    /// User-visible extended attributes (libisofs' internal `isofs.*` ones left out).
    public var xattrs: [String: [UInt8]] = [:]
    public var acl: ACLText?

    public init(xattrs: [String: [UInt8]] = [:], acl: ACLText? = nil) {
        self.xattrs = xattrs
        self.acl = acl
    }
}

public struct Tree: Sendable {
    /// 72 bytes: with a million nodes, every 4 bytes more are 4 MB of the
    /// mount, and while loading, the libisofs tree (620 bytes a node) is in
    /// memory beside these.
    struct Record: Sendable, Equatable {
        var parent: UInt32
        /// Directories: first child record; files: first extent; symlinks: target
        /// offset in `bytes`; devices: the low half of the device number.
        var payloadStart: UInt32
        /// Directories: number of children; files: number of extents; symlinks:
        /// target length; devices: the high half of the device number.
        var payloadCount: UInt32
        var nameOffset: UInt32
        var nameLength: UInt16
        /// Type and permission bits, as in `st_mode` (which needs 16 bits).
        var mode: UInt16
        var kind: NodeKind
        var isFiltered: Bool
        var uid: UInt32
        var gid: UInt32
        /// Directories: their link count (2 + subdirectories). Other nodes:
        /// the index of their hard-link group in `linkGroups`, or `.max` when
        /// they have one name.
        var links: UInt32
        /// Index into `digests`, or `.max` when no MD5 is recorded.
        var digestIndex: UInt32
        var size: UInt64
        var atime: Int64
        var mtime: Int64
        var ctime: Int64
    }

    var records: [Record]
    /// Names and symlink targets.
    var bytes: [UInt8]
    var extents: [Extent]
    var digests: [MD5Digest]
    /// Only the nodes that have xattrs or ACLs, which are few.
    var attributes: [NodeID: NodeAttributes]
    /// The names of each file that has several (first name first).
    var linkGroups: [[NodeID]]

    /// The session this tree belongs to.
    public let session: SessionInfo?
    /// The bytes the medium held when the tree was loaded: an extent beyond
    /// them (a damaged or hostile image) is a read error, not an early end.
    let mediumByteCount: UInt64

    public var nodeCount: Int { records.count }

    /// Bytes this tree holds in memory (records and side tables).
    public var memoryFootprint: Int {
        records.capacity * MemoryLayout<Record>.stride + bytes.capacity
            + extents.capacity * MemoryLayout<Extent>.stride
            + digests.capacity * MemoryLayout<MD5Digest>.stride
            + attributes.values.reduce(MemoryLayout<NodeAttributes>.stride) { sum, a in
                sum + a.xattrs.reduce(64) { $0 + $1.key.utf8.count + $1.value.count + 64 }
            }
    }

    /// Whether any node has a POSIX ACL.
    public var hasACLs: Bool { attributes.values.contains { $0.acl != nil } }

    // MARK: Queries

    /// The node for a name inside a directory; nil if there is none or `directory` is not one.
    public func lookup(_ name: some Collection<UInt8>, in directory: NodeID) -> NodeID? {
        let dir = records[directory.index]
        guard dir.kind == .directory else { return nil }
        var low = Int(dir.payloadStart), high = low + Int(dir.payloadCount)
        while low < high {
            let mid = (low + high) / 2
            switch compare(nameBytes(records[mid]), name) {
            case .same: return NodeID(rawValue: UInt32(mid))
            case .before: low = mid + 1
            case .after: high = mid
            }
        }
        return nil
    }

    public func lookup(_ name: String, in directory: NodeID) -> NodeID? {
        lookup(Array(name.utf8), in: directory)
    }

    /// The node at an absolute path ("/a/b"); "/" is the root.
    public func lookup(path: String) -> NodeID? {
        var node = NodeID.root
        for component in path.utf8.split(separator: UInt8(ascii: "/")) {
            guard let next = lookup(component, in: node) else { return nil }
            node = next
        }
        return node
    }

    /// The children of a directory, sorted by name bytes (empty for other kinds).
    public func children(of directory: NodeID) -> [NodeID] {
        let dir = records[directory.index]
        guard dir.kind == .directory else { return [] }
        let start = dir.payloadStart
        return (start..<start + dir.payloadCount).map(NodeID.init(rawValue:))
    }

    public func parent(of node: NodeID) -> NodeID { NodeID(rawValue: records[node.index].parent) }

    public func name(of node: NodeID) -> String {
        String(decoding: nameBytes(records[node.index]), as: UTF8.self)
    }

    public func nameBytes(of node: NodeID) -> ArraySlice<UInt8> { nameBytes(records[node.index]) }

    /// The absolute path of a node ("/" for the root), for people: names
    /// that are not UTF-8 show with replacement characters.
    public func path(of node: NodeID) -> String {
        mediumPath(of: node).description
    }

    /// The absolute path of a node, byte for byte.
    public func mediumPath(of node: NodeID) -> MediumPath {
        var components: [ArraySlice<UInt8>] = []
        var current = node
        while current != .root {
            components.append(nameBytes(of: current))
            current = parent(of: current)
        }
        return MediumPath(components: components.reversed())
    }

    public func kind(of node: NodeID) -> NodeKind { records[node.index].kind }

    /// Everything known about a node, as one value.
    public func info(of node: NodeID) -> NodeInfo {
        let r = records[node.index]
        return NodeInfo(
            id: node, kind: r.kind, mode: UInt32(r.mode), uid: r.uid, gid: r.gid, size: r.size,
            nlink: r.kind == .directory ? r.links : r.links == .max ? 1 : UInt32(linkGroups[Int(r.links)].count),
            rdev: r.kind == .characterDevice || r.kind == .blockDevice ? UInt64(r.payloadCount) << 32 | UInt64(r.payloadStart) : 0,
            accessTime: Timestamp(seconds: r.atime), modificationTime: Timestamp(seconds: r.mtime),
            changeTime: Timestamp(seconds: r.ctime),
            recordedMD5: r.digestIndex == .max ? nil : digests[Int(r.digestIndex)],
            isFiltered: r.isFiltered)
    }

    /// The symlink's target, its bytes as recorded; nil for other kinds.
    public func symlinkTarget(of node: NodeID) -> [UInt8]? {
        let r = records[node.index]
        guard r.kind == .symlink else { return nil }
        let start = Int(r.payloadStart)
        return Array(bytes[start..<start + Int(r.payloadCount)])
    }

    /// Where a regular file's content lies on the medium, in file order.
    public func extents(of node: NodeID) -> ArraySlice<Extent> {
        let r = records[node.index]
        guard r.kind == .regularFile else { return [] }
        let start = Int(r.payloadStart)
        return extents[start..<start + Int(r.payloadCount)]
    }

    public func attributes(of node: NodeID) -> NodeAttributes {
        attributes[node] ?? NodeAttributes()
    }

    /// All names of a file that has several (hard links), in node order; just the node otherwise.
    public func hardLinks(of node: NodeID) -> [NodeID] {
        let r = records[node.index]
        guard r.kind != .directory, r.links != .max else { return [node] }
        return linkGroups[Int(r.links)]
    }

    /// Every node below `start` (itself included), parents before children.
    public func walk(from start: NodeID = .root) -> [NodeID] {
        var result: [NodeID] = []
        var pending = [start]
        while let node = pending.popLast() {
            result.append(node)
            pending.append(contentsOf: children(of: node).reversed())
        }
        return result
    }

    // MARK: Helpers

    private func nameBytes(_ r: Record) -> ArraySlice<UInt8> {
        let start = Int(r.nameOffset)
        return bytes[start..<start + Int(r.nameLength)]
    }

    private enum Order { case before, same, after }

    /// Byte-wise comparison, the order children are stored in.
    private func compare(_ a: ArraySlice<UInt8>, _ b: some Collection<UInt8>) -> Order {
        var ia = a.makeIterator(), ib = b.makeIterator()
        while true {
            switch (ia.next(), ib.next()) {
            case (nil, nil): return .same
            case (nil, _): return .before
            case (_, nil): return .after
            case let (x?, y?) where x != y: return x < y ? .before : .after
            default: continue
            }
        }
    }
}

/// One node's metadata, as `stat` would want it.
public struct NodeInfo: Hashable, Sendable {
    public var id: NodeID
    public var kind: NodeKind
    /// Type and permission bits, as in `st_mode`.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var nlink: UInt32
    public var rdev: UInt64
    public var accessTime: Timestamp
    public var modificationTime: Timestamp
    public var changeTime: Timestamp
    public var recordedMD5: MD5Digest?
    /// Stored compressed (zisofs): the extents do not hold the content as is.
    public var isFiltered: Bool

    public var permissions: UInt32 { mode & 0o7777 }
}
