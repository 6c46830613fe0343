// The merged view: a base session with the staged changes laid over it,
// and the POSIX operations that change it, with the errnos ext4 gives.
//
// Pure values: no disk, no locks. Data of staged files is the owner's job
// (it copies base content to a data file before asking for `.staged` content).
// Moving a directory into itself is not checked here: the kernel's VFS
// refuses that before a request reaches a FUSE filesystem.

import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Everything `stat` and `getxattr` need of a node of the merged view.
public struct NodeView: Hashable, Sendable {
    public var kind: NodeKind
    public var metadata: Metadata
    public var size: UInt64
    public var nlink: UInt32
    public var rdev: UInt64
    public var target: Name?
    /// Unchanged base node: committed, immutable.
    public var isBase: Bool

    /// `st_mode`.
    public var mode: UInt32 {
        let type: mode_t = switch kind {
        case .directory: S_IFDIR
        case .regularFile: S_IFREG
        case .symlink: S_IFLNK
        case .fifo: S_IFIFO
        case .characterDevice: S_IFCHR
        case .blockDevice: S_IFBLK
        case .socket: S_IFSOCK
        }
        return UInt32(type) | metadata.permissions
    }
}

public struct Overlay: Sendable {
    public private(set) var base: Tree
    public private(set) var state: OverlayState
    /// Records of changes not yet taken by the owner (to append to the journal).
    private var pending: [JournalRecord] = []

    public init(base: Tree, state: OverlayState = OverlayState()) {
        self.base = base
        self.state = state
    }

    /// The journal records of the changes made since the last call.
    public mutating func takeRecords() -> [JournalRecord] {
        defer { pending = [] }
        return pending
    }

    /// Puts back records the journal could not take, ahead of newer ones.
    public mutating func requeue(_ records: [JournalRecord]) {
        pending = records + pending
    }

    private mutating func record(_ change: JournalRecord) {
        state.apply(change)
        pending.append(change)
    }

    // MARK: Reading the view

    /// What a reference means now: a shadowed base node is its upper node.
    public func resolve(_ ref: NodeRef) -> NodeRef {
        if case .base(let id) = ref, let upper = state.shadows[id] { return .upper(upper) }
        return ref
    }

    /// The base node a staged node shadows, if any; the node itself otherwise.
    public func origin(_ ref: NodeRef) -> NodeRef {
        if case .upper(let id) = ref, let origin = state.nodes[id]?.origin { return .base(origin) }
        return ref
    }

    /// A node's identity across shadowing and hard links: its base node if it
    /// has one (the first name of a hard-linked base file).
    public func identity(_ ref: NodeRef) -> NodeRef {
        guard case .base(let id) = origin(ref) else { return ref }
        return .base(base.hardLinks(of: id)[0])
    }

    public func exists(_ ref: NodeRef) -> Bool {
        switch resolve(ref) {
        case .base(let id): Int(id.rawValue) < base.nodeCount
        case .upper(let id): state.nodes[id] != nil
        }
    }

    public func kind(_ ref: NodeRef) -> NodeKind {
        switch resolve(ref) {
        case .base(let id): base.kind(of: id)
        case .upper(let id): state.nodes[id]!.kind
        }
    }

    /// The entries of a directory, sorted by name (unresolved references).
    /// With `window`, only the entries at those positions of the sorted
    /// listing: a committed directory's are taken from the tree without
    /// looking at the others.
    public func listing(of directory: NodeRef, window: Range<Int>? = nil) -> [(name: Name, ref: NodeRef)] {
        func clamped<Entry>(_ entries: [Entry]) -> ArraySlice<Entry> {
            guard let window else { return entries[...] }
            return entries[window.clamped(to: entries.indices)]
        }
        func baseListing(_ id: NodeID) -> [(name: Name, ref: NodeRef)] {
            clamped(base.children(of: id)).map { (Array(base.nameBytes(of: $0)), .base($0)) }
        }
        switch resolve(directory) {
        case .base(let id):
            return baseListing(id)
        case .upper(let id):
            if let listing = state.listings[id] {
                return Array(clamped(listing.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }))
            }
            return state.nodes[id]?.origin.map(baseListing) ?? []
        }
    }

    public func lookup(_ name: Name, in directory: NodeRef) -> NodeRef? {
        switch resolve(directory) {
        case .base(let id):
            return base.lookup(name, in: id).map { .base($0) }
        case .upper(let id):
            if let listing = state.listings[id] { return listing[name] }
            guard let origin = state.nodes[id]?.origin else { return nil }
            return base.lookup(name, in: origin).map { .base($0) }
        }
    }

    /// The node at an absolute path ("/" is the root).
    public func lookup(path: String) -> NodeRef? {
        var ref = NodeRef.base(.root)
        for component in path.utf8.split(separator: UInt8(ascii: "/")) {
            guard kind(ref) == .directory, let next = lookup(Array(component), in: ref) else { return nil }
            ref = next
        }
        return ref
    }

    public func view(_ ref: NodeRef) -> NodeView {
        switch resolve(ref) {
        case .base(let id):
            let info = base.info(of: id)
            let attributes = base.attributes(of: id)
            let metadata = Metadata(permissions: info.permissions, uid: info.uid, gid: info.gid,
                                    accessTime: info.accessTime, modificationTime: info.modificationTime,
                                    changeTime: info.changeTime, xattrs: attributes.xattrs, acl: attributes.acl)
            return NodeView(kind: info.kind, metadata: metadata, size: info.size, nlink: info.nlink, rdev: info.rdev,
                            target: base.symlinkTarget(of: id), isBase: true)
        case .upper(let id):
            let node = state.nodes[id]!
            let nlink = node.kind == .directory ? 2 + subdirectoryCount(of: id, origin: node.origin) : node.nlink
            return NodeView(kind: node.kind, metadata: node.metadata, size: node.size, nlink: nlink, rdev: node.rdev,
                            target: node.target, isBase: false)
        }
    }

    /// A staged directory's subdirectories (getattr asks often: no sorting here).
    private func subdirectoryCount(of id: UpperID, origin: NodeID?) -> UInt32 {
        if let listing = state.listings[id] {
            return UInt32(listing.values.count { kind($0) == .directory })
        }
        guard let origin else { return 0 }
        return base.info(of: origin).nlink - 2
    }

    /// The staged node behind a reference, if it is one.
    public func upperNode(_ ref: NodeRef) -> UpperNode? {
        guard case .upper(let id) = resolve(ref) else { return nil }
        return state.nodes[id]
    }

    // MARK: Changing the view

    /// Makes a node staged (copying a base node's attributes), so that its
    /// attributes can change. Returns its upper id.
    @discardableResult
    public mutating func shadow(_ ref: NodeRef) -> UpperID {
        switch resolve(ref) {
        case .upper(let id):
            return id
        case .base(let baseID):
            let view = self.view(.base(baseID))
            let id = allocateUpperID()
            record(.node(id, UpperNode(
                kind: view.kind, metadata: view.metadata, origin: baseID,
                content: view.kind == .regularFile ? .base(baseID) : nil, size: view.size, target: view.target,
                rdev: view.rdev, nlink: view.kind == .regularFile ? view.nlink : 1)))
            // All names of a hard-linked file are one staged node.
            for name in base.hardLinks(of: baseID) { record(.shadow(name, id)) }
            return id
        }
    }

    /// Changes a node's attributes (staging it first). With `journaled: false`
    /// the change is kept in memory only: for sizes and times that writes
    /// change, journaled later by `flush(_:)`.
    @discardableResult
    public mutating func update(_ ref: NodeRef, journaled: Bool = true, _ change: (inout UpperNode) -> Void) -> UpperID {
        let id = shadow(ref)
        var node = state.nodes[id]!
        change(&node)
        if journaled {
            record(.node(id, node))
        } else {
            state.nodes[id] = node
        }
        return id
    }

    /// Journals a node's current attributes (after unjournaled updates).
    public mutating func flush(_ id: UpperID) {
        if let node = state.nodes[id] { record(.node(id, node)) }
    }

    /// Gives a directory its own listing, so that entries can change.
    private mutating func materialize(_ directory: NodeRef) -> UpperID {
        let id = shadow(directory)
        if state.listings[id] == nil {
            let entries = listing(of: .upper(id))
            record(.listing(id, Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.ref) })))
        }
        return id
    }

    /// Puts a new node into a directory. The name must be free.
    public mutating func create(_ node: UpperNode, named name: Name, in directory: NodeRef, at time: Timestamp) throws(Errno) -> UpperID {
        try checkDirectory(directory)
        try Self.check(name)
        guard lookup(name, in: directory) == nil else { throw .fileExists }
        let dir = materialize(directory)
        let id = allocateUpperID()
        record(.node(id, node))
        record(.entry(dir, name, .upper(id)))
        touch(directory, at: time)
        return id
    }

    /// Gives an existing non-directory one more name (link(2)). A file with
    /// base content must have been given staged content first.
    public mutating func link(_ ref: NodeRef, named name: Name, in directory: NodeRef, at time: Timestamp) throws(Errno) {
        guard kind(ref) != .directory else { throw .notPermitted }
        try checkDirectory(directory)
        try Self.check(name)
        guard lookup(name, in: directory) == nil else { throw .fileExists }
        let id = update(ref) { node in
            node.nlink += 1
            node.metadata.changeTime = time
        }
        let dir = materialize(directory)
        record(.entry(dir, name, .upper(id)))
        touch(directory, at: time)
    }

    /// Removes a name (unlink(2), or rmdir(2) with `directory: true`).
    /// Returns the staged node if this was its last name.
    @discardableResult
    public mutating func remove(_ name: Name, in directory: NodeRef, directory isDirectory: Bool, at time: Timestamp) throws(Errno) -> UpperNode? {
        try checkDirectory(directory)
        guard let ref = lookup(name, in: directory) else { throw .noSuchFileOrDirectory }
        if isDirectory {
            guard kind(ref) == .directory else { throw .notDirectory }
            guard listing(of: ref).isEmpty else { throw .directoryNotEmpty }
        } else {
            guard kind(ref) != .directory else { throw .isDirectory }
        }
        let dir = materialize(directory)
        record(.entry(dir, name, nil))
        touch(directory, at: time)
        return release(ref, at: time)
    }

    /// rename(2), with RENAME_NOREPLACE and RENAME_EXCHANGE. Returns the
    /// staged node a replaced name was the last name of.
    @discardableResult
    public mutating func rename(_ name: Name, in directory: NodeRef, to newName: Name, in newDirectory: NodeRef,
                                mode: RenameMode, at time: Timestamp) throws(Errno) -> UpperNode? {
        try checkDirectory(directory)
        try checkDirectory(newDirectory)
        try Self.check(newName)
        guard let source = lookup(name, in: directory) else { throw .noSuchFileOrDirectory }
        let target = lookup(newName, in: newDirectory)
        if let target, resolve(target) == resolve(source) { return nil }   // the same file: POSIX says do nothing
        switch (mode, target) {
        case (.exchange, nil):
            throw .noSuchFileOrDirectory
        case (.exchange, let target?):
            let from = materialize(directory), to = materialize(newDirectory)
            record(.entry(from, name, target))
            record(.entry(to, newName, source))
        case (.noReplace, _?):
            throw .fileExists
        case (_, let target?):
            let sourceIsDirectory = kind(source) == .directory
            switch (sourceIsDirectory, kind(target) == .directory) {
            case (true, false): throw .notDirectory
            case (false, true): throw .isDirectory
            case (true, true) where !listing(of: target).isEmpty: throw .directoryNotEmpty
            default: break
            }
            fallthrough
        default:
            let from = materialize(directory)
            record(.entry(from, name, nil))
            let to = materialize(newDirectory)
            record(.entry(to, newName, source))
            touch(directory, at: time)
            touch(newDirectory, at: time)
            return target.flatMap { release($0, at: time) }
        }
        touch(directory, at: time)
        touch(newDirectory, at: time)
        return nil
    }

    /// Gives staged content to a file (after the owner wrote the data file).
    public mutating func setContent(_ ref: NodeRef, _ content: FileContent, size: UInt64, at time: Timestamp) {
        update(ref) { node in
            node.content = content
            node.size = size
            node.metadata.modificationTime = time
            node.metadata.changeTime = time
        }
    }

    /// A new data file id.
    public mutating func allocateDataID() -> DataID {
        defer { state.nextDataID += 1 }
        return state.nextDataID
    }

    /// An identity no node has or will have, for a node a commit dropped.
    public mutating func retiredIdentity() -> NodeRef {
        .upper(allocateUpperID())
    }

    // MARK: Helpers

    private mutating func allocateUpperID() -> UpperID {
        defer { state.nextUpperID += 1 }
        return state.nextUpperID
    }

    /// Drops a name's hold on its node; returns the staged node if it has no names left.
    @discardableResult
    private mutating func release(_ ref: NodeRef, at time: Timestamp) -> UpperNode? {
        guard case .upper(let id) = resolve(ref), let node = state.nodes[id] else {
            return nil   // a base node: nothing else names it
        }
        if node.kind == .regularFile && node.nlink > 1 {
            update(.upper(id)) { node in
                node.nlink -= 1
                node.metadata.changeTime = time
            }
            return nil
        }
        if let origin = node.origin {
            for name in base.hardLinks(of: origin) { record(.shadow(name, nil)) }
        }
        record(.drop(id))
        return node
    }

    /// A directory's entries changed: its mtime and ctime become now.
    private mutating func touch(_ directory: NodeRef, at time: Timestamp) {
        update(directory) { node in
            node.metadata.modificationTime = time
            node.metadata.changeTime = time
        }
    }

    private func checkDirectory(_ ref: NodeRef) throws(Errno) {
        guard exists(ref) else { throw .noSuchFileOrDirectory }
        guard kind(ref) == .directory else { throw .notDirectory }
    }

    /// Names the medium can record: at most 255 bytes, no "/" or NUL. Any
    /// other bytes go (Rock Ridge names are bytes, written as given).
    static func check(_ name: Name) throws(Errno) {
        guard !name.isEmpty, name != [0x2E], name != [0x2E, 0x2E],
              !name.contains(0x2F), !name.contains(0) else { throw .invalidArgument }
        guard name.count <= 255 else { throw .fileNameTooLong }
    }
}

extension Timestamp {
    /// The current time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(seconds: Int64(spec.tv_sec), nanoseconds: Int32(spec.tv_nsec))
    }
}
