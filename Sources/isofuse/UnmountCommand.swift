// `isofuse unmount MOUNTPOINT`: unmounts as `fusermount3 -u` does, then waits
// for the daemon to exit. The daemon finishes a running commit before it
// exits, so there is no time limit: a burn must not be cut short.

import ArgumentParser
import FoundationEssentials
@preconcurrency import Glibc
import SessionStore

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmounts; waits for a running commit to end.")

    @Argument(help: "The directory the medium is mounted on.") var mountpoint: String

    func run() throws {
        try reportingFailures { () throws(IsofuseError) in
            // Read before unmounting: afterwards the status is out of reach.
            // Not an isofuse mount (or not mounted): fusermount3 says what is wrong.
            let daemon = DaemonIdentity(mountpoint: mountpoint)
            try FuseUnmount.run(mountpoint)
            if let daemon {
                DaemonExit.wait(for: daemon.pid, committing: daemon.isCommitting)
            }
        }
    }
}

/// `fusermount3 -u`, its complaint as one line. Spawned and reaped here:
/// Foundation's `Process` can wait forever for a child that has exited (its
/// run loop misses the exit when it cannot make its wakeup socket pair).
enum FuseUnmount {
    static func run(_ mountpoint: String) throws(IsofuseError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw IsofuseError(.hostIO, "cannot run fusermount3: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 2)
        let words = ["fusermount3", "-u", "--", mountpoint]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, "fusermount3", &actions, nil, argv, environ)
        close(ends[1])
        defer { close(ends[0]) }
        guard spawned == 0 else {
            throw IsofuseError(.hostIO, "cannot run fusermount3: \(String(cString: strerror(spawned)))")
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(ends[0], &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            output += chunk[..<count]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status != 0 else { return }
        let text = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: "; ")
        guard text.isEmpty else { throw IsofuseError(.hostIO, text) }
        throw IsofuseError(.hostIO, "fusermount3 -u \(mountpoint) failed with status \((status >> 8) & 0xff)")
    }
}

/// Waiting for another process to exit (it is not our child: poll).
enum DaemonExit {
    static func wait(for pid: pid_t, committing: Bool) {
        guard pid > 0, pid != getpid() else { return }
        if committing { Terminal.progress("waiting for the running commit to finish...") }
        var waited = 0
        while isAlive(pid) {
            usleep(50_000)
            waited += 1
            if waited == 20 && !committing {
                Terminal.progress("waiting for the isofuse daemon (pid \(pid)) to finish...")
            }
        }
        if committing || waited >= 20 { Terminal.endProgress() }
    }

    /// A zombie has exited too: its parent (init, once we are gone) may take a while to reap it.
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // /proc/PID/stat: "PID (NAME) STATE ..."; NAME may hold spaces and parentheses.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: end)...].dropFirst().first != "Z"
    }
}
