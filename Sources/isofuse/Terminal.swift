// Output for people: sizes, dates, a progress line on stderr.

import FoundationEssentials
import Glibc
import SessionStore
import SystemPackage

enum Terminal {
    static func error(_ line: String) {
        write("isofuse: \(line)\n")
    }

    /// Writes to stderr, unbuffered.
    static func write(_ text: String) {
        _ = try? FileDescriptor.standardError.writeAll(text.utf8)
    }

    /// Whether stderr is a terminal (progress lines are for people, not logs).
    static let showsProgress = isatty(STDERR_FILENO) == 1

    /// Rewrites the progress line in place.
    static func progress(_ text: String) {
        guard showsProgress else { return }
        write("\r\u{1B}[K\(text)")
    }

    static func endProgress() {
        guard showsProgress else { return }
        write("\r\u{1B}[K")
    }

    /// "2026-11-22 05:00:00" (UTC) or "-".
    static func date(_ secondsSince1970: Int64?) -> String {
        guard let secondsSince1970 else { return "-" }
        return Date(timeIntervalSince1970: TimeInterval(secondsSince1970)).formatted(
            .iso8601.year().month().day().dateSeparator(.dash).dateTimeSeparator(.space).time(includingFractionalSeconds: false))
    }

    /// "2026-11-22T05:00:00Z".
    static func isoDate(_ secondsSince1970: Int64?) -> String? {
        secondsSince1970.map { Date(timeIntervalSince1970: TimeInterval($0)).formatted(.iso8601) }
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
