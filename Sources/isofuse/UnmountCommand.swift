// `isofuse unmount MOUNTPOINT`: unmounts as `fusermount3 -u` does, then waits
// for the daemon to exit. The daemon finishes a running commit before it
// exits, so there is no time limit: a burn must not be cut short.

import ArgumentParser
import Foundation
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

/// `fusermount3 -u`, its complaint as one line.
enum FuseUnmount {
    static func run(_ mountpoint: String) throws(IsofuseError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["fusermount3", "-u", "--", mountpoint]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw IsofuseError(.hostIO, "cannot run fusermount3: \(error.localizedDescription)")
        }
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus != 0 else { return }
        let text = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: "; ")
        guard text.isEmpty else { throw IsofuseError(.hostIO, text) }
        throw IsofuseError(.hostIO, "fusermount3 -u \(mountpoint) failed with status \(process.terminationStatus)")
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
