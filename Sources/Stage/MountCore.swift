// The state of a mount, behind `MountedFileSystem`'s lock, and the work on
// it that touches staged files. Errors here are errnos: this is what the
// kernel gets.

import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An open file or directory.
enum Handle {
    /// `data`: the staged file whose descriptor this handle holds open, if any.
    case file(identity: NodeRef, writable: Bool, append: Bool, data: DataID?)
    /// The entries as of opening; `refresh`: the directory whose entries are
    /// looked up anew when read (nil for the fixed ones of the control directory and session views).
    case directory([DirectoryEntry], refresh: InodeNumber?)
    /// A control file open for writing: what was written so far.
    case control(ControlNode, written: [UInt8])
    /// Text fixed when it was opened (`status`).
    case snapshot([UInt8])
    case sessionFile(session: Int, node: NodeID)
}

extension DirectoryEntry {
    /// Entries `offset...` (at most `limit`) of a listing: "." and ".." (both
    /// `own`), then the children `named` gives for the positions asked.
    static func listing(own: Attributes, from offset: UInt64, limit: Int,
                        children named: (_ window: Range<Int>) throws(Errno) -> [(Name, Attributes)]) throws(Errno) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        for (position, dots) in ([[0x2E], [0x2E, 0x2E]] as [Name]).enumerated() where UInt64(position) >= offset && entries.count < limit {
            entries.append(DirectoryEntry(name: dots, attributes: own, nextOffset: UInt64(position + 1)))
        }
        let first = Int(clamping: max(offset, 2) - 2)
        let wanted = limit - entries.count
        guard wanted > 0 else { return entries }
        let (end, overflow) = first.addingReportingOverflow(wanted)
        for (index, (name, attributes)) in try named(first..<(overflow ? .max : end)).enumerated() {
            entries.append(DirectoryEntry(name: name, attributes: attributes, nextOffset: UInt64(2 + first + index + 1)))
        }
        return entries
    }
}

/// Where a read's bytes come from.
enum ReadPlan {
    case bytes([UInt8])
    case staged(FileDescriptor, length: Int)
    case medium([MediumRange])
}

/// The changes a running commit writes.
struct FrozenChanges {
    var overlay: Overlay
    var data: Set<DataID>
}

struct Core {
    var overlay: Overlay {
        didSet { stagedCountsCache = nil }
    }
    var medium: MediumInfo
    /// Reads the medium's bytes (`NoMedium` until a blank image file exists).
    var reader: any MediumReader
    var staging: StagingArea?
    var inodes = InodeTable()
    var handles: [UInt64: Handle] = [:]
    var nextHandle: UInt64 = 1
    /// Staged files with unjournaled size and time changes (from writes).
    var dirty: Set<UpperID> = []
    /// Descriptors of staged files that open handles use, with how many use
    /// each (a mount may stage far more files than it may keep open).
    var dataDescriptors: [DataID: (descriptor: FileDescriptor, users: Int)] = [:]
    /// Descriptors a handle stopped using while a read may still splice from
    /// them: closed at the next commit or discard, never reused before.
    var retired: [FileDescriptor] = []
    /// Bytes of staged content (kept up to date by every change of it).
    var stagedBytes: UInt64 = 0
    var frozen: FrozenChanges?
    var stagedCountsCache: (added: Int, changed: Int, removed: Int)?
    /// Open nodes that lost their last name (see `prepareRemoval`).
    var orphans: [NodeRef: Attributes] = [:]
    var commit = StatusReport.Commit()
    var notes: [String] = []
    /// Set when the medium behind the mount changed under it (see `MediumWatch`).
    var mediumChange: MediumChange?
    var sessionTrees: [Int: Tree] = [:]
    /// The status text last shown, and since when (see `currentStatus`).
    var status: (text: [UInt8], since: Timestamp)?

    init(overlay: Overlay, medium: MediumInfo, reader: any MediumReader) {
        self.overlay = overlay
        self.medium = medium
        self.reader = reader
    }

    // MARK: References and attributes

    /// The merged-view node of an inode number.
    func ref(_ inode: InodeNumber) throws(Errno) -> NodeRef {
        guard let identity = inodes.identity(of: inode), overlay.exists(identity) else { throw .noSuchFileOrDirectory }
        return identity
    }

    mutating func attributes(of ref: NodeRef) -> Attributes {
        let view = overlay.view(ref)
        let number = inodes.number(for: overlay.identity(overlay.resolve(ref)))
        return Attributes(inode: number, mode: view.mode, nlink: view.nlink, uid: view.metadata.uid, gid: view.metadata.gid,
                          size: view.kind == .symlink ? UInt64(view.target?.count ?? 0) : view.size, rdev: view.rdev,
                          accessTime: view.metadata.accessTime, modificationTime: view.metadata.modificationTime,
                          changeTime: view.metadata.changeTime, isImmutable: view.isBase)
    }

    /// A directory's entries from `offset` on, "." and ".." first.
    mutating func listing(_ inode: InodeNumber, from offset: UInt64 = 0, limit: Int = .max) throws(Errno) -> [DirectoryEntry] {
        let directory = try ref(inode)
        guard overlay.kind(directory) == .directory else { throw .notDirectory }
        let own = attributes(of: directory)
        return try DirectoryEntry.listing(own: own, from: offset, limit: limit) { window in
            overlay.listing(of: directory, window: window).map { ($0.name, attributes(of: $0.ref)) }
        }
    }

    /// A handle on a regular file: on the node it is now, whatever its names become.
    func fileHandle(_ inode: InodeNumber, writable: Bool, append: Bool) throws(Errno) -> Handle {
        let ref = try ref(inode)
        guard overlay.kind(ref) == .regularFile else { throw .isDirectory }
        return .file(identity: overlay.identity(overlay.resolve(ref)), writable: writable, append: append, data: nil)
    }

    mutating func open(_ handle: Handle) -> UInt64 {
        defer { nextHandle += 1 }
        handles[nextHandle] = handle
        return nextHandle
    }

    // MARK: Journal

    /// Added, changed and removed entries, as the next commit would write them
    /// (planning walks the changes: the counts are kept until the overlay
    /// changes, since `isofuse commit` asks several times a second).
    mutating func stagedCounts() -> (added: Int, changed: Int, removed: Int) {
        if let counts = stagedCountsCache { return counts }
        guard let staging else { return (0, 0, 0) }
        let plan = overlay.plannedCommit(dataPath: staging.dataPath)
        stagedCountsCache = (plan.added, plan.changed, plan.removed)
        return stagedCountsCache!
    }

    /// Appends the overlay's new records to the staging journal.
    mutating func journal() throws(Errno) {
        let records = overlay.takeRecords()
        guard let staging else { return }
        // A record of the node as it is now holds its unjournaled size and
        // times too (cp -a's utimensat after its writes): the flush at close
        // would add nothing. (An older record, requeued after a failed append,
        // would not.)
        for case .node(let id, let node) in records where overlay.state.nodes[id] == node { dirty.remove(id) }
        do {
            try staging.append(records)
        } catch {
            // Kept in order for the next append, so the journal never has a gap.
            overlay.requeue(records)
            throw .ioError
        }
    }

    /// Journals the sizes and times writes changed.
    mutating func flushDirty() throws(Errno) {
        for id in dirty { overlay.flush(id) }
        dirty = []
        try journal()
    }

    mutating func sync(_ handle: UInt64) throws(Errno) {
        try flushDirty()
        staging?.sync()
        if let descriptor = try handleDescriptor(handle) { _ = Glibc.fsync(descriptor.rawValue) }
    }

    /// Before a hard-linked file of the medium changes, it gets a staged copy:
    /// the commit then adds it under each name from that one copy (a kept
    /// medium node can have one place only).
    mutating func stageIfHardLinked(_ ref: NodeRef, at now: Timestamp) throws(Errno) {
        let view = overlay.view(ref)
        guard view.kind == .regularFile, view.nlink > 1 else { return }
        if case .staged? = overlay.upperNode(ref)?.content { return }
        try stageContent(of: ref, truncate: false, at: now)
    }

    /// Sets or removes an xattr (or ACL) and journals it.
    mutating func changeExtendedAttribute(_ ref: NodeRef, _ name: String, _ value: [UInt8]?, at now: Timestamp) throws(Errno) {
        try stageIfHardLinked(ref, at: now)
        var metadata = overlay.view(ref).metadata
        try metadata.setExtendedAttribute(name, value)   // validates before anything is staged
        metadata.changeTime = now
        overlay.update(ref) { $0.metadata = metadata }
        try journal()
    }

    // MARK: Staged data

    func dataPath(_ id: DataID) -> FilePath {
        staging!.dataPath(id)
    }

    mutating func createDataFile(_ id: DataID) throws(Errno) {
        do {
            try FileDescriptor.open(dataPath(id), .readWrite, options: [.create, .truncate, .closeOnExec],
                                    permissions: .ownerReadWrite).close()
        } catch {
            throw error as? Errno ?? .ioError
        }
    }

    /// Runs `body` with a descriptor of a staged file: a handle's, or one opened for the call.
    func withData<R>(_ id: DataID, _ body: (FileDescriptor) throws(Errno) -> R) throws(Errno) -> R {
        if let open = dataDescriptors[id] { return try body(open.descriptor) }
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(dataPath(id), .readWrite, options: [.closeOnExec])
        } catch {
            throw error as? Errno ?? .ioError
        }
        defer { try? descriptor.close() }
        return try body(descriptor)
    }

    /// The descriptor of the staged file a file handle's node has now (nil for
    /// medium content), kept open for the handle until it is released.
    mutating func handleDescriptor(_ handle: UInt64) throws(Errno) -> FileDescriptor? {
        guard case .file(let identity, let writable, let append, let held)? = handles[handle] else { throw .badFileDescriptor }
        guard case .staged(let current)? = overlay.upperNode(identity)?.content else { return nil }
        if held != current {
            let descriptor: FileDescriptor
            if let open = dataDescriptors[current] {
                descriptor = open.descriptor
            } else {
                do {
                    descriptor = try FileDescriptor.open(dataPath(current), .readWrite, options: [.closeOnExec])
                } catch {
                    throw error as? Errno ?? .ioError
                }
            }
            dataDescriptors[current] = (descriptor, (dataDescriptors[current]?.users ?? 0) + 1)
            if let held { releaseData(held, closing: false) }
            handles[handle] = .file(identity: identity, writable: writable, append: append, data: current)
        }
        return dataDescriptors[current]!.descriptor
    }

    /// A handle stops using a staged file's descriptor. Closed when none uses
    /// it; with `closing: false` (a read may still splice from it) retired instead.
    mutating func releaseData(_ id: DataID, closing: Bool = true) {
        guard let open = dataDescriptors[id] else { return }
        if open.users > 1 {
            dataDescriptors[id] = (open.descriptor, open.users - 1)
            return
        }
        dataDescriptors[id] = nil
        if closing { try? open.descriptor.close() } else { retired.append(open.descriptor) }
    }

    /// The staged file a handle holds open, when the handle's node lost its
    /// last name (unlink(2) of an open file): POSIX keeps it readable and
    /// writable through the handle until it is closed. (A node that is no
    /// longer staged is not lost: a commit made it a medium file.)
    func orphanDescriptor(identity: NodeRef, held: DataID?) -> FileDescriptor? {
        guard orphans[identity] != nil, let held else { return nil }
        return dataDescriptors[held]?.descriptor
    }

    /// Closes a released handle's descriptor.
    mutating func releaseHandle(_ handle: UInt64) {
        guard case .file(let identity, _, _, let data)? = handles[handle] else {
            handles[handle] = nil
            return
        }
        if let data { releaseData(data) }
        handles[handle] = nil
        if !isOpen(identity) { orphans[identity] = nil }
    }

    private func isOpen(_ identity: NodeRef) -> Bool {
        handles.values.contains { if case .file(identity, _, _, _) = $0 { true } else { false } }
    }

    /// Before a name goes: what `stat` of the node must still say if this was
    /// its last name and it is open (fstat(2) of an unlinked file).
    mutating func prepareRemoval(of ref: NodeRef?) -> (identity: NodeRef, attributes: Attributes)? {
        guard let ref else { return nil }
        let identity = overlay.identity(overlay.resolve(ref))
        guard isOpen(identity) else { return nil }
        var attributes = attributes(of: ref)
        attributes.nlink = 0
        attributes.isImmutable = false
        return (identity, attributes)
    }

    /// After a removal: keeps the attributes of an open node that lost its last name.
    mutating func finishRemoval(_ prepared: (identity: NodeRef, attributes: Attributes)?, dropped: UpperNode?) {
        guard let prepared, dropped != nil else { return }
        orphans[prepared.identity] = prepared.attributes
    }

    /// The attributes of an open node that lost its last name, with its size now.
    func orphanAttributes(_ inode: InodeNumber) -> Attributes? {
        guard let identity = inodes.identity(of: inode), var attributes = orphans[identity] else { return nil }
        // Reads and writes use pread/pwrite: moving the descriptor's offset is harmless.
        for case .file(identity, _, _, let held?) in handles.values {
            if let open = dataDescriptors[held], let end = try? open.descriptor.seek(offset: 0, from: .end) {
                attributes.size = UInt64(end)
            }
        }
        return attributes
    }

    /// Makes a file's content a staged file of its own: copies medium bytes
    /// (unless truncating), or copies a staged file a running commit is reading.
    mutating func stageContent(of ref: NodeRef, truncate: Bool, at now: Timestamp) throws(Errno) {
        let view = overlay.view(ref)
        let content = overlay.upperNode(ref)?.content
        let newSize = truncate ? 0 : view.size
        let data: DataID
        switch content {
        case .staged(let current)? where frozen?.data.contains(current) != true:
            return
        case .staged(let current)?:
            data = overlay.allocateDataID()
            try createDataFile(data)
            try copy(from: .staged(current), size: newSize, to: data)
        default:
            try checkSpace(adding: newSize, entries: 0)
            data = overlay.allocateDataID()
            try createDataFile(data)
            try copy(from: content ?? .base(baseNode(of: ref)), size: newSize, to: data)
            stagedBytes += newSize
        }
        overlay.setContent(ref, .staged(data), size: newSize, at: view.metadata.modificationTime)
        try journal()
    }

    private func baseNode(of ref: NodeRef) -> NodeID {
        guard case .base(let id) = overlay.resolve(ref) else { preconditionFailure("a staged file without content") }
        return id
    }

    /// Copies `size` bytes of content into a new data file.
    private func copy(from content: FileContent, size: UInt64, to data: DataID) throws(Errno) {
        try withData(data) { target throws(Errno) in try copy(from: content, size: size, to: target) }
    }

    private func copy(from content: FileContent, size: UInt64, to target: FileDescriptor) throws(Errno) {
        let chunk = 1 << 20
        var offset: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while offset < size {
            let want = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(UInt64(chunk), size - offset))])
            let n: Int
            do {
                switch content {
                case .base(let node):
                    n = try reader.read(node, of: overlay.base, at: offset, into: want)
                case .staged(let source):
                    n = try withData(source) { descriptor throws(Errno) in
                        do {
                            return try descriptor.read(fromAbsoluteOffset: Int64(offset), into: want)
                        } catch {
                            throw error as? Errno ?? .ioError
                        }
                    }
                }
                guard n > 0 else { break }
                _ = try target.writeAll(toAbsoluteOffset: Int64(offset), UnsafeRawBufferPointer(rebasing: want[..<n]))
            } catch let error as Errno {
                throw error
            } catch {
                throw .ioError
            }
            offset += UInt64(n)
        }
    }

    /// truncate(2).
    mutating func resize(_ ref: NodeRef, to size: UInt64, at now: Timestamp) throws(Errno) {
        try stageContent(of: ref, truncate: size == 0, at: now)
        guard let node = overlay.upperNode(ref), case .staged(let data)? = node.content else { return }
        if size > node.size { try checkSpace(adding: size - node.size, entries: 0) }
        try withData(data) { descriptor throws(Errno) in
            do {
                try descriptor.resize(to: Int64(size))
            } catch {
                throw error as? Errno ?? .ioError
            }
        }
        stagedBytes = stagedBytes - min(stagedBytes, node.size) + size
        overlay.update(ref) { node in
            node.size = size
            node.metadata.modificationTime = now
            node.metadata.changeTime = now
        }
        try journal()
    }

    mutating func write(_ handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer,
                        at now: Timestamp) throws(Errno) -> Int {
        guard case .file(let identity, true, let append, let held)? = handles[handle] else { throw .badFileDescriptor }
        if let orphan = orphanDescriptor(identity: identity, held: held) {
            // Unlinked while open: the bytes stay the writer's, and go nowhere.
            do {
                let size = try orphan.seek(offset: 0, from: .end)
                return try orphan.writeAll(toAbsoluteOffset: append ? size : Int64(offset), data)
            } catch {
                throw error as? Errno ?? .ioError
            }
        }
        guard overlay.exists(identity) else { throw .staleNFSFileHandle }
        try stageContent(of: identity, truncate: false, at: now)
        guard case .upper(let id) = overlay.resolve(identity), let node = overlay.state.nodes[id],
              case .staged? = node.content else { throw .ioError }
        let start = append ? node.size : offset
        let end = start + UInt64(data.count)
        let growth = end > node.size ? end - node.size : 0
        try checkSpace(adding: growth, entries: 0)
        guard let descriptor = try handleDescriptor(handle) else { throw .ioError }
        let written: Int
        do {
            written = try descriptor.writeAll(toAbsoluteOffset: Int64(start), data)
        } catch {
            throw error as? Errno ?? .ioError
        }
        stagedBytes += growth
        overlay.update(identity, journaled: false) { node in
            node.size = max(node.size, end)
            node.metadata.modificationTime = now
            node.metadata.changeTime = now
        }
        dirty.insert(id)
        return written
    }

    /// A removed file's bytes no longer count (its data file goes at the next clean-up).
    mutating func forgetData(of removed: UpperNode?) {
        guard let removed, case .staged? = removed.content else { return }
        stagedBytes -= min(stagedBytes, removed.size)
    }

    /// `handle`: its number, or nil for a handle the kernel did not ask for (see `FileSystemOperations.open`).
    mutating func readPlan(_ opened: Handle, _ handle: UInt64?, offset: UInt64, size: Int) throws(Errno) -> ReadPlan {
        switch opened {
        case .snapshot(let bytes):
            let start = Int(min(offset, UInt64(bytes.count)))
            return .bytes(Array(bytes[start..<min(bytes.count, start + size)]))
        case .sessionFile(let session, let node):
            // The newest session's view is the base tree (see `sessionTree`), not a cached copy.
            guard let tree = sessionTrees[session] ?? (session == medium.sessions.count ? overlay.base : nil) else {
                throw .badFileDescriptor
            }
            return try mediumPlan(tree, node, offset: offset, size: size)
        case .file(let identity, _, _, let held):
            if let orphan = orphanDescriptor(identity: identity, held: held) {
                let fileSize = UInt64((try? orphan.seek(offset: 0, from: .end)) ?? 0)
                return .staged(orphan, length: offset < fileSize ? Int(min(UInt64(size), fileSize - offset)) : 0)
            }
            guard overlay.exists(identity) else { throw .staleNFSFileHandle }
            switch overlay.resolve(identity) {
            case .base(let id):
                return try mediumPlan(overlay.base, id, offset: offset, size: size)
            case .upper(let id):
                let node = overlay.state.nodes[id]!
                switch node.content {
                case .base(let baseID)?:
                    return try mediumPlan(overlay.base, baseID, offset: offset, size: size)
                case .staged?:
                    let length = offset < node.size ? Int(min(UInt64(size), node.size - offset)) : 0
                    guard let handle, let descriptor = try handleDescriptor(handle) else { throw .ioError }
                    return .staged(descriptor, length: length)
                case nil:
                    throw .isDirectory
                }
            }
        case .directory, .control:
            throw .badFileDescriptor
        }
    }

    private func mediumPlan(_ tree: Tree, _ node: NodeID, offset: UInt64, size: Int) throws(Errno) -> ReadPlan {
        // zisofs files would need decompressing; their raw extents are not the content.
        guard !tree.info(of: node).isFiltered else { throw .ioError }
        do throws(IsofuseError) {
            return .medium(try tree.ranges(of: node, offset: offset, length: size))
        } catch {
            throw Errno(rawValue: error.code.errno)
        }
    }

    // MARK: Space

    /// The medium's free space, what the next session will take of it, and what is left.
    func space() -> (predicted: UInt64, available: UInt64) {
        let entries = UInt64(overlay.base.nodeCount + overlay.state.nodes.count)
        // Per entry ~256 bytes of directory records with Rock Ridge and AAIP,
        // 16 bytes of MD5 array; the session head and padding about 128 KiB.
        let tree = entries * 256 + entries * 16 + 128 * 1024
        let predicted = (stagedBytes + tree + 2047) / 2048 * 2048
        return (predicted, medium.freeBytes > predicted ? medium.freeBytes - predicted : 0)
    }

    /// ENOSPC now rather than at burn time.
    func checkSpace(adding bytes: UInt64, entries: Int) throws(Errno) {
        let space = space()
        guard space.available >= bytes + UInt64(entries) * 272 else { throw .noSpace }
    }

    /// Recounts the staged bytes (after the state was replaced).
    mutating func recountStagedBytes() {
        stagedBytes = overlay.state.nodes.values.reduce(0) { sum, node in
            if case .staged? = node.content { return sum + node.size }
            return sum
        }
    }

    /// Data files nothing refers to (open handles keep theirs readable).
    /// Listed under the lock and removed outside it (`StagingArea.remove`)
    /// where there may be many: ext4 takes seconds to free the blocks and
    /// cached pages of tens of thousands of files.
    func garbage() -> [FilePath] {
        var keep = overlay.state.dataFiles
        if let frozen { keep.formUnion(frozen.data) }
        return staging?.unreferencedData(keeping: keep) ?? []
    }

    /// Removes the garbage now.
    func collectGarbage() {
        StagingArea.remove(garbage())
    }

    // MARK: After a commit

    /// Inode numbers, handles and unlinked open nodes follow their nodes into
    /// the rebased overlay. A node the commit dropped (removed or replaced
    /// before it) has no place there, and its old base index names another
    /// node of the new session: it gets an identity no node has, so that its
    /// number and handles fail (ESTALE, ENOENT) instead of reaching that node.
    /// A read-only handle on such a medium file reads it on, from `session`.
    mutating func carryOver(_ rebase: Rebase, from old: Overlay, session: Int) {
        var moved: [NodeRef: NodeRef] = [:]
        func translate(_ identity: NodeRef) -> NodeRef {
            if let known = moved[identity] { return known }
            let new = rebase.translate(identity).map { overlay.identity(overlay.resolve($0)) } ?? overlay.retiredIdentity()
            moved[identity] = new
            return new
        }
        for identity in inodes.allIdentities { _ = translate(identity) }
        inodes.translate(moved)
        var keptTrees = Set<Int>()
        for (number, handle) in handles {
            switch handle {
            case .file(let identity, let writable, let append, let data):
                if !writable, data == nil, rebase.translate(identity) == nil, case .base(let node) = old.resolve(identity) {
                    handles[number] = .sessionFile(session: session, node: node)
                    keptTrees.insert(session)
                } else {
                    handles[number] = .file(identity: translate(identity), writable: writable, append: append, data: data)
                }
            case .sessionFile(let session, _):
                keptTrees.insert(session)
            default:
                break
            }
        }
        orphans = Dictionary(uniqueKeysWithValues: orphans.map { (translate($0.key), $0.value) })
        // Session views are loaded anew, except those open handles read.
        sessionTrees = sessionTrees.filter { keptTrees.contains($0.key) }
        if keptTrees.contains(session) { sessionTrees[session] = old.base }
    }

    /// Closes descriptors retired at the previous clean-up.
    mutating func closeRetired() {
        for descriptor in retired { try? descriptor.close() }
        retired = []
    }
}
