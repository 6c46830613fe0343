// The command line. Every command reports a failure as one line on stderr
// and a non-zero exit status (see `reportingFailures`).

import ArgumentParser
import SessionStore

@main
struct Isofuse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Multisession optical media (and ISO images) as a directory you can copy into.",
        subcommands: [Mount.self, Unmount.self, Toc.self, Check.self, Devices.self, Blank.self, Format.self, Eject.self,
                      Status.self, Commit.self, Discard.self])
}

/// The DRIVE argument: `/dev/srN`, `mmc:/path`, `stdio:/path` or an image file.
struct DriveOption: ParsableArguments {
    @Argument(help: "The drive: /dev/srN, mmc:/path, stdio:/path, or an image file.")
    var drive: String

    func open() throws(IsofuseError) -> Drive {
        try Drive(DriveAddress(parsing: drive))
    }
}

/// Runs a command body; an `IsofuseError` becomes one line on stderr and exit status `status`.
func reportingFailures<R>(exitStatus status: Int32 = 1, _ body: () throws(IsofuseError) -> R) throws(ExitCode) -> R {
    do {
        return try body()
    } catch {
        Terminal.error(error.description)
        throw ExitCode(status)
    }
}
