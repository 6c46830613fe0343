// `isofuse mount` without -f, and the daemon's side of it.
//
// A Swift process must not fork (the runtime, Dispatch and libburn may have
// threads by then), so the command runs itself again (the executable
// /proc/self/exe names) with the same arguments plus `--foreground
// --ready-fd 3`, in a new session (no
// controlling terminal, so ^C and hangups of the shell do not reach it),
// with stdio on /dev/null. The daemon writes one line on fd 3: "ok" once the
// kernel has the mount, or the reason the mount failed. The command prints
// that reason and exits non-zero, or exits 0 and leaves the daemon running.

import FoundationEssentials
@preconcurrency import Glibc
import SessionStore

enum DaemonLauncher {
    /// The daemon's end of the pipe.
    static let readyDescriptor: Int32 = 3

    /// glibc's value; Swift does not see this GNU extension of <spawn.h>.
    private static let setSessionFlag: Int32 = 0x80

    /// Starts the daemon and returns once its mount is ready; throws the daemon's reason otherwise.
    static func start(_ arguments: [String]) throws(IsofuseError) {
        let daemonArguments = try daemonArguments(arguments)
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw failure("cannot create a pipe") }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        // Above 3, so that dup2 onto 3 in the daemon makes a new descriptor without FD_CLOEXEC.
        let writeEnd = fcntl(ends[1], F_DUPFD_CLOEXEC, 10)
        close(ends[1])
        defer { close(ends[0]) }
        guard writeEnd >= 0 else { throw failure("cannot create a pipe") }
        keepDescriptorsFromDaemon()
        let pid: pid_t
        do throws(IsofuseError) {
            pid = try spawn(daemonArguments, readyEnd: writeEnd)
            close(writeEnd)
        } catch {
            close(writeEnd)
            throw error
        }
        switch readLine(ends[0]) {
        case "ok":
            return
        case let line? where !line.isEmpty:
            // The daemon's error code does not cross the pipe; the exit status is 1 either way.
            throw IsofuseError(.hostIO, line)
        default:
            throw IsofuseError(.hostIO, "the mount daemon \(ended(pid)) before the mount was ready")
        }
    }

    /// `isofuse mount ARGS...` → `isofuse mount --foreground --ready-fd 3 ARGS...`
    /// (inserted before the user's arguments, so that a `--` among them stays last).
    static func daemonArguments(_ arguments: [String]) throws(IsofuseError) -> [String] {
        guard let command = arguments.firstIndex(of: "mount") else {
            throw IsofuseError(.invalidArgument, "cannot find the mount command in the arguments")
        }
        var result = arguments
        result.insert(contentsOf: ["--foreground", "--ready-fd", "\(readyDescriptor)"], at: command + 1)
        return result
    }

    /// The daemon gets stdio and the pipe only: a descriptor it inherited
    /// from whoever ran `isofuse mount` (a pipe of a script capturing output,
    /// say) would stay open for as long as the mount lasts.
    private static func keepDescriptorsFromDaemon() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for descriptor in names.compactMap({ Int32($0) }) where descriptor > 2 {
            _ = fcntl(descriptor, F_SETFD, fcntl(descriptor, F_GETFD) | FD_CLOEXEC)
        }
    }

    private static func spawn(_ arguments: [String], readyEnd: Int32) throws(IsofuseError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, readyEnd, readyDescriptor)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setflags(&attributes, Int16(setSessionFlag | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw IsofuseError(.hostIO, "cannot start the mount daemon: \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// This executable. Its real path rather than /proc/self/exe, whose name
    /// ("exe") would become the daemon's name in ps and top.
    private static var executable: String {
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        guard length > 0 else { return "/proc/self/exe" }
        return String(decoding: path[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first line, without its newline; nil at end of file before any byte.
    private static func readLine(_ descriptor: Int32) -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(descriptor, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }

    /// "exited with status 3", "was killed by signal 9" (the daemon is our child: reaped here).
    private static func ended(_ pid: pid_t) -> String {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return "ended" }
        }
        let signal = status & 0x7f
        return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    private static func failure(_ what: String) -> IsofuseError {
        IsofuseError(.hostIO, "\(what): \(String(cString: strerror(errno)))")
    }
}

/// Where the mount tells whoever waits for it that it is ready, or why not
/// (from the thread that serves the mount, or the one that first asks it).
final class ReadinessReport: Sendable {
    /// The pipe to the waiting `isofuse mount`; nil in the foreground, and once told.
    private let descriptor: VisibleMutex<Int32?>

    init(descriptor: Int32?) {
        self.descriptor = VisibleMutex(descriptor)
        // The filesystem's own child processes must not hold the pipe open.
        if let descriptor { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
    }

    func ready() {
        send("ok")
    }

    /// The reason the mount failed, as one line (on stderr when no one waits on the pipe).
    func failed(_ message: String) {
        if descriptor.withLock({ $0 }) == nil {
            Terminal.error(message)
        } else {
            send(message.split(whereSeparator: \.isNewline).joined(separator: " "))
        }
    }

    private func send(_ line: String) {
        guard let descriptor = descriptor.withLock({ descriptor in defer { descriptor = nil }; return descriptor }) else {
            return
        }
        var bytes = Array((line + "\n").utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { break }
            bytes = bytes.dropFirst(written)
        }
        close(descriptor)
    }
}
