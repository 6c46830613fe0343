// What `.isofuse/status` and `isofuse status` tell: one value, rendered as
// the text people read and the JSON scripts read (the spec names its keys).

import FoundationEssentials
import SessionStore

public struct StatusReport: Codable, Hashable, Sendable {
    public struct Medium: Codable, Hashable, Sendable {
        public var status: String
        public var profile: String
        public var sessions: Int
        public var freeBytes: UInt64
        public var nextWritableBlock: UInt32
    }

    public struct Staged: Codable, Hashable, Sendable {
        public var added = 0
        public var changed = 0
        public var removed = 0
        public var bytes: UInt64 = 0
        public var predictedSessionBytes: UInt64 = 0
        /// The medium's free space after the next commit.
        public var freeBytesAfterCommit: UInt64 = 0
    }

    public struct Commit: Codable, Hashable, Sendable {
        public enum State: String, Codable, Sendable {
            case idle, running, succeeded, failed
        }
        public var state: State = .idle
        public var phase = ""
        public var percent = 0.0
        public var bytesPerSecond = 0.0
        /// The session being written, or written by the last commit.
        public var session = 0
        public var message = ""
        /// Counts the commits since the mount: `isofuse commit` waits for it to change.
        public var sequence = 0
    }

    public var pid: Int32
    public var drive: String
    /// "newest session" or "session N (read-only)".
    public var view: String
    public var readOnly: Bool
    public var staging: String?
    public var medium: Medium
    public var staged: Staged
    public var commit: Commit
    /// Things the user should know (staged changes moved aside, ...).
    public var notes: [String]

    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }

    public static func decode(json: [UInt8]) throws -> StatusReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(StatusReport.self, from: Data(json))
    }

    public var text: String {
        var lines = [
            "drive    : \(drive), \(view)\(readOnly ? ", read-only" : "")",
            "medium   : \(medium.profile), \(medium.status), \(medium.sessions) session\(medium.sessions == 1 ? "" : "s"), \(medium.freeBytes.byteCountText) free",
        ]
        if !readOnly {
            lines.append("staged   : \(staged.added) added, \(staged.changed) changed, \(staged.removed) removed, \(staged.bytes.byteCountText) of data")
            lines.append("next     : session \(medium.sessions + 1) of about \(staged.predictedSessionBytes.byteCountText) (directory tree included), leaving \(staged.freeBytesAfterCommit.byteCountText) free")
        }
        switch commit.state {
        case .idle:
            lines.append("commit   : none since mounting")
        case .running:
            lines.append("commit   : session \(commit.session), \(commit.phase) \(commit.percent.oneDecimalText())%, "
                         + "\(UInt64(commit.bytesPerSecond).byteCountText)/s")
        case .succeeded:
            lines.append("commit   : done: \(commit.message)")
        case .failed:
            lines.append("commit   : FAILED: \(commit.message)")
        }
        if let staging { lines.append("staging  : \(staging)") }
        lines += notes.map { "note     : \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension UInt64 {
    /// A byte count for people: "812 B", "1.6 MiB", "4.4 GiB".
    public var byteCountText: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(self), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(self) B" : "\(value.oneDecimalText()) \(units[unit])"
    }
}

extension Double {
    /// With one decimal, as printf's `%.1f` writes it, right-aligned in
    /// `width` characters (for percentages and sizes; no Foundation formatter,
    /// whose library brings ICU's 40 MB into every process).
    public func oneDecimalText(width: Int = 0) -> String {
        let tenths = (magnitude * 10).rounded()
        guard tenths < 1e15 else { return "\(self)" }
        let digits = "\(Int(tenths) / 10).\(Int(tenths) % 10)"
        let text = (self < 0 && tenths > 0 ? "-" : "") + digits
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
