// Whether a listing hands the kernel each entry's node (readdirplus) or only
// its name and type.
//
// A node in the listing spares `ls -l`, `tar`, `cp` and file managers a
// lookup per file, but costs the kernel an inode and a dentry for every
// entry, which `find` never looks at: a cold `find` of 50,000 files in small
// directories took 0.44 s with every node and 0.24 s with directories' alone.
// So directories' nodes always go (every walker descends into them), and
// files' go
// - while files are being looked up: a lookup of a file means the kernel did
//   not have it, that is, someone stats what they list, so files' nodes go
//   along for the next second;
// - past the first `smallListing` entries of a listing: a guess wrong there
//   would cost a lookup per file of a big directory, a pause someone at
//   `ls -l` of 5,000 photos would feel.
// A walk that stats costs at most one small directory of lookups a second.

import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class ListingDemand: Sendable {
    /// How long one lookup of a file keeps files' nodes in listings.
    static let window: UInt64 = 1_000_000_000
    /// Entries of a listing (after "." and "..") whose files' nodes go only on demand.
    static let smallListing: UInt64 = 32

    /// When a file was last looked up (`DispatchTime` nanoseconds), 0 for never.
    private let lastFileLookup = Atomic<UInt64>(0)

    func noteLookup(of attributes: Attributes) {
        if !attributes.isDirectory {
            lastFileLookup.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
        }
    }

    /// Whether a listing entry should carry its node.
    func wantsNode(of entry: DirectoryEntry) -> Bool {
        guard !entry.attributes.isDirectory && entry.nextOffset <= 2 + Self.smallListing else { return true }
        let last = lastFileLookup.load(ordering: .relaxed)
        return last != 0 && DispatchTime.now().uptimeNanoseconds - last < Self.window
    }
}

extension Attributes {
    var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
}

extension DirectoryEntry {
    var isDot: Bool { name == [0x2E] || name == [0x2E, 0x2E] }
}
