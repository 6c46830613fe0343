// The low-level FUSE operations, filled in one place. Each callback decodes
// its C arguments, calls the filesystem (`FileSystemOperations`) and replies;
// a thrown errno becomes fuse_reply_err. Callbacks run on libfuse's worker
// threads, several at once, and capture nothing (they are C function
// pointers): the filesystem is reached through `fuse_req_userdata`.

@preconcurrency import Glibc
import CFuse3
import SessionStore
import Stage
import SystemPackage

/// The table given to `fuse_session_new` (which copies it).
let fuseOperations: fuse_lowlevel_ops = {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, connection in
        let context = Unmanaged<FuseContext>.fromOpaque(userdata!).takeUnretainedValue()
        FuseConnection.negotiate(connection!, acls: context.core.supportsACLs)
    }
    ops.destroy = { userdata in
        Unmanaged<FuseContext>.fromOpaque(userdata!).takeUnretainedValue().shutDownOnce()
    }

    // MARK: Names and inodes

    ops.lookup = { req, parent, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in r.replyEntry(try r.core.lookup(parent, FuseRequest.bytes(name))) }
    }
    ops.forget = { req, inode, lookups in
        let r = FuseRequest(req)
        r.core.forget(inode, lookups: lookups)
        r.replyNone()
    }
    ops.forget_multi = { req, count, forgets in
        let r = FuseRequest(req)
        for forget in UnsafeBufferPointer(start: forgets, count: count) {
            r.core.forget(forget.ino, lookups: forget.nlookup)
        }
        r.replyNone()
    }
    ops.getattr = { req, inode, _ in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in r.replyAttributes(try r.core.attributes(of: inode)) }
    }
    ops.setattr = { req, inode, attributes, toSet, _ in
        let r = FuseRequest(req)
        let changes = FuseAttributeChanges.decode(attributes!.pointee, toSet)
        r.answer { () throws(Errno) in
            r.replyAttributes(try r.core.setAttributes(of: inode, changes, caller: r.caller))
        }
    }
    ops.readlink = { req, inode in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in r.replyLink(try r.core.readLink(inode)) }
    }

    // MARK: Making and removing names

    ops.mknod = { req, parent, name, mode, rdev in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            r.replyEntry(try r.core.makeNode(in: parent, FuseRequest.bytes(name), mode: mode, rdev: UInt64(rdev),
                                             caller: r.caller))
        }
    }
    ops.mkdir = { req, parent, name, mode in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            r.replyEntry(try r.core.makeDirectory(in: parent, FuseRequest.bytes(name), mode: mode, caller: r.caller))
        }
    }
    ops.symlink = { req, target, parent, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            r.replyEntry(try r.core.makeSymlink(in: parent, FuseRequest.bytes(name), target: FuseRequest.bytes(target),
                                                caller: r.caller))
        }
    }
    ops.link = { req, inode, parent, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in r.replyEntry(try r.core.link(inode, into: parent, FuseRequest.bytes(name))) }
    }
    ops.unlink = { req, parent, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.unlink(in: parent, FuseRequest.bytes(name))
            r.replySuccess()
        }
    }
    ops.rmdir = { req, parent, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.removeDirectory(in: parent, FuseRequest.bytes(name))
            r.replySuccess()
        }
    }
    ops.rename = { req, parent, name, newParent, newName, flags in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.rename(in: parent, FuseRequest.bytes(name), to: newParent, FuseRequest.bytes(newName),
                              mode: try FuseRenameFlags.mode(flags))
            r.replySuccess()
        }
    }

    // MARK: Files

    ops.open = { req, inode, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            r.replyOpen(try r.core.open(inode, flags: info!.pointee.flags, caller: r.caller), info!, isDirectory: false)
        }
    }
    ops.create = { req, parent, name, mode, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            let (attributes, opened) = try r.core.create(in: parent, FuseRequest.bytes(name), mode: mode,
                                                         flags: info!.pointee.flags, caller: r.caller)
            r.replyCreate(attributes, opened, info!)
        }
    }
    ops.read = { req, inode, size, offset, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            FuseReadReply.send(r, try r.core.read(inode, handle: info!.pointee.fh, offset: UInt64(offset), size: size))
        }
    }
    ops.write = { req, _, bytes, size, offset, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            let data = UnsafeRawBufferPointer(start: bytes, count: size)
            r.replyWritten(try r.core.write(info!.pointee.fh, offset: UInt64(offset), data: data))
        }
    }
    ops.flush = { req, _, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.flush(info!.pointee.fh)
            r.replySuccess()
        }
    }
    ops.fsync = { req, _, dataOnly, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.fsync(info!.pointee.fh, dataOnly: dataOnly != 0)
            r.replySuccess()
        }
    }
    ops.release = { req, _, info in
        let r = FuseRequest(req)
        r.core.release(info!.pointee.fh)
        r.replySuccess()
    }

    // MARK: Directories

    ops.opendir = { req, inode, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in r.replyOpen(try r.core.openDirectory(inode), info!, isDirectory: true) }
    }
    ops.readdir = { req, inode, size, offset, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try FuseDirectoryReply.send(r, inode, handle: info!.pointee.fh, offset: UInt64(offset), size: size, plus: false)
        }
    }
    ops.readdirplus = { req, inode, size, offset, info in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try FuseDirectoryReply.send(r, inode, handle: info!.pointee.fh, offset: UInt64(offset), size: size, plus: true)
        }
    }
    ops.releasedir = { req, _, info in
        let r = FuseRequest(req)
        r.core.releaseDirectory(info!.pointee.fh)
        r.replySuccess()
    }
    ops.fsyncdir = { req, _, _, _ in
        FuseRequest(req).replySuccess()
    }

    // MARK: The filesystem and extended attributes

    ops.statfs = { req, _ in
        let r = FuseRequest(req)
        r.replyStatistics(r.core.statistics())
    }
    ops.setxattr = { req, inode, name, value, size, flags in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            let bytes = Array(UnsafeRawBufferPointer(start: value, count: size))
            try r.core.setExtendedAttribute(inode, FuseRequest.string(name), bytes, flags: flags)
            r.replySuccess()
        }
    }
    ops.getxattr = { req, inode, name, size in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            r.replyExtendedAttribute(try r.core.extendedAttribute(inode, FuseRequest.string(name)), size: size)
        }
    }
    ops.listxattr = { req, inode, size in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            // "user.a\0user.b\0": every name NUL-terminated.
            let names = try r.core.extendedAttributeNames(inode)
                .flatMap { (name: String) -> [UInt8] in Array(name.utf8) + [0] }
            r.replyExtendedAttribute(names, size: size)
        }
    }
    ops.removexattr = { req, inode, name in
        let r = FuseRequest(req)
        r.answer { () throws(Errno) in
            try r.core.removeExtendedAttribute(inode, FuseRequest.string(name))
            r.replySuccess()
        }
    }
    return ops
}()

/// What the filesystem asks of the kernel connection, in INIT.
enum FuseConnection {
    /// Largest write request (the kernel's own limit is 1 MiB on 3.14: 256 pages).
    static let maxWrite: UInt32 = 1 << 20
    /// Largest read request. libfuse splices a read's reply through a pipe
    /// only if it fits one, with a page for the header and one for each
    /// segment; an unprivileged pipe grows to /proc/sys/fs/pipe-max-size
    /// (1 MiB unless raised), and a reply of a full 1 MiB is copied twice
    /// instead (pread, then writev): 0.85 s of the daemon's CPU per 2 GiB
    /// against 0.55 s spliced. 992 KiB leaves room for five segments.
    static let maxRead: UInt32 = (1 << 20) - 32 * 1024

    static func negotiate(_ connection: UnsafeMutablePointer<fuse_conn_info>, acls: Bool) {
        // Splice file data straight from the image or a staged file; let open
        // truncate (O_TRUNC) without a separate setattr; always send attributes
        // with directory entries, so `ls -l` needs no lookup per entry.
        // POSIX ACLs (where the mount has them): the kernel checks them and
        // caches them per inode, so `ls -l` does not ask for
        // system.posix_acl_access again and again; it leaves the umask to
        // isofuse (DONT_MASK), which does not apply it under a default ACL,
        // as ext4 does.
        let wanted = UInt32(FUSE_CAP_SPLICE_WRITE) | UInt32(FUSE_CAP_SPLICE_MOVE)
            | UInt32(FUSE_CAP_ATOMIC_O_TRUNC) | UInt32(FUSE_CAP_READDIRPLUS)
            | (acls ? UInt32(FUSE_CAP_POSIX_ACL) | UInt32(FUSE_CAP_DONT_MASK) : 0)
        connection.pointee.want |= wanted & connection.pointee.capable
        connection.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)
        connection.pointee.max_write = maxWrite
        // libfuse wants it here and as the mount option (MountService).
        connection.pointee.max_read = maxRead
        // max_readahead stays what the kernel offered (libfuse fills it in).
    }
}

/// `setattr`'s `to_set` bits and `struct stat` as `AttributeChanges`.
enum FuseAttributeChanges {
    static func decode(_ attributes: stat, _ toSet: Int32) -> AttributeChanges {
        func has(_ bit: Int32) -> Bool { toSet & bit != 0 }
        var changes = AttributeChanges()
        // chmod cannot change the type; the kernel sends it along.
        if has(FUSE_SET_ATTR_MODE) { changes.mode = attributes.st_mode & 0o7777 }
        if has(FUSE_SET_ATTR_UID) { changes.uid = attributes.st_uid }
        if has(FUSE_SET_ATTR_GID) { changes.gid = attributes.st_gid }
        if has(FUSE_SET_ATTR_SIZE) { changes.size = UInt64(max(0, attributes.st_size)) }
        // The kernel sends *_NOW together with the plain bit.
        if has(FUSE_SET_ATTR_ATIME_NOW) {
            changes.accessTime = .now
        } else if has(FUSE_SET_ATTR_ATIME) {
            changes.accessTime = .set(timestamp(attributes.st_atim))
        }
        if has(FUSE_SET_ATTR_MTIME_NOW) {
            changes.modificationTime = .now
        } else if has(FUSE_SET_ATTR_MTIME) {
            changes.modificationTime = .set(timestamp(attributes.st_mtim))
        }
        return changes
    }

    private static func timestamp(_ time: timespec) -> Timestamp {
        Timestamp(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec))
    }
}

/// renameat2(2)'s flags.
enum FuseRenameFlags {
    // <linux/fs.h>; Glibc does not export them to Swift.
    static let noReplace: UInt32 = 1
    static let exchange: UInt32 = 2

    static func mode(_ flags: UInt32) throws(Errno) -> RenameMode {
        switch flags {
        case 0: .replace
        case noReplace: .noReplace
        case exchange: .exchange
        default: throw .invalidArgument
        }
    }
}
