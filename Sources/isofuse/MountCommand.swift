// `isofuse mount DRIVE MOUNTPOINT`: returns once the mount is ready, leaving
// a daemon that serves it (see DaemonLauncher.swift); with -f it serves the
// mount itself until it is unmounted.

import ArgumentParser
import FoundationEssentials
@preconcurrency import Glibc
import SessionStore
import Stage
import SystemPackage

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mounts a medium as a directory; returns once the mount is ready.",
        discussion: """
            Changes made in the directory are staged on the host disk. Touch MOUNTPOINT/.isofuse/commit \
            (or run `isofuse commit MOUNTPOINT`) to burn them as a new session.
            """)

    @OptionGroup var target: DriveOption
    @Argument(help: "The directory to mount on.") var mountpoint: String

    @Flag(name: [.customShort("f"), .long], help: "Serve the mount in this process instead of a daemon.")
    var foreground = false
    @Option(help: ArgumentHelp("Where pending changes live (default: one directory per medium under ~/.local/state/isofuse).",
                               valueName: "dir"))
    var staging: String?
    @Option(help: ArgumentHelp("Show session N, read-only (1 is the oldest).", valueName: "n"))
    var session: Int?
    @Flag(help: "Refuse every change.")
    var readOnly = false
    @Flag(help: "Close the medium with every commit, so that it takes no more sessions.")
    var closeOnCommit = false
    @Flag(help: "Do not read a new session back and check its MD5s before switching to it.")
    var noVerify = false
    @Option(help: ArgumentHelp("For image files: the medium's size (default: what the host disk has free).",
                               discussion: "700M, 4.7G, 25G: K, M, G, T are powers of 1000; Ki, Mi, Gi, Ti of 1024.",
                               valueName: "size"))
    var capacity: ByteSize?
    @Option(name: .customShort("o", allowingJoined: true), help: ArgumentHelp("FUSE mount options, comma-separated (allow_other, ...).",
                                                        valueName: "options"))
    var fuseOptions: [String] = []
    /// Set by DaemonLauncher for the daemon it starts.
    @Option(help: .private)
    var readyFd: Int32?

    func validate() throws {
        if let session, session < 1 {
            throw ValidationError("--session must be 1 or more (1 is the oldest session)")
        }
        if let capacity, capacity.bytes == 0 {
            throw ValidationError("--capacity must be more than 0 bytes")
        }
        // libfuse refuses a mount whose INIT and mount option disagree on it.
        if fuseOptions.flatMap({ $0.split(separator: ",") }).contains(where: { $0.hasPrefix("max_read=") }) {
            throw ValidationError("-o max_read is isofuse's own (\(FuseConnection.maxRead) bytes: the largest read that is spliced)")
        }
    }

    func run() throws {
        guard foreground else {
            try reportingFailures { () throws(IsofuseError) in try DaemonLauncher.start(CommandLine.arguments) }
            return
        }
        let report = ReadinessReport(descriptor: readyFd)
        do throws(IsofuseError) {
            let service = try makeService()
            // A daemon must not keep the directory it was started in busy (its paths are absolute now).
            if readyFd != nil { _ = chdir("/") }
            try service.run(ready: report.ready)
        } catch {
            report.failed(error.description)
            throw ExitCode(1)
        }
    }

    /// The mount as asked for, every path absolute.
    private func makeService() throws(IsofuseError) -> MountService {
        let parsed = try DriveAddress(parsing: target.drive)
        let options = MountOptions(drive: DriveAddress(kind: parsed.kind, path: Self.absolute(parsed.path)),
                                   staging: staging.map { Self.absolute(FilePath($0)) },
                                   session: session, readOnly: readOnly, closeOnCommit: closeOnCommit,
                                   verify: !noVerify, capacity: capacity?.bytes)
        return MountService(options: options, mountpoint: Self.absolute(FilePath(mountpoint)), fuseOptions: fuseOptions)
    }

    private static func absolute(_ path: FilePath) -> FilePath {
        let path = path.isAbsolute ? path : FilePath(FileManager.default.currentDirectoryPath).pushing(path)
        return path.lexicallyNormalized()
    }
}
