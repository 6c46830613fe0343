// readdir and readdirplus: as many entries as fit in the kernel's buffer,
// from the offset it asks for.
//
// In plus mode an entry that carries its node (the filesystem decides which:
// see ListingDemand) makes the kernel keep a reference to its inode: one
// lookup, counted by the filesystem as it returns the entry (the kernel may
// forget it at once), and taken back for entries that do not fit or when the
// reply fails. The others, "." and ".." among them, go with node ID 0: the
// kernel takes their name and type only, and counts nothing.

@preconcurrency import Glibc
import CFuse3
import Stage
import SystemPackage

enum FuseDirectoryReply {
    static func send(_ request: FuseRequest, _ inode: InodeNumber, handle: UInt64, offset: UInt64, size: Int, plus: Bool) throws(Errno) {
        // The smallest entry (a one-byte name) takes 32 bytes, 160 in plus mode.
        let limit = max(size / (plus ? 160 : 32), 1)
        // Taken before replying: the reply frees the request.
        let core = request.core
        let entries = try core.readDirectory(inode, handle: handle, from: offset, limit: limit, retaining: plus)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buffer.deallocate() }
        var used = 0
        var sent = 0
        for entry in entries {
            let added = (entry.name + [0]).withUnsafeBytes { name in
                let name = name.baseAddress!.assumingMemoryBound(to: CChar.self)
                if plus {
                    var parameters = FuseAttributes.entry(entry.attributes)
                    // Node ID 0: the kernel takes the name and type only.
                    if !entry.carriesNode { parameters.ino = 0 }
                    return fuse_add_direntry_plus(request.raw, buffer + used, size - used, name, &parameters,
                                                  off_t(entry.nextOffset))
                } else {
                    var status = FuseAttributes.stat(entry.attributes)
                    return fuse_add_direntry(request.raw, buffer + used, size - used, name, &status,
                                             off_t(entry.nextOffset))
                }
            }
            guard added <= size - used else { break }
            used += added
            sent += 1
        }
        let delivered = fuse_reply_buf(request.raw, buffer, used) == 0 ? sent : 0
        for entry in entries[delivered...] where entry.carriesNode {
            core.forget(entry.attributes.inode, lookups: 1)
        }
    }
}
