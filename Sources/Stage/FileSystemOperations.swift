// What the FUSE glue asks of the mounted filesystem, in Swift values only:
// no libfuse type crosses this line, so the filesystem is tested without a
// mount and the glue stays a thin translation (as squashfuse's ll.c over fs.c).
//
// Inode numbers and lookup counts follow the FUSE low-level protocol: every
// `lookup`, `create`, `makeNode`, `makeDirectory`, `makeSymlink` and `link`
// that returns attributes counts one lookup of the returned inode; `retain`
// counts one for a readdirplus entry the glue handed to the kernel; `forget`
// takes counts back. The root (1) is never forgotten.

import SessionStore
import SystemPackage

public typealias InodeNumber = UInt64

/// The root directory's inode number (FUSE_ROOT_ID).
public let rootInode: InodeNumber = 1

/// The handle of a file or directory the kernel opened without asking (see `FileSystemOperations.open`).
public let unopenedHandle: UInt64 = 0

/// `stat` of a node.
public struct Attributes: Hashable, Sendable {
    public var inode: InodeNumber
    /// Type and permission bits (`st_mode`).
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var rdev: UInt64
    public var accessTime: Timestamp
    public var modificationTime: Timestamp
    public var changeTime: Timestamp
    /// Committed data that never changes while mounted: the kernel may cache
    /// its attributes, entries and pages for long.
    public var isImmutable: Bool

    public init(inode: InodeNumber, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                rdev: UInt64, accessTime: Timestamp, modificationTime: Timestamp, changeTime: Timestamp,
                isImmutable: Bool) {
        self.inode = inode
        self.mode = mode
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.size = size
        self.rdev = rdev
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
        self.isImmutable = isImmutable
    }
}

/// A time `setattr` sets: a given one, or the moment of the call.
public enum TimeChange: Hashable, Sendable {
    case now
    case set(Timestamp)
}

/// What `setattr` changes; nil fields stay.
public struct AttributeChanges: Hashable, Sendable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var accessTime: TimeChange?
    public var modificationTime: TimeChange?

    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                accessTime: TimeChange? = nil, modificationTime: TimeChange? = nil) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.accessTime = accessTime
        self.modificationTime = modificationTime
    }
}

/// Who makes a request (from `fuse_req_ctx`).
public struct Caller: Hashable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// The caller's umask, to apply to modes of new nodes.
    public var umask: UInt32

    public init(uid: UInt32, gid: UInt32, pid: Int32, umask: UInt32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.umask = umask
    }
}

/// An open file or directory.
public struct OpenedFile: Hashable, Sendable {
    public var handle: UInt64
    /// The kernel may keep cached pages from an earlier open (the data cannot have changed).
    public var keepCache: Bool
    /// Bypass the page cache: for files whose size is not known in advance (the control files).
    public var directIO: Bool
    /// close(2) has something to report (a write's error), so the kernel must ask (flush);
    /// a read-only open spares every close that round trip.
    public var flushesOnClose: Bool

    public init(handle: UInt64, keepCache: Bool, directIO: Bool, flushesOnClose: Bool = true) {
        self.handle = handle
        self.keepCache = keepCache
        self.directIO = directIO
        self.flushesOnClose = flushesOnClose
    }
}

/// Where the bytes of a read come from, in order.
public enum ReadSegment: Sendable {
    /// Bytes of an open file (the image, or a staged file): the glue may splice them.
    case file(FileDescriptor, offset: UInt64, length: Int)
    case bytes([UInt8])
}

/// One entry of a directory listing.
public struct DirectoryEntry: Hashable, Sendable {
    public var name: [UInt8]
    public var attributes: Attributes
    /// The offset to ask for to continue after this entry.
    public var nextOffset: UInt64
    /// readdirplus hands the kernel the entry's node (one lookup counted);
    /// otherwise only its name and type.
    public var carriesNode: Bool

    public init(name: [UInt8], attributes: Attributes, nextOffset: UInt64, carriesNode: Bool = false) {
        self.name = name
        self.attributes = attributes
        self.nextOffset = nextOffset
        self.carriesNode = carriesNode
    }
}

public enum RenameMode: Hashable, Sendable {
    /// rename(2): replace the destination.
    case replace
    /// RENAME_NOREPLACE: fail with EEXIST if the destination exists.
    case noReplace
    /// RENAME_EXCHANGE: swap source and destination.
    case exchange
}

/// `statfs`.
public struct FileSystemStatistics: Hashable, Sendable {
    public var blockSize: UInt32
    public var blocks: UInt64
    public var freeBlocks: UInt64
    public var files: UInt64
    public var freeFiles: UInt64
    public var nameMax: UInt32

    public init(blockSize: UInt32, blocks: UInt64, freeBlocks: UInt64, files: UInt64, freeFiles: UInt64, nameMax: UInt32) {
        self.blockSize = blockSize
        self.blocks = blocks
        self.freeBlocks = freeBlocks
        self.files = files
        self.freeFiles = freeFiles
        self.nameMax = nameMax
    }
}

/// The mounted filesystem as the FUSE glue sees it. Every method may be
/// called from any thread; failures are errnos.
public protocol FileSystemOperations: Sendable {
    /// Whether the kernel is to check and cache POSIX ACLs (asked once, before any request).
    var supportsACLs: Bool { get }

    func lookup(_ parent: InodeNumber, _ name: [UInt8]) throws(Errno) -> Attributes
    func retain(_ inode: InodeNumber)
    func forget(_ inode: InodeNumber, lookups: UInt64)
    func attributes(of inode: InodeNumber) throws(Errno) -> Attributes
    func setAttributes(of inode: InodeNumber, _ changes: AttributeChanges, caller: Caller) throws(Errno) -> Attributes
    func readLink(_ inode: InodeNumber) throws(Errno) -> [UInt8]

    /// A regular file or a FIFO (`mode` carries the type).
    func makeNode(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, rdev: UInt64, caller: Caller) throws(Errno) -> Attributes
    func makeDirectory(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, caller: Caller) throws(Errno) -> Attributes
    func makeSymlink(in parent: InodeNumber, _ name: [UInt8], target: [UInt8], caller: Caller) throws(Errno) -> Attributes
    func link(_ inode: InodeNumber, into parent: InodeNumber, _ name: [UInt8]) throws(Errno) -> Attributes
    func unlink(in parent: InodeNumber, _ name: [UInt8]) throws(Errno)
    func removeDirectory(in parent: InodeNumber, _ name: [UInt8]) throws(Errno)
    func rename(in parent: InodeNumber, _ name: [UInt8], to newParent: InodeNumber, _ newName: [UInt8],
                mode: RenameMode) throws(Errno)

    /// `flags` are open(2)'s (O_ACCMODE, O_TRUNC, O_APPEND, ...). A mount that
    /// takes no writes throws ENOSYS (as `openDirectory` does): the kernel then
    /// opens every file and directory by itself, without open, flush and
    /// release requests, keeps their pages and listings cached, and reads
    /// them with `unopenedHandle`.
    func open(_ inode: InodeNumber, flags: Int32, caller: Caller) throws(Errno) -> OpenedFile
    func create(in parent: InodeNumber, _ name: [UInt8], mode: UInt32, flags: Int32, caller: Caller) throws(Errno) -> (Attributes, OpenedFile)
    func read(_ inode: InodeNumber, handle: UInt64, offset: UInt64, size: Int) throws(Errno) -> [ReadSegment]
    func write(_ handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int
    func flush(_ handle: UInt64) throws(Errno)
    func fsync(_ handle: UInt64, dataOnly: Bool) throws(Errno)
    func release(_ handle: UInt64)

    func openDirectory(_ inode: InodeNumber) throws(Errno) -> OpenedFile
    /// At most `limit` entries from `offset` on ("." and ".." included, first):
    /// the names as of opening, each with the node it names now (names gone
    /// since are left out). With `retaining` (readdirplus), entries may carry
    /// their node ("." and ".." never do), one lookup counted for each; the
    /// caller forgets those it does not pass on.
    func readDirectory(_ inode: InodeNumber, handle: UInt64, from offset: UInt64, limit: Int,
                       retaining: Bool) throws(Errno) -> [DirectoryEntry]
    func releaseDirectory(_ handle: UInt64)

    func statistics() -> FileSystemStatistics

    /// `flags`: XATTR_CREATE / XATTR_REPLACE.
    func setExtendedAttribute(_ inode: InodeNumber, _ name: String, _ value: [UInt8], flags: Int32) throws(Errno)
    func extendedAttribute(_ inode: InodeNumber, _ name: String) throws(Errno) -> [UInt8]
    func extendedAttributeNames(_ inode: InodeNumber) throws(Errno) -> [String]
    func removeExtendedAttribute(_ inode: InodeNumber, _ name: String) throws(Errno)

    /// The mount is going away (unmount or signal): finish or stop what runs, persist.
    func shutdown()
}

/// What the kernel must forget when staged changes are dropped.
public enum KernelCacheInvalidation: Hashable, Sendable {
    /// An inode's attributes and cached pages.
    case inode(InodeNumber)
    /// A name in a directory (and what it pointed to).
    case entry(parent: InodeNumber, name: [UInt8])
}

/// How the FUSE glue tells the kernel to forget what it cached.
public typealias KernelCacheInvalidator = @Sendable (KernelCacheInvalidation) -> Void

/// What `isofuse mount` was asked for.
public struct MountOptions: Hashable, Sendable {
    public var drive: DriveAddress
    /// Where pending changes live; nil: the medium's default under the user's state directory.
    public var staging: FilePath?
    /// A read-only view of this session instead of the newest one.
    public var session: Int?
    public var readOnly: Bool
    /// Every commit also closes the medium.
    public var closeOnCommit: Bool
    /// Read the new session back and check it before switching to it.
    public var verify: Bool
    /// For image files: the medium's size in bytes (default: what the host disk has free).
    public var capacity: UInt64?

    public init(drive: DriveAddress, staging: FilePath? = nil, session: Int? = nil, readOnly: Bool = false,
                closeOnCommit: Bool = false, verify: Bool = true, capacity: UInt64? = nil) {
        self.drive = drive
        self.staging = staging
        self.session = session
        self.readOnly = readOnly
        self.closeOnCommit = closeOnCommit
        self.verify = verify
        self.capacity = capacity
    }
}
