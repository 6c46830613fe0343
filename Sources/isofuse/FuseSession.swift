// The connection to the kernel for one mount point: libfuse's session, the
// mount, the worker threads, and the way back to the kernel (cache
// invalidation), torn down in the one order that is safe.
//
// Threads: at most 16 workers, started as requests wait. A read of disc data
// on a real drive waits while a burn runs, and the kernel keeps up to 12
// background requests (readahead) in flight, so 16 leaves room for `status`
// and reads of staged files while readers of the disc wait. Each worker
// reads from its own clone of /dev/fuse (clone_fd).

@preconcurrency import Glibc
import CFuse3
import SessionStore
import Stage

final class FuseSession {
    static let maxThreads: UInt32 = 16

    private let session: OpaquePointer
    private let context: FuseContext
    private let notifier: FuseNotifier
    private var handlesSignals = false
    private var isMounted = false
    private var isClosed = false

    /// `options` are libfuse's arguments (`-o` and their values).
    init(core: any FileSystemOperations, options: [String]) throws(IsofuseError) {
        let context = FuseContext(core: core)
        var arguments = fuse_args(argc: 0, argv: nil, allocated: 0)
        defer { fuse_opt_free_args(&arguments) }
        for argument in ["isofuse"] + options {
            fuse_opt_add_arg(&arguments, argument)
        }
        // libfuse copies the table and the options; `context` lives as long as self.
        let userdata = Unmanaged.passUnretained(context).toOpaque()
        let session = withUnsafePointer(to: fuseOperations) {
            fuse_session_new(&arguments, $0, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let session else {
            let reason = FuseLog.lastError ?? options.joined(separator: " ")
            throw IsofuseError(.invalidArgument, "FUSE refused the mount options: \(reason)")
        }
        self.session = session
        self.context = context
        self.notifier = FuseNotifier(session)
    }

    /// What the filesystem calls to make the kernel forget what it cached.
    var invalidator: KernelCacheInvalidator {
        let notifier = notifier
        return { invalidation in notifier.invalidate(invalidation) }
    }

    /// Mounts; SIGINT, SIGTERM and SIGHUP end the loop from then on.
    func mount(at mountpoint: String) throws(IsofuseError) {
        guard fuse_set_signal_handlers(session) == 0 else {
            throw IsofuseError(.hostIO, "cannot install signal handlers")
        }
        handlesSignals = true
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw IsofuseError(.hostIO, "cannot mount on \(mountpoint): \(FuseLog.lastError ?? "the kernel refused")")
        }
        isMounted = true
    }

    /// Serves requests until the mount goes away (unmount or a signal).
    /// Returns libfuse's status: 0, a signal's number, or a negative errno.
    func serve() -> Int32 {
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_max_threads(config, Self.maxThreads)
        fuse_loop_cfg_set_clone_fd(config, 1)
        return fuse_session_loop_mt(session, config)
    }

    /// Unmounts (if still mounted), shuts the filesystem down and frees the session.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        // No notification after this: the session's fd is about to close,
        // and its number could be reused by a file the filesystem opens.
        notifier.close()
        if isMounted { fuse_session_unmount(session) }
        if handlesSignals { fuse_remove_signal_handlers(session) }
        // Calls `destroy` (shutdown) if INIT arrived; otherwise shut down here.
        fuse_session_destroy(session)
        context.shutDownOnce()
    }
}

/// The session for the filesystem's threads: they may notify the kernel at
/// any time until teardown begins, never after.
final class FuseNotifier: Sendable {
    /// libfuse's notify functions may be called from any thread while the
    /// session exists (they write one message to its fd); the mutex keeps
    /// teardown from freeing it under a call.
    private struct SessionPointer: @unchecked Sendable {
        let raw: OpaquePointer
    }
    private let session: VisibleMutex<SessionPointer?>

    init(_ session: OpaquePointer) {
        self.session = VisibleMutex(SessionPointer(raw: session))
    }

    func invalidate(_ invalidation: KernelCacheInvalidation) {
        session.withLock { session in
            guard let session else { return }
            switch invalidation {
            case .inode(let inode):
                // Offset 0, length 0: the attributes and every cached page.
                _ = fuse_lowlevel_notify_inval_inode(session.raw, inode, 0, 0)
            case .entry(let parent, let name):
                // libfuse sends the terminating NUL too, and the kernel checks it.
                _ = (name + [0]).withUnsafeBytes { terminated in
                    let text = terminated.baseAddress!.assumingMemoryBound(to: CChar.self)
                    return fuse_lowlevel_notify_inval_entry(session.raw, parent, text, name.count)
                }
            }
        }
    }

    func close() {
        session.withLock { $0 = nil }
    }
}
