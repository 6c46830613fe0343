// Real mounts for the mount tests, made by the built `isofuse` binary: a fresh
// mount point (and by default a fresh --staging directory) in the test's
// TemporaryDirectory, the daemon's JSON status, commits, unmounting, and
// killing the daemon the hard way.
//
// Every mount must be undone, also when a test fails:
//     let mount = try IsofuseMount(image, in: dir)
//     defer { mount.cleanUp() }

import Foundation
import Testing

/// One `isofuse mount DRIVE MOUNTPOINT` (without -f: a daemon serves it).
final class IsofuseMount {
    /// Where the mount keeps its staged changes.
    enum Staging {
        /// A new directory in the test's TemporaryDirectory (`--staging`).
        case fresh
        /// This directory (`--staging`), e.g. the one of an earlier mount.
        case at(String)
        /// No `--staging`: the per-medium default under $XDG_STATE_HOME (pass it in `environment`).
        case defaultLocation
    }

    /// Whether FUSE can be used here at all; the mount tests are skipped without it.
    static let fuseAvailable = FileManager.default.fileExists(atPath: "/dev/fuse")
    /// Child processes speak C.
    static let cLocale = ["LANG": "C", "LC_ALL": "C"]
    /// The built isofuse executable, beside the test bundle.
    static var isofuse: String { CommandLineTests.isofuse }

    let drive: String
    let mountpoint: String
    /// The --staging directory, nil for the default location.
    let staging: String?
    let options: [String]
    let environment: [String: String]
    /// The daemon's pid, from its status.
    let daemon: Int32
    private let dir: TemporaryDirectory

    /// Mounts `drive` on a new directory in `dir` (or on `mountpoint`) and waits until
    /// the mount answers. Throws with isofuse's stderr when the mount fails; nothing is
    /// left mounted then.
    init(_ drive: String, in dir: TemporaryDirectory, staging: Staging = .fresh, options: [String] = [],
         environment: [String: String] = [:], mountpoint: String? = nil) throws {
        self.drive = drive
        self.dir = dir
        self.options = options
        self.environment = environment
        self.mountpoint = try mountpoint ?? Self.newDirectory(in: dir, named: "mnt")
        switch staging {
        case .fresh: self.staging = try Self.newDirectory(in: dir, named: "staging")
        case .at(let path): self.staging = path
        case .defaultLocation: self.staging = nil
        }
        let arguments = options + (self.staging.map { ["--staging", $0] } ?? [])
        let result = try Self.mount(drive, at: self.mountpoint, arguments, environment: environment)
        guard result.status == 0 else {
            Self.detach(self.mountpoint)
            throw Shell.Failure(description: "isofuse mount \(drive) \(self.mountpoint) \(arguments.joined(separator: " ")) "
                                + "exited with status \(result.status): \(result.stderr)")
        }
        guard Self.isMounted(self.mountpoint) else {
            throw Shell.Failure(description: "isofuse mount exited 0, but nothing is mounted on \(self.mountpoint)")
        }
        do {
            daemon = try Self.status(of: self.mountpoint).pid
        } catch {
            Self.detach(self.mountpoint)
            throw error
        }
    }

    /// The same drive mounted again with the same staging directory, options and
    /// environment (on a new mount point unless given one).
    func remount(mountpoint: String? = nil) throws -> IsofuseMount {
        try IsofuseMount(drive, in: dir, staging: staging.map { .at($0) } ?? .defaultLocation, options: options,
                         environment: environment, mountpoint: mountpoint)
    }

    /// mountpoint + "/" + relative
    func path(_ relative: String) -> String {
        mountpoint + "/" + relative
    }

    // MARK: Running isofuse

    /// Runs the isofuse executable (LANG=C), stopped after `timeout` seconds should it hang.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Int = 120) throws -> Shell.Result {
        try Shell.run(["timeout", "--kill-after=5", String(timeout), isofuse] + arguments,
                      environment: cLocale.merging(environment) { $1 })
    }

    /// `isofuse mount DRIVE MOUNTPOINT ARGUMENTS`, as it comes.
    static func mount(_ drive: String, at mountpoint: String, _ arguments: [String] = [],
                      environment: [String: String] = [:]) throws -> Shell.Result {
        try run(["mount", drive, mountpoint] + arguments, environment: environment, timeout: 60)
    }

    /// `isofuse commit MOUNTPOINT`: burns and waits.
    func commit(_ arguments: [String] = []) throws -> Shell.Result {
        try Self.run(["commit", mountpoint] + arguments, environment: environment)
    }

    /// `touch MOUNTPOINT/.isofuse/commit`: starts a commit and returns at once.
    func touchCommit() throws -> Shell.Result {
        try Shell.run(["touch", path(".isofuse/commit")], environment: Self.cLocale)
    }

    // MARK: Status

    /// The fields of the daemon's JSON status the tests look at (keys as the spec names them).
    struct Status {
        var pid: Int32
        var mediumStatus: String
        var sessions: Int
        var freeBytes: UInt64
        var added: Int
        var changed: Int
        var removed: Int
        var stagedBytes: UInt64
        var commitState: String
        var commitPhase: String
        var commitSession: Int
        var commitMessage: String
        var commitSequence: Int
        var notes: [String]
    }

    /// The xattr user.isofuse.status of .isofuse/status, read by getfattr.
    func status() throws -> Status {
        try Self.status(of: mountpoint)
    }

    static func status(of mountpoint: String) throws -> Status {
        let read = try Shell.run(["getfattr", "--only-values", "-n", "user.isofuse.status", mountpoint + "/.isofuse/status"],
                                 environment: cLocale)
        guard read.status == 0 else {
            throw Shell.Failure(description: "getfattr of \(mountpoint)/.isofuse/status: \(read.stderr)")
        }
        func fail(_ what: String) -> Shell.Failure {
            Shell.Failure(description: "status of \(mountpoint): \(what) in \(read.stdout)")
        }
        guard let json = try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: Any],
              let medium = json["medium"] as? [String: Any], let staged = json["staged"] as? [String: Any],
              let commit = json["commit"] as? [String: Any] else { throw fail("no medium, staged and commit objects") }
        func number(_ object: [String: Any], _ key: String) throws -> Int {
            guard let value = object[key] as? NSNumber else { throw fail("no number \(key)") }
            return value.intValue
        }
        func text(_ object: [String: Any], _ key: String) throws -> String {
            guard let value = object[key] as? String else { throw fail("no string \(key)") }
            return value
        }
        return Status(pid: Int32(try number(json, "pid")), mediumStatus: try text(medium, "status"),
                      sessions: try number(medium, "sessions"), freeBytes: UInt64(try number(medium, "free_bytes")),
                      added: try number(staged, "added"), changed: try number(staged, "changed"),
                      removed: try number(staged, "removed"), stagedBytes: UInt64(try number(staged, "bytes")),
                      commitState: try text(commit, "state"), commitPhase: try text(commit, "phase"),
                      commitSession: try number(commit, "session"),
                      commitMessage: try text(commit, "message"), commitSequence: try number(commit, "sequence"),
                      notes: json["notes"] as? [String] ?? [])
    }

    /// Waits until the commit after `sequence` has ended (succeeded or failed) and returns that status.
    func waitForCommit(after sequence: Int, timeout: TimeInterval = 120) throws -> Status {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let status = try status()
            if status.commitSequence > sequence && status.commitState != "running" { return status }
            guard Date() < deadline else {
                throw Shell.Failure(description: "the commit on \(mountpoint) did not end in \(timeout) s: \(status)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    // MARK: Ending

    /// `isofuse unmount MOUNTPOINT`, then waits (a little) for the daemon to exit.
    @discardableResult
    func unmount() throws -> Shell.Result {
        let result = try Self.run(["unmount", mountpoint], environment: environment, timeout: 60)
        if result.status == 0 { Self.waitForExit(daemon, timeout: 10) }
        return result
    }

    /// kill -9 of the daemon; once it is gone, `fusermount3 -uz` detaches the dead mount.
    func killDaemon() throws {
        guard kill(daemon, SIGKILL) == 0 else {
            throw Shell.Failure(description: "kill -9 \(daemon): \(String(cString: strerror(errno)))")
        }
        guard Self.waitForExit(daemon, timeout: 10) else {
            throw Shell.Failure(description: "the daemon \(daemon) lives on after kill -9")
        }
        Self.detach(mountpoint)
    }

    /// For `defer`: unmounts if still mounted, by isofuse, else lazily by fusermount3;
    /// never throws, never leaves the mount or its daemon behind.
    func cleanUp() {
        // Another mount may be on this path now (a remount): leave that one alone.
        let ours = (try? Self.status(of: mountpoint)).map { $0.pid == daemon } ?? true
        if Self.isMounted(mountpoint) && ours {
            _ = try? unmount()
            Self.detach(mountpoint)
        }
        if !Self.waitForExit(daemon, timeout: 10) {
            kill(daemon, SIGKILL)
            Self.waitForExit(daemon, timeout: 5)
        }
    }

    /// `fusermount3 -uz MOUNTPOINT` when something is mounted there.
    static func detach(_ mountpoint: String) {
        guard isMounted(mountpoint) else { return }
        _ = try? Shell.run(["fusermount3", "-uz", mountpoint], environment: cLocale)
    }

    // MARK: Processes and mounts

    /// Whether a mount is on exactly this path, by /proc/mounts (which writes a blank as \040).
    static func isMounted(_ mountpoint: String) -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        let escaped = mountpoint.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        return mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 && fields[1] == escaped
        }
    }

    /// Whether a process runs: it exists and is no zombie (its parent may be a
    /// PID 1 that never reaps).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.range(of: ")", options: .backwards) else { return false }
        let state = stat[close.upperBound...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Waits until `pid` is gone; false if it still runs after `timeout` seconds.
    @discardableResult
    static func waitForExit(_ pid: Int32, timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while isAlive(pid) {
            guard Date() < deadline else { return false }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return true
    }

    /// dir/name-1, -2, ...: a new directory each time.
    static func newDirectory(in dir: TemporaryDirectory, named name: String) throws -> String {
        var number = 1
        while FileManager.default.fileExists(atPath: dir.url("\(name)-\(number)")) { number += 1 }
        let path = dir.url("\(name)-\(number)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        return path
    }
}
