// Process-wide state of libisoburn, libisofs and libburn: initialization,
// the one lock every call into them takes, and their message queues.
//
// The libraries keep global state without locks (libisoburn's list of drive
// emulators, the two message queues), and their trees and drives are not
// thread-safe. So every call into them runs under `Libburnia.lock`. Reads of
// image files do not: they use their own descriptor (`ImageFileReader`).

import CIsoburn
#if canImport(Glibc)
import Glibc
#endif

/// One message from a library queue ("SORRY 0x20009 Neither stdio-path nor its directory exist").
struct LibraryMessage: Sendable, CustomStringConvertible {
    var severity: Severity
    var code: Int32
    var text: String
    var osErrno: Int32

    /// The libraries' severities, in their order.
    struct Severity: Comparable, Sendable {
        var name: String
        var rank: Int32
        static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }

        init(name: String) {
            self.name = name
            var rank: Int32 = 0
            withMutableCString(name) { _ = burn_text_to_sev($0, &rank, 0) }
            self.rank = rank
        }
        static let warning = Severity(name: "WARNING")
        static let sorry = Severity(name: "SORRY")
        static let failure = Severity(name: "FAILURE")
    }

    var description: String { "\(severity.name): \(text)" }

    /// The text, with the system's reason when the libraries name one ("No space left on device").
    var explanation: String {
        osErrno > 0 ? "\(text) (\(String(cString: strerror(osErrno))))" : text
    }
}

/// What the library lock protects besides the libraries themselves: the
/// drives this process holds, by `Drive.id`.
struct LibraryState: ~Copyable {
    var drives: [Int: DriveHandle] = [:]
    var nextDriveID = 1
}

enum Libburnia {
    /// Serializes every call into the three libraries (see the file header).
    static let lock = VisibleMutex(LibraryState())

    private static let initialization: Result<Void, IsofuseError> = {
        var message = [CChar](repeating: 0, count: 1024)
        guard isoburn_initialize(&message, 0) == 1 else {
            return .failure(IsofuseError(.library, "cannot initialize libisoburn: \(string(message))"))
        }
        guard isoburn_is_compatible(isoburn_header_version_major, isoburn_header_version_minor,
                                    isoburn_header_version_micro, 0) == 1 else {
            return .failure(IsofuseError(.library, "the installed libisoburn is older than the one isofuse was built with"))
        }
        // Rock Ridge names are byte strings. Under the C locale libisofs would
        // take them for ASCII and mangle every non-ASCII name when writing.
        withMutableCString("UTF-8") { _ = iso_set_local_charset($0, 0) }
        // Queue from NOTE up (not ALL: libisofs queues one DEBUG line per loaded
        // node), print nothing: isofuse reports errors itself.
        withMutableCString("NOTE") { queue in
            withMutableCString("NEVER") { print in
                withMutableCString("isofuse: ") { prefix in
                    _ = iso_set_msgs_severities(queue, print, prefix)
                    _ = burn_msgs_set_severities(queue, print, prefix)
                }
            }
        }
        return .success(())
    }()

    /// Runs `body` with the libraries initialized and locked.
    static func withLibrary<R: Sendable>(_ body: (inout LibraryState) throws(IsofuseError) -> R) throws(IsofuseError) -> R {
        try initialization.get()
        return try lock.withLock { state throws(IsofuseError) -> R in try body(&state) }
    }

    /// Takes every queued message out of both queues, oldest first.
    static func drainMessages() -> [LibraryMessage] {
        var messages: [LibraryMessage] = []
        var text = [CChar](repeating: 0, count: Int(max(ISO_MSGS_MESSAGE_LEN, BURN_MSGS_MESSAGE_LEN)))
        var severity = [CChar](repeating: 0, count: 80)
        var code: Int32 = 0, imageID: Int32 = 0, osErrno: Int32 = 0
        withMutableCString("ALL") { all in
            while iso_obtain_msgs(all, &code, &imageID, &text, &severity) == 1 {
                messages.append(LibraryMessage(severity: .init(name: string(severity)), code: code,
                                               text: string(text), osErrno: 0))
            }
            while burn_msgs_obtain(all, &code, &text, &osErrno, &severity) == 1 {
                messages.append(LibraryMessage(severity: .init(name: string(severity)), code: code,
                                               text: string(text), osErrno: osErrno))
            }
        }
        return messages
    }

    /// The most severe of the messages queued now, as text for an error line;
    /// `fallback` when the libraries said nothing useful.
    static func reason(_ fallback: String, in messages: [LibraryMessage]? = nil,
                       minimum: LibraryMessage.Severity = .sorry) -> String {
        let worst = (messages ?? drainMessages()).filter { $0.severity >= minimum }.max { $0.severity < $1.severity }
        return worst.map { "\(fallback): \($0.explanation)" } ?? fallback
    }
}

/// The text of a libisofs error code (`iso_error_to_msg`).
func isoErrorText(_ code: Int32) -> String {
    String(cString: iso_error_to_msg(code))
}

/// libburnia takes `char *` even for input strings; Swift only bridges `const char *`.
func withMutableCString<R>(_ string: String, _ body: (UnsafeMutablePointer<CChar>) throws -> R) rethrows -> R {
    var bytes = Array(string.utf8CString)
    return try bytes.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
}

/// A NUL-terminated C buffer as a String (invalid UTF-8 repaired).
func string(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
