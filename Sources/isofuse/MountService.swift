// One mount, served by this process: open the filesystem, mount it, say that
// it is ready, serve until it is unmounted or signalled, shut down. Nothing
// is mounted until the filesystem has opened the drive and loaded the tree,
// so a bad drive, medium or mount point leaves nothing behind.

import CFuse3   // `struct stat`'s members come through its headers (MemberImportVisibility)
import FoundationEssentials
@preconcurrency import Glibc
import SessionStore
import Stage
import SystemPackage

struct MountService {
    var options: MountOptions
    /// Absolute.
    var mountpoint: FilePath
    /// The user's `-o` values, after the fixed ones.
    var fuseOptions: [String]

    /// libfuse's arguments. The fixed options come first, so that the user's can add to them.
    var fuseArguments: [String] {
        // fuse_opt splits on commas; a backslash escapes one (and itself).
        let drive = options.drive.description.replacing("\\", with: "\\\\").replacing(",", with: "\\,")
        // A mount that takes no changes is `ro` for the kernel too: it refuses
        // writes itself, and does not ask for a directory's attributes again
        // after every listing (on a read-write mount a listing may change atime).
        let readOnly = options.readOnly || options.session != nil ? ",ro" : ""
        return ["-o", "fsname=isofuse:\(drive),subtype=isofuse,default_permissions,max_read=\(FuseConnection.maxRead)" + readOnly]
            + fuseOptions.flatMap { ["-o", $0] }
    }

    /// Returns when the mount is gone; `ready` runs once the mount answers
    /// (on another thread).
    func run(ready: @escaping @Sendable () -> Void) throws(IsofuseError) {
        try Self.checkMountpoint(mountpoint)
        FuseLog.install()
        let core = try MountedFileSystem(options: options, environment: ProcessInfo.processInfo.environment)
        let session: FuseSession
        do throws(IsofuseError) {
            session = try FuseSession(core: core, options: fuseArguments)
        } catch {
            core.shutdown()
            throw error
        }
        defer { session.close() }
        core.setKernelCacheInvalidator(session.invalidator)
        try session.mount(at: mountpoint.string)
        FuseLog.echoToStandardError()
        MountReadahead.raiseWhenServed(at: mountpoint, then: ready)
        let status = session.serve()
        if status < 0 {
            throw IsofuseError(.hostIO, "serving \(mountpoint) failed: \(String(cString: strerror(-status)))")
        }
    }

    private static func checkMountpoint(_ path: FilePath) throws(IsofuseError) {
        var status = stat()
        guard stat(path.string, &status) == 0 else {
            let reason = errno == ENOENT ? "does not exist" : String(cString: strerror(errno))
            throw IsofuseError(.notFound, "mount point \(path): \(reason)")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw IsofuseError(.invalidArgument, "mount point \(path) is not a directory")
        }
    }
}
