// `.isofuse/`: the control directory. Not listed by `ls -a /`, reached by
// its path, never written to the medium.
//
//   commit     touch it or write to it: burn the staged changes ("close" also closes the medium)
//   discard    touch it: drop every staged change
//   status     what `isofuse status` prints; its xattr user.isofuse.status holds the JSON
//   sessions/N the read-only tree of session N; sessions/latest points at the newest

import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The fixed nodes of the control directory (inode numbers 2...7).
enum ControlNode: InodeNumber, CaseIterable {
    case directory = 2, commit, discard, status, sessions, latest

    static let directoryName: Name = Array(".isofuse".utf8)

    var name: Name {
        switch self {
        case .directory: Self.directoryName
        case .commit: Array("commit".utf8)
        case .discard: Array("discard".utf8)
        case .status: Array("status".utf8)
        case .sessions: Array("sessions".utf8)
        case .latest: Array("latest".utf8)
        }
    }

    var parent: InodeNumber {
        switch self {
        case .directory: rootInode
        case .commit, .discard, .status, .sessions: ControlNode.directory.rawValue
        case .latest: ControlNode.sessions.rawValue
        }
    }
}

/// Inode numbers of the session views: the top bit, the session, the node.
enum SessionViewInode {
    static func number(session: Int, node: NodeID) -> InodeNumber {
        1 << 63 | UInt64(session) << 32 | UInt64(node.rawValue)
    }

    static func decode(_ number: InodeNumber) -> (session: Int, node: NodeID)? {
        guard number & (1 << 63) != 0 else { return nil }
        return (Int((number >> 32) & 0x7FFF_FFFF), NodeID(rawValue: UInt32(truncatingIfNeeded: number)))
    }
}

/// The name of the status xattr.
public let statusAttributeName = "user.isofuse.status"

extension MountedFileSystem {
    func isControl(_ inode: InodeNumber) -> Bool {
        ControlNode(rawValue: inode) != nil || SessionViewInode.decode(inode) != nil
    }

    func checkNotControl(_ inode: InodeNumber) throws(Errno) {
        if ControlNode(rawValue: inode) != nil { throw .notPermitted }
        if SessionViewInode.decode(inode) != nil { throw .readOnlyFileSystem }
    }

    // MARK: Lookup and attributes

    /// Lookups in the control directory and the session views; nil for other nodes.
    func controlLookup(_ parent: InodeNumber, _ name: [UInt8]) throws(Errno) -> Attributes? {
        if parent == rootInode {
            return name == ControlNode.directoryName ? try controlAttributes(ControlNode.directory.rawValue) : nil
        }
        if let control = ControlNode(rawValue: parent) {
            if control == .sessions, let number = Int(String(decoding: name, as: UTF8.self)), String(number).utf8.elementsEqual(name) {
                _ = try sessionTree(number)
                return try controlAttributes(SessionViewInode.number(session: number, node: .root))
            }
            guard let child = ControlNode.allCases.first(where: { $0.parent == parent && $0.name == name }) else {
                throw .noSuchFileOrDirectory
            }
            return try controlAttributes(child.rawValue)
        }
        if let (session, node) = SessionViewInode.decode(parent) {
            let tree = try sessionTree(session)
            guard tree.kind(of: node) == .directory else { throw .notDirectory }
            guard let child = tree.lookup(name, in: node) else { throw .noSuchFileOrDirectory }
            return try controlAttributes(SessionViewInode.number(session: session, node: child))
        }
        return nil
    }

    /// Attributes of control and session-view nodes; nil for other nodes.
    func controlAttributes(_ inode: InodeNumber) throws(Errno) -> Attributes? {
        if let (session, node) = SessionViewInode.decode(inode) {
            let tree = try sessionTree(session)
            guard Int(node.rawValue) < tree.nodeCount else { throw .noSuchFileOrDirectory }
            let info = tree.info(of: node)
            return Attributes(inode: inode, mode: info.mode, nlink: info.nlink, uid: info.uid, gid: info.gid,
                              size: info.kind == .symlink ? UInt64(tree.symlinkTarget(of: node)?.count ?? 0) : info.size,
                              rdev: info.rdev, accessTime: info.accessTime, modificationTime: info.modificationTime,
                              changeTime: info.changeTime, isImmutable: true)
        }
        guard let control = ControlNode(rawValue: inode) else { return nil }
        let mode: UInt32 = switch control {
        case .directory: UInt32(S_IFDIR) | 0o755
        case .sessions: UInt32(S_IFDIR) | 0o555
        case .commit, .discard: UInt32(S_IFREG) | 0o600
        case .status: UInt32(S_IFREG) | 0o444
        case .latest: UInt32(S_IFLNK) | 0o777
        }
        let now = Timestamp.now()
        let sessions = core.withLock { $0.medium.sessions.count }
        let status = control == .status ? currentStatus() : nil
        let size: UInt64 = switch control {
        case .latest: UInt64(String(sessions).utf8.count)
        case .status: UInt64(status!.text.count)
        default: 0
        }
        let nlink: UInt32 = switch control {
        case .directory: 3
        case .sessions: 2 + UInt32(sessions)
        default: 1
        }
        let changed = status?.since ?? now
        return Attributes(inode: inode, mode: mode, nlink: nlink, uid: owner.uid, gid: owner.gid, size: size, rdev: 0,
                          accessTime: now, modificationTime: changed, changeTime: changed, isImmutable: false)
    }

    func controlReadLink(_ inode: InodeNumber) -> [UInt8]? {
        if inode == ControlNode.latest.rawValue {
            return Array(String(core.withLock { $0.medium.sessions.count }).utf8)
        }
        guard let (session, node) = SessionViewInode.decode(inode), let tree = try? sessionTree(session) else { return nil }
        return tree.symlinkTarget(of: node)
    }

    /// `touch commit`, `touch discard`: the times change.
    func controlSetAttributes(_ inode: InodeNumber, _ changes: AttributeChanges) throws(Errno) -> Attributes? {
        guard isControl(inode) else { return nil }
        switch ControlNode(rawValue: inode) {
        case .commit?: try startCommit(close: false)
        case .discard?: try discard()
        case nil: throw .readOnlyFileSystem
        default: throw .notPermitted
        }
        return try controlAttributes(inode)
    }

    // MARK: Files

    func controlOpen(_ inode: InodeNumber, flags: Int32) throws(Errno) -> OpenedFile? {
        guard let handle = try controlHandle(inode, writing: flags & O_ACCMODE != O_RDONLY) else { return nil }
        let number = core.withLock { $0.open(handle) }
        // Control files have no size to trust: read them past it.
        return OpenedFile(handle: number, keepCache: ControlNode(rawValue: inode) == nil, directIO: ControlNode(rawValue: inode) != nil)
    }

    /// What a control or session-view file opened (for writing or not) reads and takes; nil for other nodes.
    func controlHandle(_ inode: InodeNumber, writing: Bool) throws(Errno) -> Handle? {
        guard isControl(inode) else { return nil }
        switch ControlNode(rawValue: inode) {
        case .commit?, .discard?:
            if writing { try checkCommittable() }
            return writing ? .control(ControlNode(rawValue: inode)!, written: []) : .snapshot([])
        case .status?:
            guard !writing else { throw .permissionDenied }
            return .snapshot(currentStatus().text)
        case nil:
            guard !writing else { throw .readOnlyFileSystem }
            let (session, node) = SessionViewInode.decode(inode)!
            guard try sessionTree(session).kind(of: node) == .regularFile else { throw .isDirectory }
            return .sessionFile(session: session, node: node)
        default:
            throw .isDirectory
        }
    }

    /// The status text, and since when it has read so (its modification time):
    /// a kernel that caches the file's pages drops them when that changes.
    func currentStatus() -> (text: [UInt8], since: Timestamp) {
        let text = Array(statusReport().text.utf8)
        let now = Timestamp.now()
        return core.withLock { core in
            if core.status?.text != text { core.status = (text, now) }
            return core.status!
        }
    }

    func controlWrite(_ handle: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int? {
        try core.withLock { core throws(Errno) -> Int? in
            guard case .control(let node, let written)? = core.handles[handle] else { return nil }
            guard written.count + data.count <= 4096 else { throw .fileTooLarge }
            core.handles[handle] = .control(node, written: written + data)
            return data.count
        }
    }

    /// Closing a control file written to: the commit (or discard) starts now.
    func controlRelease(_ handle: UInt64) -> Bool {
        let released = core.withLock { $0.handles[handle] }
        switch released {
        case .control(let node, let written)?:
            core.withLock { $0.handles[handle] = nil }
            let words = String(decoding: written, as: UTF8.self).split(whereSeparator: \.isWhitespace)
            if node == .commit { try? startCommit(close: words == ["close"]) } else { try? discard() }
            return true
        case .snapshot?, .sessionFile?:
            core.withLock { $0.handles[handle] = nil }
            return true
        default:
            return false
        }
    }

    // MARK: Directories and xattrs

    /// The entries of a control directory or a session view's, from `offset` on; nil for other nodes.
    func controlListing(_ inode: InodeNumber, from offset: UInt64 = 0, limit: Int = .max) throws(Errno) -> [DirectoryEntry]? {
        guard isControl(inode) else { return nil }
        let children: (Range<Int>) throws(Errno) -> [(Name, InodeNumber)]
        if let control = ControlNode(rawValue: inode) {
            guard control == .directory || control == .sessions else { throw .notDirectory }
            var fixed = ControlNode.allCases.filter { $0.parent == inode }.map { ($0.name, $0.rawValue) }
            if control == .sessions {
                let count = core.withLock { $0.medium.sessions.count }
                fixed += (0..<count).map { (Array(String($0 + 1).utf8), SessionViewInode.number(session: $0 + 1, node: .root)) }
            }
            children = { window in Array(fixed[window.clamped(to: fixed.indices)]) }
        } else {
            let (session, node) = SessionViewInode.decode(inode)!
            let tree = try sessionTree(session)
            guard tree.kind(of: node) == .directory else { throw .notDirectory }
            children = { window in
                let nodes = tree.children(of: node)
                return nodes[window.clamped(to: nodes.indices)].map {
                    (Array(tree.nameBytes(of: $0)), SessionViewInode.number(session: session, node: $0))
                }
            }
        }
        return try DirectoryEntry.listing(own: try controlAttributes(inode)!, from: offset, limit: limit) { window throws(Errno) in
            try children(window).map { name, number throws(Errno) in (name, try controlAttributes(number)!) }
        }
    }

    func controlExtendedAttribute(_ inode: InodeNumber, _ name: String) throws(Errno) -> [UInt8]? {
        if inode == ControlNode.status.rawValue && name == statusAttributeName { return statusReport().json() }
        if let (session, node) = SessionViewInode.decode(inode) {
            guard let value = try sessionTree(session).attributes(of: node).extendedAttributes[name] else { throw .noData }
            return value
        }
        if ControlNode(rawValue: inode) != nil { throw .noData }
        return nil
    }

    /// The xattr names of a control node (none) or of a node of a session view; nil for other nodes.
    func controlExtendedAttributeNames(_ inode: InodeNumber) throws(Errno) -> [String]? {
        if let (session, node) = SessionViewInode.decode(inode) {
            return try sessionTree(session).attributes(of: node).extendedAttributes.keys.sorted()
        }
        return ControlNode(rawValue: inode) != nil ? [] : nil
    }

    // MARK: Session views

    /// The tree of session `number`, loaded once. The newest is the base tree.
    func sessionTree(_ number: Int) throws(Errno) -> Tree {
        let known = core.withLock { core -> (tree: Tree?, exists: Bool) in
            if let tree = core.sessionTrees[number] { return (tree, true) }
            if options.session == nil, number == core.medium.sessions.count { return (core.overlay.base, true) }
            return (nil, core.medium.sessions.indices.contains(number - 1))
        }
        if let tree = known.tree { return tree }
        guard known.exists else { throw .noSuchFileOrDirectory }
        do {
            let tree = try drive.loadTree(session: number)
            core.withLock { $0.sessionTrees[number] = tree }
            return tree
        } catch {
            throw Errno(rawValue: error.code.errno)
        }
    }
}
