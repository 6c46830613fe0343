// The mounted filesystem: the merged view of the newest session and the
// staged changes, the `.isofuse` control directory, and the commit that
// burns the changes.
//
// Concurrency: all state is in one `Mutex<Core>`; every operation takes it
// briefly. File data moves outside it: reads return descriptor ranges the
// glue splices from (the image, or a staged file), writes go to staged files
// with pwrite. A commit runs on its own thread; it takes the lock only to
// freeze the changes, to report progress and to switch to the new session.

import CLinux
import Dispatch
import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

public final class MountedFileSystem: FileSystemOperations {
    let options: MountOptions
    let drive: Drive
    let owner: (uid: UInt32, gid: UInt32)
    let core: VisibleMutex<Core>
    let invalidator = VisibleMutex<KernelCacheInvalidator?>(nil)
    let listingDemand = ListingDemand()
    /// Runs commits and cache invalidations, one at a time; shutdown waits for it.
    let background = DispatchQueue(label: "isofuse.background")

    public init(options: MountOptions, environment: [String: String]) throws(IsofuseError) {
        self.options = options
        drive = try Drive(options.drive, capacity: options.capacity)
        let medium = try drive.medium()
        let base = try drive.loadTree(session: options.session)
        owner = (getuid(), getgid())
        supportsACLs = Self.takesWrites(options) || base.hasACLs
        var core = Core(overlay: Overlay(base: base), medium: medium, reader: try Self.reader(for: drive, medium: medium))
        if !Self.takesWrites(options) { core.inodes = InodeTable(fixedNodeCount: base.nodeCount) }
        if Self.takesWrites(options) && (medium.status == .blank || medium.status == .appendable) {
            let directory = if let staging = options.staging {
                staging
            } else {
                try StagingLocation.defaultDirectory(for: medium.identity, environment: environment)
            }
            try core.openStaging(directory, drive: drive)
        } else if medium.status == .rom || medium.status == .closed {
            core.notes.append("the medium (\(medium.profile.name), \(medium.status.rawValue)) cannot be written: the mount is read-only")
        }
        self.core = VisibleMutex(core)
    }

    /// A blank image file may not exist yet; it has nothing to read anyway.
    static func reader(for drive: Drive, medium: MediumInfo) throws(IsofuseError) -> any MediumReader {
        if medium.sessions.isEmpty, drive.address.kind == .image, access(drive.address.path.string, F_OK) != 0 {
            return NoMedium()
        }
        return try drive.makeReader()
    }

    public func setKernelCacheInvalidator(_ invalidate: @escaping KernelCacheInvalidator) {
        invalidator.withLock { $0 = invalidate }
    }

    /// Whether changes can be staged: not a session view, not read-only, a medium that takes sessions.
    var isWritable: Bool { Self.takesWrites(options) }

    static func takesWrites(_ options: MountOptions) -> Bool {
        options.session == nil && !options.readOnly
    }

    /// Whether POSIX ACLs can exist on the mount: the kernel then checks them
    /// and caches them per inode, but must ask for every file it has not
    /// cached, if only to learn that it has none (a cold `ls -lR` of 50,000
    /// files: 50,000 requests). A mount that takes no writes, of a session
    /// without any ACL, answers them with "not supported" instead, which
    /// `ls` remembers for the whole filesystem. (The session views in
    /// `.isofuse/sessions` of such a mount show no ACLs either; mount that
    /// session with `--session N` to see them.)
    public let supportsACLs: Bool

    // MARK: Nodes

    public func lookup(_ parent: InodeNumber, _ name: [UInt8]) throws(Errno) -> Attributes {
        let found = if let control = try controlLookup(parent, name) {
            control
        } else {
            try core.withLock { core throws(Errno) in
                let directory = try core.ref(parent)
                guard core.overlay.kind(directory) == .directory else { throw .notDirectory }
                guard let child = core.overlay.lookup(name, in: directory) else { throw .noSuchFileOrDirectory }
                let attributes = core.attributes(of: child)
                core.inodes.retain(attributes.inode)
                return attributes
            }
        }
        listingDemand.noteLookup(of: found)
        return found
    }

    public func retain(_ inode: InodeNumber) {
        core.withLock { $0.inodes.retain(inode) }
    }

    public func forget(_ inode: InodeNumber, lookups: UInt64) {
        core.withLock { $0.inodes.forget(inode, count: lookups) }
    }

    public func attributes(of inode: InodeNumber) throws(Errno) -> Attributes {
        if let control = try controlAttributes(inode) { return control }
        return try core.withLock { core throws(Errno) in
            if let orphan = core.orphanAttributes(inode) { return orphan }
            return core.attributes(of: try core.ref(inode))
        }
    }

    public func setAttributes(of inode: InodeNumber, _ changes: AttributeChanges, caller: Caller) throws(Errno) -> Attributes {
        if let control = try controlSetAttributes(inode, changes) { return control }
        try checkWritable()
        let now = Timestamp.now()
        return try core.withLock { core throws(Errno) in
            let ref = try core.ref(inode)
            try core.stageIfHardLinked(ref, at: now)
            if let size = changes.size {
                guard core.overlay.kind(ref) == .regularFile else { throw .isDirectory }
                try core.resize(ref, to: size, at: now)
            }
            core.overlay.update(ref) { node in
                if let mode = changes.mode { node.metadata.setPermissions(mode) }
                if let uid = changes.uid { node.metadata.uid = uid }
                if let gid = changes.gid { node.metadata.gid = gid }
                if let time = changes.accessTime { node.metadata.accessTime = time.resolved(now) }
                if let time = changes.modificationTime { node.metadata.modificationTime = time.resolved(now) }
                node.metadata.changeTime = now
            }
            try core.journal()
            return core.attributes(of: ref)
        }
    }

    public func readLink(_ inode: InodeNumber) throws(Errno) -> [UInt8] {
        if let target = controlReadLink(inode) { return target }
        return try core.withLock { core throws(Errno) in
            let view = core.overlay.view(try core.ref(inode))
            guard view.kind == .symlink, let target = view.target else { throw .invalidArgument }
            return target
        }
    }

    public func makeNode(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, rdev: UInt64, caller: Caller) throws(Errno) -> Attributes {
        let type = mode & UInt32(S_IFMT)
        let kind: NodeKind
        switch type {
        case UInt32(S_IFREG): kind = .regularFile
        case UInt32(S_IFIFO): kind = .fifo
        default: throw .notPermitted   // devices and sockets are not archived
        }
        return try create(kind, in: parent, name, mode: mode, caller: caller)
    }

    public func makeDirectory(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, caller: Caller) throws(Errno) -> Attributes {
        try create(.directory, in: parent, name, mode: mode, caller: caller)
    }

    public func makeSymlink(in parent: InodeNumber, _ name: [UInt8], target: [UInt8], caller: Caller) throws(Errno) -> Attributes {
        guard !target.isEmpty, target.count <= 4095 else { throw .fileNameTooLong }
        return try create(.symlink, in: parent, name, mode: 0o777, caller: caller, target: target)
    }

    public func link(_ inode: InodeNumber, into parent: InodeNumber, _ name: [UInt8]) throws(Errno) -> Attributes {
        try checkNotControl(inode)
        try checkWritable(parent)
        let now = Timestamp.now()
        return try core.withLock { core throws(Errno) in
            let ref = try core.ref(inode)
            // A second name of a file on the medium gets its own copy of the
            // bytes: cloning medium data would make the commit read the medium while writing it.
            if core.overlay.kind(ref) == .regularFile { try core.stageContent(of: ref, truncate: false, at: now) }
            try core.overlay.link(ref, named: name, in: try core.ref(parent), at: now)
            try core.journal()
            let attributes = core.attributes(of: ref)
            core.inodes.retain(attributes.inode)
            return attributes
        }
    }

    public func unlink(in parent: InodeNumber, _ name: [UInt8]) throws(Errno) {
        try remove(name, in: parent, directory: false)
    }

    public func removeDirectory(in parent: InodeNumber, _ name: [UInt8]) throws(Errno) {
        try remove(name, in: parent, directory: true)
    }

    public func rename(in parent: InodeNumber, _ name: [UInt8], to newParent: InodeNumber, _ newName: [UInt8],
                       mode: RenameMode) throws(Errno) {
        try checkWritable(parent)
        try checkWritable(newParent)
        let now = Timestamp.now()
        try core.withLock { core throws(Errno) in
            let target = try core.ref(newParent)
            let prepared = mode == .replace ? core.prepareRemoval(of: core.overlay.lookup(newName, in: target)) : nil
            let replaced = try core.overlay.rename(name, in: try core.ref(parent), to: newName, in: target, mode: mode, at: now)
            try core.journal()
            core.forgetData(of: replaced)
            core.finishRemoval(prepared, dropped: replaced)
        }
    }

    // MARK: Files

    public func open(_ inode: InodeNumber, flags: Int32, caller: Caller) throws(Errno) -> OpenedFile {
        guard isWritable else { throw .noFunction }
        if let control = try controlOpen(inode, flags: flags) { return control }
        let writing = flags & O_ACCMODE != O_RDONLY
        if writing || flags & O_TRUNC != 0 { try checkWritable() }
        let now = Timestamp.now()
        let opened = try core.withLock { core throws(Errno) in
            let ref = try core.ref(inode)
            guard core.overlay.kind(ref) == .regularFile else { throw .isDirectory }
            if flags & O_TRUNC != 0 && writing { try core.resize(ref, to: 0, at: now) }
            let immutable = core.overlay.view(ref).isBase
            // Made after the truncation, which may stage the file.
            let handle = core.open(try core.fileHandle(inode, writable: writing, append: flags & O_APPEND != 0))
            _ = try core.handleDescriptor(handle)   // a staged file stays readable through the handle if unlinked
            return OpenedFile(handle: handle, keepCache: immutable, directIO: false, flushesOnClose: writing)
        }
        if opened.keepCache {
            do throws(Errno) {
                try checkMediumUnchanged()
            } catch {
                release(opened.handle)
                throw error
            }
        }
        return opened
    }

    public func create(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, flags: Int32, caller: Caller) throws(Errno) -> (Attributes, OpenedFile) {
        let attributes = try create(.regularFile, in: parent, name, mode: mode, caller: caller)
        let handle = try core.withLock { core throws(Errno) in
            let handle = core.open(.file(identity: core.inodes.identity(of: attributes.inode)!, writable: true,
                                         append: flags & O_APPEND != 0, data: nil))
            _ = try core.handleDescriptor(handle)
            return handle
        }
        return (attributes, OpenedFile(handle: handle, keepCache: false, directIO: false))
    }

    public func read(_ inode: InodeNumber, handle: UInt64, offset: UInt64, size: Int) throws(Errno) -> [ReadSegment] {
        let unopened = handle == unopenedHandle ? try handleUnopened(inode) : nil
        let (plan, reader) = try core.withLock { core throws(Errno) in
            guard let opened = unopened ?? core.handles[handle] else { throw .badFileDescriptor }
            return (try core.readPlan(opened, unopened == nil ? handle : nil, offset: offset, size: size), core.reader)
        }
        switch plan {
        case .bytes(let bytes):
            return [.bytes(bytes)]
        case .staged(let descriptor, let length):
            return length > 0 ? [.file(descriptor, offset: offset, length: length)] : []
        case .medium(let ranges):
            try checkMediumUnchanged()
            return try ranges.map { range throws(Errno) in
                if let image = reader as? ImageFileReader {
                    do throws(IsofuseError) {
                        try image.checkReadable(range)
                    } catch {
                        throw Errno(rawValue: error.code.errno)
                    }
                    return .file(image.descriptor, offset: range.byteOffset, length: range.length)
                }
                // Read straight into the reply's array: a drive's reads are copies already.
                var failure: IsofuseError?
                let bytes = [UInt8](unsafeUninitializedCapacity: range.length) { buffer, count in
                    do throws(IsofuseError) {
                        count = try reader.readFully(into: UnsafeMutableRawBufferPointer(buffer), at: range.byteOffset)
                    } catch {
                        failure = error
                        count = 0
                    }
                }
                if let failure { throw Errno(rawValue: failure.code.errno) }
                return .bytes(bytes)
            }
        }
    }

    public func write(_ handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int {
        if let written = try controlWrite(handle, data: data) { return written }
        let now = Timestamp.now()
        let buffer = CallerBuffer(bytes: data)
        return try core.withLock { core throws(Errno) in
            guard core.staging?.reserveJournalRoom(for: .change) != false else { throw .noSpace }
            return try core.write(handle, offset: offset, data: buffer.bytes, at: now)
        }
    }

    public func flush(_ handle: UInt64) throws(Errno) {
        // Files the kernel opened by itself have nothing to flush; ENOSYS tells it to stop asking.
        guard handle != unopenedHandle else { throw .noFunction }
        try core.withLock { core throws(Errno) in try core.journal() }
    }

    public func fsync(_ handle: UInt64, dataOnly: Bool) throws(Errno) {
        try core.withLock { core throws(Errno) in try core.sync(handle) }
    }

    public func release(_ handle: UInt64) {
        if controlRelease(handle) { return }
        core.withLock { core in
            core.releaseHandle(handle)
            try? core.flushDirty()
        }
    }

    /// The handle a read of a file the kernel opened by itself stands for.
    private func handleUnopened(_ inode: InodeNumber) throws(Errno) -> Handle {
        if let control = try controlHandle(inode, writing: false) { return control }
        return try core.withLock { core throws(Errno) in try core.fileHandle(inode, writable: false, append: false) }
    }

    // MARK: Directories

    public func openDirectory(_ inode: InodeNumber) throws(Errno) -> OpenedFile {
        guard isWritable else { throw .noFunction }
        let handle: UInt64
        var immutable = false
        if let control = try controlListing(inode) {
            handle = core.withLock { $0.open(.directory(control, refresh: nil)) }
        } else {
            (handle, immutable) = try core.withLock { core throws(Errno) in
                let entries = try core.listing(inode)
                return (core.open(.directory(entries, refresh: inode)), entries.first?.attributes.isImmutable ?? false)
            }
        }
        // A committed directory's listing cannot change behind the kernel's back
        // (a change made through the kernel makes it drop the cached listing).
        return OpenedFile(handle: handle, keepCache: immutable, directIO: false)
    }

    /// Each name is looked up again: readdirplus puts its node in the kernel's
    /// cache, and a node renamed away or replaced since the directory was
    /// opened would be cached under a name it no longer has. (The kernel keeps
    /// the directory locked while it reads it, so what this returns stays true
    /// until the kernel has it.)
    public func readDirectory(_ inode: InodeNumber, handle: UInt64, from offset: UInt64, limit: Int,
                              retaining: Bool) throws(Errno) -> [DirectoryEntry] {
        if handle == unopenedHandle {
            // Nothing changes under a mount that takes no writes: positions in the listing are stable.
            let control = try controlListing(inode, from: offset, limit: limit)
            return try core.withLock { core throws(Errno) in
                let entries = if let control { control } else { try core.listing(inode, from: offset, limit: limit) }
                return entries.map { entry in handOut(entry, retaining: retaining, &core) }
            }
        }
        return try core.withLock { core throws(Errno) in
            guard case .directory(let entries, let refresh)? = core.handles[handle] else { throw .badFileDescriptor }
            guard offset < entries.count else { return [] }
            let directory = refresh.flatMap { try? core.ref($0) }
            var result: [DirectoryEntry] = []
            for var entry in entries[Int(offset)...] where result.count < limit {
                if refresh != nil && !entry.isDot {
                    guard let directory, let child = core.overlay.lookup(entry.name, in: directory) else { continue }
                    entry.attributes = core.attributes(of: child)
                }
                result.append(handOut(entry, retaining: retaining, &core))
            }
            return result
        }
    }

    /// An entry as readdir(plus) hands it out: with its node, counted, if that is wanted.
    private func handOut(_ entry: DirectoryEntry, retaining: Bool, _ core: inout Core) -> DirectoryEntry {
        var entry = entry
        entry.carriesNode = retaining && !entry.isDot && listingDemand.wantsNode(of: entry)
        if entry.carriesNode { core.inodes.retain(entry.attributes.inode) }
        return entry
    }

    public func releaseDirectory(_ handle: UInt64) {
        core.withLock { $0.handles[handle] = nil }
    }

    public func statistics() -> FileSystemStatistics {
        core.withLock { core in
            let space = core.space()
            let blockSize: UInt64 = 2048
            return FileSystemStatistics(blockSize: UInt32(blockSize),
                                        blocks: (UInt64(core.medium.nextWritableBlock) * blockSize + core.medium.freeBytes) / blockSize,
                                        freeBlocks: space.available / blockSize,
                                        files: UInt64(core.overlay.base.nodeCount + core.overlay.state.nodes.count),
                                        freeFiles: 1 << 32, nameMax: 255)
        }
    }

    // MARK: Extended attributes

    /// SELinux labels belong to the host's policy, not to an archive: like
    /// the kernel's isofs, isofuse neither keeps nor serves them. Answering
    /// "not supported" also lets `ls -l` stop asking (it remembers that per
    /// filesystem), which halves its requests.
    static let hostLabelName = "security.selinux"

    /// Names answered with "not supported": SELinux labels, and ACLs where the mount has none (`supportsACLs`).
    func isUnsupported(_ name: String) -> Bool {
        name == Self.hostLabelName || (!supportsACLs && (name == PosixACL.accessName || name == PosixACL.defaultName))
    }

    public func setExtendedAttribute(_ inode: InodeNumber, _ name: String, _ value: [UInt8], flags: Int32) throws(Errno) {
        guard !isUnsupported(name) else { throw .notSupported }
        try checkNotControl(inode)
        guard !name.hasPrefix("isofs.") else { throw .notPermitted }   // libisofs' own
        try checkWritable()
        let now = Timestamp.now()
        try core.withLock { core throws(Errno) in
            let ref = try core.ref(inode)
            let exists = core.overlay.view(ref).metadata.extendedAttributes[name] != nil
            if flags & Int32(XATTR_CREATE) != 0 && exists { throw .fileExists }
            if flags & Int32(XATTR_REPLACE) != 0 && !exists { throw .noData }
            try core.changeExtendedAttribute(ref, name, value, at: now)
        }
    }

    public func extendedAttribute(_ inode: InodeNumber, _ name: String) throws(Errno) -> [UInt8] {
        guard !isUnsupported(name) else { throw .notSupported }
        if let control = try controlExtendedAttribute(inode, name) { return control }
        return try core.withLock { core throws(Errno) in
            guard let value = core.overlay.view(try core.ref(inode)).metadata.extendedAttributes[name] else { throw .noData }
            return value
        }
    }

    public func extendedAttributeNames(_ inode: InodeNumber) throws(Errno) -> [String] {
        if let names = try controlExtendedAttributeNames(inode) { return names.filter { !isUnsupported($0) } }
        return try core.withLock { core throws(Errno) in
            core.overlay.view(try core.ref(inode)).metadata.extendedAttributes.keys.filter { !isUnsupported($0) }.sorted()
        }
    }

    public func removeExtendedAttribute(_ inode: InodeNumber, _ name: String) throws(Errno) {
        guard !isUnsupported(name) else { throw .notSupported }
        try checkNotControl(inode)
        try checkWritable()
        let now = Timestamp.now()
        try core.withLock { core throws(Errno) in
            let ref = try core.ref(inode)
            guard core.overlay.view(ref).metadata.extendedAttributes[name] != nil else { throw .noData }
            try core.changeExtendedAttribute(ref, name, nil, at: now)
        }
    }

    public func shutdown() {
        background.sync {}
        core.withLock { core in
            try? core.flushDirty()
            core.staging?.sync()
            core.staging = nil   // unlocks the staging directory for the next mount
        }
    }

    // MARK: Helpers

    private func create(_ kind: NodeKind, in parent: InodeNumber, _ name: [UInt8], mode: UInt32, caller: Caller,
                        target: Name? = nil) throws(Errno) -> Attributes {
        try checkWritable(parent)
        let now = Timestamp.now()
        return try core.withLock { core throws(Errno) in
            let directory = try core.ref(parent)
            let parentView = core.overlay.view(directory)
            // A setgid directory gives its group to new nodes, and its setgid bit to new directories.
            let inheritsGroup = parentView.metadata.permissions & UInt32(S_ISGID) != 0
            var (permissions, acl) = parentView.metadata.inheritedACL(
                for: kind, permissions: kind == .symlink ? 0o777 : mode & 0o7777, umask: kind == .symlink ? 0 : caller.umask)
            if inheritsGroup && kind == .directory { permissions |= UInt32(S_ISGID) }
            var node = UpperNode(kind: kind, metadata: Metadata(
                permissions: permissions, uid: caller.uid, gid: inheritsGroup ? parentView.metadata.gid : caller.gid,
                accessTime: now, modificationTime: now, changeTime: now, acl: acl), target: target)
            if kind == .regularFile {
                let data = core.overlay.allocateDataID()
                try core.createDataFile(data)
                node.content = .staged(data)
            }
            try core.checkSpace(adding: 0, entries: 1)
            let id = try core.overlay.create(node, named: name, in: directory, at: now)
            try core.journal()
            let attributes = core.attributes(of: .upper(id))
            core.inodes.retain(attributes.inode)
            return attributes
        }
    }

    private func remove(_ name: [UInt8], in parent: InodeNumber, directory: Bool) throws(Errno) {
        try checkWritable(parent, freeing: true)
        let now = Timestamp.now()
        try core.withLock { core throws(Errno) in
            let directoryRef = try core.ref(parent)
            let prepared = core.prepareRemoval(of: core.overlay.lookup(name, in: directoryRef))
            let removed = try core.overlay.remove(name, in: directoryRef, directory: directory, at: now)
            try core.journal()
            core.forgetData(of: removed)
            core.finishRemoval(prepared, dropped: removed)
        }
    }

    /// `freeing`: a removal, whose small record may use the last of the journal's room (it frees room).
    func checkWritable(_ parent: InodeNumber? = nil, freeing: Bool = false) throws(Errno) {
        if let parent, isControl(parent) { throw .notPermitted }
        guard isWritable else { throw .readOnlyFileSystem }
        try core.withLock { core throws(Errno) in
            guard let staging = core.staging else { throw .readOnlyFileSystem }
            guard staging.reserveJournalRoom(for: freeing ? .removal : .change) else { throw .noSpace }
        }
    }
}

/// A write's bytes, taken into the locked region. They belong to the
/// caller, which waits for the call, so they outlive every use.
private struct CallerBuffer: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
}

extension TimeChange {
    func resolved(_ now: Timestamp) -> Timestamp {
        switch self {
        case .now: now
        case .set(let time): time
        }
    }
}

/// The reader of a blank medium that has no image file yet: nothing to read.
struct NoMedium: MediumReader {
    func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int { 0 }
}
