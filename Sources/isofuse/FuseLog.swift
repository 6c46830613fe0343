// libfuse's own messages ("fuse: bad mount point ...", "fuse: unknown
// option(s) ...") are kept instead of printed, so that a failed mount reports
// one line that includes the reason. Once the mount is up, they go to stderr.

@preconcurrency import Glibc
import CFuse3
import SessionStore

enum FuseLog {
    private struct State {
        var lastError: String?
        var echoes = false
        /// libfuse writes some lines in pieces; a line ends with "\n".
        var partial = ""
    }
    private static let state = VisibleMutex(State())

    /// Routes libfuse's messages here (for the whole process).
    static func install() {
        fuse_set_log_func { level, format, arguments in
            guard let format, let arguments else { return }
            var text = [CChar](repeating: 0, count: 1024)
            _ = vsnprintf(&text, text.count, format, arguments)
            FuseLog.record(level, text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
    }

    /// The last error libfuse reported, without its "fuse: " prefix.
    static var lastError: String? {
        state.withLock { $0.lastError }
    }

    /// Print messages from now on (when the mount is up and stderr is someone's).
    static func echoToStandardError() {
        state.withLock { $0.echoes = true }
    }

    private static func record(_ level: fuse_log_level, _ message: String) {
        guard level.rawValue <= FUSE_LOG_NOTICE.rawValue else { return }
        let line: String? = state.withLock { state in
            state.partial += message
            guard state.partial.hasSuffix("\n") else { return nil }
            var text = Substring(state.partial)
            state.partial = ""
            while text.last?.isNewline == true { text = text.dropLast() }
            if text.hasPrefix("fuse: ") { text = text.dropFirst("fuse: ".count) }
            if level.rawValue <= FUSE_LOG_ERR.rawValue { state.lastError = String(text) }
            return state.echoes ? String(text) : nil
        }
        if let line { Terminal.error(line) }
    }
}
