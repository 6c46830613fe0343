// How far ahead the kernel reads a file of the mount. A FUSE mount gets
// 128 KiB, and the kernel asks the daemon for no more than that at a time:
// `dd bs=1M` of a 2 GiB file took 16,384 requests and ran at 0.4-1.2 GB/s
// with the image in the page cache. At 4 MiB the kernel asks in requests of
// `FuseConnection.maxRead` and keeps several in flight: 1.9-2.5 GB/s there,
// and cold 0.8-1.4 GB/s against the disk's 1.1-1.8 (2 MiB and 8 MiB read
// cold more slowly). The knob is the mount's backing device in sysfs, which
// only root may write; other users keep the kernel's 128 KiB.

import CFuse3   // `struct stat`'s members come through its headers (MemberImportVisibility)
import CLinux
import Dispatch
@preconcurrency import Glibc
import SystemPackage

enum MountReadahead {
    static let kibibytes = 4096

    /// Raises the readahead of the mount at `mountpoint`, where this process
    /// may, once the kernel has taken the daemon's INIT reply (which sets it
    /// to what the kernel offered), then calls `done`. The mount must be
    /// served: it is asked for its root's attributes. A file takes the
    /// readahead when it is opened, so `done` tells that the mount is ready.
    static func raiseWhenServed(at mountpoint: FilePath, then done: @escaping @Sendable () -> Void) {
        DispatchQueue.global().async {
            defer { done() }
            // stat waits for INIT, and gives the mount's device.
            var status = stat()
            guard stat(mountpoint.string, &status) == 0 else { return }
            let control = "/sys/class/bdi/\(gnu_dev_major(status.st_dev)):\(gnu_dev_minor(status.st_dev))/read_ahead_kb"
            let descriptor = open(control, O_WRONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return }
            defer { close(descriptor) }
            let text = Array("\(kibibytes)\n".utf8)
            _ = text.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        }
    }
}
