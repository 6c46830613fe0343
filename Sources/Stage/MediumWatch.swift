// Serving no mix of two media.
//
// An image file can be replaced (`mv other.iso disc.iso`) or rewritten
// (`cp other.iso disc.iso`, another program appending a session) while it is
// mounted. Every open and every read of disc data first asks the image
// reader whether its file changed (two stat calls); if it did, and not by a
// commit of this mount, the drive is asked what medium it holds now:
// - the same medium in the same state (a touch, a copy of itself): nothing changes;
// - the same medium with more sessions, the mounted ones unchanged (another
//   program appended one): what the mount shows is still on it and stays
//   readable, but the staged changes were made on an older state, so commits are refused;
// - anything else: disc data reads fail with ENOMEDIUM until the medium is
//   mounted again, and commits are refused.
// Either way `status` says what happened. The commit itself is guarded
// independently: the drive checks the medium's identity right before writing
// (`AppendOptions.expectedMedium`).

import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What happened to the medium behind the mount.
struct MediumChange {
    /// Whether what the mount shows is still on the medium (another program only appended sessions).
    var allowsReads: Bool
    /// What happened, in words: a note in `status`, and the reason commits are refused.
    var note: String
}

extension MountedFileSystem {
    /// Throws ENOMEDIUM when disc data must not be served any more.
    func checkMediumUnchanged() throws(Errno) {
        let suspect = try core.withLock { core throws(Errno) -> ImageFileReader? in
            if let change = core.mediumChange, !change.allowsReads { throw Errno(rawValue: ENOMEDIUM) }
            // While this mount commits, it is the one changing the image.
            guard core.commit.state != .running, let image = core.reader as? ImageFileReader, image.hasChanged() else {
                return nil
            }
            return image
        }
        guard let suspect else { return }
        // Asked outside the core lock: the library lock must never be waited for under it.
        let fresh = try? drive.freshMedium()
        try core.withLock { core throws(Errno) in
            guard core.mediumChange?.allowsReads != false, core.reader as? ImageFileReader === suspect else {
                throw Errno(rawValue: ENOMEDIUM)
            }
            let mounted = core.medium
            if let fresh, fresh.identity == mounted.identity {
                suspect.acceptChanges()
                return
            }
            if let fresh, fresh.identity.medium == mounted.identity.medium,
               fresh.sessions.map(\.headDigest).starts(with: mounted.sessions.map(\.headDigest)) {
                suspect.acceptChanges()
                core.noteMediumChange(MediumChange(allowsReads: true, note:
                    "\(drive.address) was written by another program (it has \(fresh.sessions.count) sessions now): "
                    + "the mount still shows session \(mounted.sessions.count); the staged changes are kept "
                    + "but cannot be committed onto it; mount it again to see the new sessions"))
                return
            }
            core.noteMediumChange(MediumChange(allowsReads: false, note:
                "\(drive.address) no longer holds the mounted medium (it was replaced, rewritten or removed): "
                + "disc data cannot be read and nothing can be committed until it is mounted again; "
                + "the staged changes are kept for the medium they belong to"))
            throw Errno(rawValue: ENOMEDIUM)
        }
    }
}

extension Core {
    mutating func noteMediumChange(_ change: MediumChange) {
        if mediumChange?.note != change.note { notes.append(change.note) }
        mediumChange = change
    }
}
