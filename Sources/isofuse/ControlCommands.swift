// Commands on a mount, spoken through its `.isofuse` control directory:
// status, commit, discard.

import ArgumentParser
import CLinux
import Glibc
import SessionStore
import Stage

/// A mounted isofuse directory and its control files.
struct ControlDirectory {
    let mountpoint: String

    private var control: String { mountpoint + "/.isofuse" }

    /// The daemon's status, from the JSON xattr of `.isofuse/status`.
    func status() throws(IsofuseError) -> StatusReport {
        let path = control + "/status"
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let n = getxattr(path, statusAttributeName, &buffer, buffer.count)
        guard n >= 0 else {
            throw IsofuseError(.notFound, "\(mountpoint) is not an isofuse mount (\(String(cString: strerror(errno))))")
        }
        do {
            return try StatusReport.decode(json: Array(buffer[..<n]))
        } catch {
            throw IsofuseError(.library, "\(mountpoint): the daemon's status cannot be read: \(error)")
        }
    }

    /// Touches a control file (or writes `word` to it).
    func trigger(_ name: String, word: String? = nil) throws(IsofuseError) {
        let path = control + "/" + name
        let fd = Glibc.open(path, O_WRONLY)
        guard fd >= 0 else { throw failure(name) }
        defer { close(fd) }
        if let word {
            guard Glibc.write(fd, word, word.utf8.count) == word.utf8.count else { throw failure(name) }
        } else {
            guard futimens(fd, nil) == 0 else { throw failure(name) }
        }
    }

    private func failure(_ name: String) -> IsofuseError {
        let code = errno
        let reason = code == EROFS
            ? "the mount is read-only, a session view, or its medium takes no more sessions"
            : String(cString: strerror(code))
        return IsofuseError(code == EROFS ? .readOnly : .hostIO, "\(mountpoint): cannot \(name): \(reason)")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shows the drive, the medium, the staged changes, a commit in progress and the last commit's result.")

    @Argument(help: "The mount point.") var mountpoint: String
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let status = try reportingFailures { () throws(IsofuseError) in try ControlDirectory(mountpoint: mountpoint).status() }
        if json {
            print(String(decoding: status.json(), as: UTF8.self))
        } else {
            print(status.text, terminator: "")
        }
    }
}

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Burns the staged changes as a new session and waits for it, showing progress.")

    @Argument(help: "The mount point.") var mountpoint: String
    @Flag(help: "Also close the medium: it takes no more sessions.") var close = false
    @Flag(help: "Start the commit and return at once.") var noWait = false

    func run() throws {
        let control = ControlDirectory(mountpoint: mountpoint)
        let result = try reportingFailures { () throws(IsofuseError) -> StatusReport? in
            // A commit already running has frozen its changes: wait for it, then start ours.
            var status = try control.status()
            while status.commit.state == .running {
                showProgress(status)
                usleep(200_000)
                status = try control.status()
            }
            let before = status.commit.sequence
            do throws(IsofuseError) {
                try control.trigger("commit", word: close ? "close" : nil)
            } catch {
                // A commit refused at its start says why in the status.
                let after = try control.status()
                guard after.commit.sequence > before, after.commit.state == .failed else { throw error }
                return after
            }
            if noWait { return nil }
            // Asked often at first, so that a short commit is not reported up to 0.2 s late.
            var interval = 0.01
            while true {
                status = try control.status()
                if status.commit.sequence > before && status.commit.state != .running { return status }
                showProgress(status)
                usleep(UInt32(interval * 1_000_000))
                interval = min(0.2, interval * 2)
            }
        }
        Terminal.endProgress()
        guard let result else { return }
        if result.commit.state == .failed {
            Terminal.error("commit failed: \(result.commit.message)")
            throw ExitCode.failure
        }
        print(result.commit.message)
    }

    private func showProgress(_ status: StatusReport) {
        let commit = status.commit
        let width = 30
        let filled = Int(Double(width) * min(100, commit.percent) / 100)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        Terminal.progress("session \(commit.session): [\(bar)] \(commit.percent.oneDecimalText(width: 5))% \(commit.phase) "
                          + "\(UInt64(commit.bytesPerSecond).byteCountText)/s")
    }
}

struct Discard: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drops every staged change (asks first).")

    @Argument(help: "The mount point.") var mountpoint: String
    @Flag(name: .shortAndLong, help: "Do not ask.") var yes = false

    func run() throws {
        let control = ControlDirectory(mountpoint: mountpoint)
        try reportingFailures { () throws(IsofuseError) in
            let staged = try control.status().staged
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    throw IsofuseError(.invalidArgument, "not discarding without asking: run it on a terminal, or pass --yes")
                }
                Terminal.write("Drop \(staged.added) added, \(staged.changed) changed and \(staged.removed) removed entries (\(staged.bytes.byteCountText))? [y/N] ")
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    throw IsofuseError(.invalidArgument, "nothing discarded")
                }
            }
            try control.trigger("discard")
        }
    }
}
