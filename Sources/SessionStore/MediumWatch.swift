// Whether the medium in a CD/DVD/BD drive was taken out or replaced.
//
// libburn cannot tell: when a command meets the drive's "medium may have
// changed" unit attention it retries it, so after a swap it would read the
// new disc's blocks for the old disc's files. The kernel can: its CD layer
// gathers the drive's media events (GET EVENT STATUS NOTIFICATION) and unit
// attentions for the CDROM_MEDIA_CHANGED ioctl, which we call on a
// descriptor of our own (a plain open beside libburn's exclusive one).

import CLinux
import SystemPackage

final class MediumWatch {
    private let descriptor: FileDescriptor

    /// Watches the drive node at `path`; nil when it is no CD/DVD/BD block
    /// device (an sg node, for one), which then goes unwatched.
    init?(path: FilePath) {
        guard let descriptor = try? FileDescriptor.open(path, .readOnly, options: [.nonBlocking, .closeOnExec]) else {
            return nil
        }
        // The first answer covers everything since the drive was last asked: ignored.
        guard isofuse_cdrom_media_changed(descriptor.rawValue) >= 0 else {
            try? descriptor.close()
            return nil
        }
        self.descriptor = descriptor
    }

    deinit { try? descriptor.close() }

    /// Whether the medium was taken out or replaced since the last call.
    func mediumChanged() -> Bool {
        isofuse_cdrom_media_changed(descriptor.rawValue) != 0
    }

    /// Whether a medium is in the drive, ready (not: the tray is open, or empty).
    var holdsMedium: Bool {
        isofuse_cdrom_drive_status(descriptor.rawValue) == CDS_DISC_OK
    }
}
