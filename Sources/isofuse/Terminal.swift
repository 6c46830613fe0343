// Output for people: sizes, dates, a progress line on stderr.

import Foundation
import SessionStore

enum Terminal {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data("isofuse: \(line)\n".utf8))
    }

    /// Whether stderr is a terminal (progress lines are for people, not logs).
    static let showsProgress = isatty(STDERR_FILENO) == 1

    /// Rewrites the progress line in place.
    static func progress(_ text: String) {
        guard showsProgress else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    static func endProgress() {
        guard showsProgress else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// "2026-11-22 05:00:00" (UTC) or "-".
    static func date(_ secondsSince1970: Int64?) -> String {
        guard let secondsSince1970 else { return "-" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(secondsSince1970)))
    }

    static func isoDate(_ secondsSince1970: Int64?) -> String? {
        secondsSince1970.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval($0))) }
    }

    /// Prints one JSON document on stdout.
    static func printJSON(_ value: some Encodable) throws(IsofuseError) {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } catch {
            throw IsofuseError(.library, "cannot encode JSON: \(error)")
        }
    }
}
