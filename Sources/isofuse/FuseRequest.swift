// One request from the kernel, as the callbacks in FuseOperations.swift see
// it: the filesystem it is for, who makes it, and the replies, each turning
// Swift values into libfuse's C structs in one place.
//
// A reply that the kernel did not take (the request was interrupted, so
// fuse_reply_* returns non-zero) must not leave a lookup count or an open
// handle behind: the kernel will never forget or release it. The replies
// below give those back to the core, as libfuse's own high-level layer does,
// through the core they took before replying: a reply frees the request.

@preconcurrency import Glibc
import CFuse3
import SessionStore
import Stage
import Synchronization
import SystemPackage

/// What `fuse_req_userdata` leads to: the filesystem, and whether it was shut
/// down (libfuse calls `destroy` only if INIT arrived, so teardown calls it too).
final class FuseContext: Sendable {
    let core: any FileSystemOperations
    private let isShutDown = Atomic<Bool>(false)

    init(core: any FileSystemOperations) {
        self.core = core
    }

    /// Calls `core.shutdown()` the first time only.
    func shutDownOnce() {
        if !isShutDown.exchange(true, ordering: .acquiringAndReleasing) {
            core.shutdown()
        }
    }
}

struct FuseRequest {
    let raw: fuse_req_t

    init(_ raw: fuse_req_t?) {
        self.raw = raw!
    }

    var core: any FileSystemOperations {
        Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(raw)!).takeUnretainedValue().core
    }

    var caller: Caller {
        let context = fuse_req_ctx(raw)!.pointee
        return Caller(uid: context.uid, gid: context.gid, pid: context.pid, umask: context.umask)
    }

    /// Runs `body`, which replies; an errno it throws is the reply instead.
    func answer(_ body: () throws(Errno) -> Void) {
        do throws(Errno) {
            try body()
        } catch {
            replyError(error)
        }
    }

    func replyError(_ error: Errno) {
        fuse_reply_err(raw, error.rawValue)
    }

    /// Success without data (fuse_reply_err with 0).
    func replySuccess() {
        fuse_reply_err(raw, 0)
    }

    func replyNone() {
        fuse_reply_none(raw)
    }

    /// An entry that counts one lookup of its inode.
    func replyEntry(_ attributes: Attributes) {
        var entry = FuseAttributes.entry(attributes)
        let core = self.core
        if fuse_reply_entry(raw, &entry) != 0 {
            core.forget(attributes.inode, lookups: 1)
        }
    }

    func replyAttributes(_ attributes: Attributes) {
        var status = FuseAttributes.stat(attributes)
        fuse_reply_attr(raw, &status, FuseAttributes.timeout(attributes))
    }

    func replyOpen(_ opened: OpenedFile, _ info: UnsafeMutablePointer<fuse_file_info>, isDirectory: Bool) {
        FuseAttributes.fill(info, opened, isDirectory: isDirectory)
        let core = self.core
        if fuse_reply_open(raw, info) != 0 {
            if isDirectory { core.releaseDirectory(opened.handle) } else { core.release(opened.handle) }
        }
    }

    func replyCreate(_ attributes: Attributes, _ opened: OpenedFile, _ info: UnsafeMutablePointer<fuse_file_info>) {
        var entry = FuseAttributes.entry(attributes)
        FuseAttributes.fill(info, opened, isDirectory: false)
        let core = self.core
        if fuse_reply_create(raw, &entry, info) != 0 {
            core.release(opened.handle)
            core.forget(attributes.inode, lookups: 1)
        }
    }

    func replyBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            _ = fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    func replyLink(_ target: [UInt8]) {
        (target + [0]).withUnsafeBytes { buffer in
            _ = fuse_reply_readlink(raw, buffer.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
    }

    func replyWritten(_ count: Int) {
        fuse_reply_write(raw, count)
    }

    func replyStatistics(_ statistics: FileSystemStatistics) {
        var result = statvfs()
        result.f_bsize = UInt(statistics.blockSize)
        result.f_frsize = UInt(statistics.blockSize)
        result.f_blocks = fsblkcnt_t(statistics.blocks)
        result.f_bfree = fsblkcnt_t(statistics.freeBlocks)
        result.f_bavail = fsblkcnt_t(statistics.freeBlocks)
        result.f_files = fsfilcnt_t(statistics.files)
        result.f_ffree = fsfilcnt_t(statistics.freeFiles)
        result.f_favail = fsfilcnt_t(statistics.freeFiles)
        result.f_namemax = UInt(statistics.nameMax)
        fuse_reply_statfs(raw, &result)
    }

    /// getxattr/listxattr: a `size` of 0 asks only how long the value is.
    func replyExtendedAttribute(_ value: [UInt8], size: Int) {
        if size == 0 {
            fuse_reply_xattr(raw, value.count)
        } else if value.count > size {
            replyError(.outOfRange)
        } else {
            replyBytes(value)
        }
    }

    /// A name from the kernel (NUL-terminated) as the core takes it.
    static func bytes(_ name: UnsafePointer<CChar>?) -> [UInt8] {
        guard let name else { return [] }
        return Array(UnsafeRawBufferPointer(start: name, count: strlen(name)))
    }

    static func string(_ name: UnsafePointer<CChar>?) -> String {
        String(decoding: bytes(name), as: UTF8.self)
    }
}

/// Attributes and open results in libfuse's structs.
enum FuseAttributes {
    /// How long the kernel may trust a reply: long for committed data. Staged
    /// nodes change only through the kernel, or by a discard (which tells it),
    /// or by a commit (which changes nothing visible but the control
    /// directory): a second spares `cp -a` most of its lookups at that cost.
    static func timeout(_ attributes: Attributes) -> Double {
        attributes.isImmutable ? 3600 : 1
    }

    static func stat(_ attributes: Attributes) -> Glibc.stat {
        var result = Glibc.stat()
        result.st_ino = ino_t(attributes.inode)
        result.st_mode = attributes.mode
        result.st_nlink = nlink_t(attributes.nlink)
        result.st_uid = attributes.uid
        result.st_gid = attributes.gid
        result.st_size = off_t(clamping: attributes.size)
        result.st_blocks = blkcnt_t(clamping: (attributes.size + 511) / 512)
        result.st_rdev = dev_t(attributes.rdev)
        result.st_atim = timespec(attributes.accessTime)
        result.st_mtim = timespec(attributes.modificationTime)
        result.st_ctim = timespec(attributes.changeTime)
        return result
    }

    static func entry(_ attributes: Attributes) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = attributes.inode
        entry.attr = stat(attributes)
        entry.attr_timeout = timeout(attributes)
        entry.entry_timeout = timeout(attributes)
        return entry
    }

    /// For directories, `keepCache` also lets the kernel cache the listing.
    static func fill(_ info: UnsafeMutablePointer<fuse_file_info>, _ opened: OpenedFile, isDirectory: Bool) {
        info.pointee.fh = opened.handle
        info.pointee.keep_cache = opened.keepCache ? 1 : 0
        info.pointee.direct_io = opened.directIO ? 1 : 0
        info.pointee.noflush = opened.flushesOnClose ? 0 : 1
        if isDirectory {
            info.pointee.cache_readdir = opened.keepCache ? 1 : 0
        }
    }

    private static func timespec(_ time: Timestamp) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(time.seconds), tv_nsec: Int(time.nanoseconds))
    }
}
