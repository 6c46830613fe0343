// Commands on a drive and its medium: toc, check, devices, blank, format, eject.

import ArgumentParser
import Glibc
import SessionStore
import Stage

struct Toc: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lists the sessions on a medium: number, start block, size, volume id, date.")

    @OptionGroup var target: DriveOption
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try reportingFailures { () throws(IsofuseError) in
            let medium = try target.open().medium()
            if json {
                try Terminal.printJSON(TocReport(medium))
            } else {
                printText(medium)
            }
        }
    }

    private func printText(_ medium: MediumInfo) {
        print("drive   : \(medium.address) (\(medium.driveName))")
        print("medium  : \(medium.profile.name), \(medium.status.rawValue), \(medium.sessions.count) session\(medium.sessions.count == 1 ? "" : "s"), \(medium.freeBytes.byteCountText) free")
        guard !medium.sessions.isEmpty else { return }
        let header = ["session", "start", "blocks", "size", "volume id", "date (UTC)"]
        let rows = medium.sessions.map {
            ["\($0.number)", "\($0.startBlock)", "\($0.blocks)", $0.byteCount.byteCountText, $0.volumeID,
             Terminal.date($0.creationTime)]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
        for row in [header] + rows {
            let cells = row.indices.map { column in
                // Numbers right-aligned, text left-aligned.
                column < 4 ? String(repeating: " ", count: widths[column] - row[column].count) + row[column]
                           : row[column] + String(repeating: " ", count: widths[column] - row[column].count)
            }
            print(String(cells.joined(separator: "  ").reversed().drop { $0 == " " }.reversed()))
        }
    }
}

/// `isofuse toc --json`.
struct TocReport: Encodable {
    struct Medium: Encodable {
        var status: String
        var profile: String
        var sessions: Int
        var freeBytes: UInt64
        var nextWritableBlock: UInt32
    }
    struct Session: Encodable {
        var number: Int
        var startBlock: UInt32
        var blocks: UInt32
        var bytes: UInt64
        var volumeId: String
        var date: String?
    }
    var drive: String
    var medium: Medium
    var sessions: [Session]

    init(_ info: MediumInfo) {
        drive = info.address.description
        medium = Medium(status: info.status.rawValue, profile: info.profile.name, sessions: info.sessions.count,
                        freeBytes: info.freeBytes, nextWritableBlock: info.nextWritableBlock)
        sessions = info.sessions.map {
            Session(number: $0.number, startBlock: $0.startBlock, blocks: $0.blocks, bytes: $0.byteCount,
                    volumeId: $0.volumeID, date: Terminal.isoDate($0.creationTime))
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-reads files and sessions and compares them with their recorded MD5s.",
        discussion: "Exit status: 0 all match, 1 a mismatch or unreadable data, 2 could not check.")

    @OptionGroup var target: DriveOption
    @Option(help: "Check only session N (1 is the oldest).") var session: Int?

    func run() throws {
        let report = try reportingFailures(exitStatus: 2) { () throws(IsofuseError) in
            try target.open().verify(session: session) { progress in
                let percent = progress.bytesTotal == 0 ? 100 : 100 * Double(progress.bytesDone) / Double(progress.bytesTotal)
                Terminal.progress("checking: \(percent.oneDecimalText(width: 5))% of \(progress.bytesTotal.byteCountText)")
            }
        }
        Terminal.endProgress()
        for problem in report.problems { print(problem) }
        let scope = report.sessionsChecked.count == 1 ? "session \(report.sessionsChecked[0])" : "\(report.sessionsChecked.count) sessions"
        let summary = "\(scope): \(report.filesChecked) files with MD5 checked, \(report.sessionsWithTags) sessions with checksum tags, \(report.bytesRead.byteCountText) read"
        switch report.verdict {
        case .match:
            print("\(summary): all match")
        case .mismatch:
            print("\(summary): \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            throw ExitCode(1)
        case .couldNotCheck:
            Terminal.error("\(target.drive) records no checksums (written without MD5s): nothing could be checked")
            throw ExitCode(2)
        }
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lists the optical recorders of this machine.")

    func run() throws {
        let recorders = try reportingFailures { () throws(IsofuseError) in try Drive.scanRecorders() }
        if recorders.isEmpty {
            Terminal.error("no recorders found (drives held by other programs are not listed)")
            return
        }
        for recorder in recorders {
            let link = recorder.link.map { " (\($0))" } ?? ""
            print("\(recorder.path)\(link)  \(recorder.vendor) \(recorder.product) \(recorder.revision)")
        }
    }
}

struct Blank: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Makes a rewritable medium writable from scratch (all its sessions are lost).")

    @OptionGroup var target: DriveOption
    @Option(help: "as_needed, fast, all or deformat_quickest.") var mode: BlankMode = .asNeeded

    func run() throws {
        let medium = try reportingFailures { () throws(IsofuseError) in
            try target.open().blank(mode: mode) { Terminal.progress("blanking: \($0.oneDecimalText(width: 5))%") }
        }
        Terminal.endProgress()
        print("\(medium.address): \(medium.status.rawValue)")
    }
}

extension BlankMode: ExpressibleByArgument {}

struct Format: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Formats a DVD-RW, DVD-RAM, BD-RE or BD-R, or lists the formats it can take.")

    @OptionGroup var target: DriveOption
    @Flag(help: "List the formats instead of formatting.") var list = false
    @Option(help: "as_needed or by_index_N.") var mode: FormatMode = .asNeeded

    func run() throws {
        try reportingFailures { () throws(IsofuseError) in
            let drive = try target.open()
            if list {
                let formats = try drive.formats()
                print("status: \(formats.status), current size \(formats.currentByteCount.byteCountText)")
                for format in formats.available {
                    let type = String(format.type, radix: 16)
                    print("by_index_\(format.index)  type 0x\(type.count < 2 ? "0" + type : type)  \(format.byteCount.byteCountText)")
                }
                return
            }
            let medium = try drive.format(mode: mode) { Terminal.progress("formatting: \($0.oneDecimalText(width: 5))%") }
            Terminal.endProgress()
            print("\(medium.address): \(medium.profile.name), \(medium.status.rawValue)")
        }
    }
}

extension FormatMode: ExpressibleByArgument {
    public init?(argument: String) {
        if argument == "as_needed" {
            self = .asNeeded
        } else if argument.hasPrefix("by_index_"), let index = Int(argument.dropFirst("by_index_".count)), index >= 0 {
            self = .byIndex(index)
        } else {
            return nil
        }
    }
}

struct Eject: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ejects the tray.")

    @OptionGroup var target: DriveOption

    func run() throws {
        try reportingFailures { () throws(IsofuseError) in try target.open().release(eject: true) }
    }
}
