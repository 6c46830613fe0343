// The staged changes over a base session, as plain values.
//
// Vocabulary (overlayfs', adapted):
// - a *base* node is a node of the session the mount shows (`NodeID` in its `Tree`);
// - an *upper* node is a staged one: new, or a base node with changed content
//   or metadata, which it then *shadows* (`shadows[base] = upper`): wherever a
//   listing names the base node, the upper node is meant;
// - a directory whose entries changed is *materialized*: its full listing is
//   kept in `listings` (names not in it do not exist; this is overlayfs'
//   opaque directory and whiteouts in one). Other directories list their
//   base node's children.
// Renaming moves an entry between listings, so renaming a whole base
// directory costs one entry. Every change is also a `JournalRecord`, which
// is what the staging area writes to disk.

import SessionStore

public typealias UpperID = UInt64
public typealias DataID = UInt64
/// A file name: bytes, as FUSE gives them.
public typealias Name = [UInt8]

/// A node of the merged view, as listings refer to it.
public enum NodeRef: Hashable, Sendable, Codable {
    case base(NodeID)
    case upper(UpperID)
}

/// Where a staged file's bytes are.
public enum FileContent: Hashable, Sendable, Codable {
    /// Unchanged bytes of a base file (its metadata changed).
    case base(NodeID)
    /// A file in the staging area's data directory.
    case staged(DataID)
}

/// A staged node, without its listing.
public struct UpperNode: Hashable, Sendable, Codable {
    public var kind: NodeKind
    /// Owner, permissions, times, xattrs, ACLs.
    public var metadata: Metadata
    /// The base node this one shadows, if any.
    public var origin: NodeID?
    /// Regular files.
    public var content: FileContent?
    public var size: UInt64
    /// Symlinks.
    public var target: Name?
    /// Devices.
    public var rdev: UInt64
    /// Regular files: how many names it has.
    public var nlink: UInt32

    public init(kind: NodeKind, metadata: Metadata, origin: NodeID? = nil, content: FileContent? = nil,
                size: UInt64 = 0, target: Name? = nil, rdev: UInt64 = 0, nlink: UInt32 = 1) {
        self.kind = kind
        self.metadata = metadata
        self.origin = origin
        self.content = content
        self.size = size
        self.target = target
        self.rdev = rdev
        self.nlink = nlink
    }
}

/// One change of an `OverlayState`, as the journal records it.
public enum JournalRecord: Hashable, Sendable, Codable {
    case node(UpperID, UpperNode)
    case drop(UpperID)
    case listing(UpperID, [Name: NodeRef])
    case entry(UpperID, Name, NodeRef?)
    case shadow(NodeID, UpperID?)
}

/// All staged changes.
public struct OverlayState: Hashable, Sendable {
    public var nodes: [UpperID: UpperNode] = [:]
    /// Materialized directory listings.
    public var listings: [UpperID: [Name: NodeRef]] = [:]
    public var shadows: [NodeID: UpperID] = [:]
    var nextUpperID: UpperID = 1
    var nextDataID: DataID = 1

    public init() {}

    /// Applies one recorded change (replaying a journal, or making one).
    mutating func apply(_ record: JournalRecord) {
        switch record {
        case let .node(id, node):
            nodes[id] = node
            nextUpperID = max(nextUpperID, id + 1)
            if case .staged(let data)? = node.content { nextDataID = max(nextDataID, data + 1) }
        case let .drop(id):
            nodes[id] = nil
            listings[id] = nil
        case let .listing(id, entries):
            listings[id] = entries
        case let .entry(id, name, ref):
            listings[id, default: [:]][name] = ref
        case let .shadow(base, upper):
            shadows[base] = upper
        }
    }

    /// The records that rebuild this state from an empty one.
    public var records: [JournalRecord] {
        var records: [JournalRecord] = []
        for (id, node) in nodes.sorted(by: { $0.key < $1.key }) {
            records.append(.node(id, node))
            if let listing = listings[id] { records.append(.listing(id, listing)) }
        }
        records += shadows.sorted { $0.key < $1.key }.map { .shadow($0.key, $0.value) }
        return records
    }

    /// The staged data files in use.
    public var dataFiles: Set<DataID> {
        Set(nodes.values.compactMap { node in
            if case .staged(let id)? = node.content { return id }
            return nil
        })
    }
}
