// The one error type of isofuse. The CLI prints `description` as one line;
// the mount maps `code` to one errno (`IsofuseError.Code.errno`).

#if canImport(Glibc)
import Glibc
#endif

public struct IsofuseError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; decides the exit status and the errno.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Sendable {
            case invalidArgument = "invalid argument"
            case driveNotFound = "drive not found"
            case driveBusy = "drive busy"
            case noMedium = "no medium"
            case mediumChanged = "medium changed"
            case unsuitableMedium = "unsuitable medium"
            case corruptMedium = "corrupt medium"
            case readError = "read error"
            case notFound = "not found"
            case noSpace = "no space"
            case readOnly = "read-only"
            case writeFailed = "write failed"
            case verifyFailed = "verify failed"
            case unsupported = "unsupported"
            case hostIO = "host I/O error"
            case library = "library failure"
        }
        private let kind: Kind

        /// A command-line argument or an API parameter is wrong.
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// No drive or image answers at the address.
        public static let driveNotFound = Code(kind: .driveNotFound)
        /// The drive is held by another process or busy with an operation.
        public static let driveBusy = Code(kind: .driveBusy)
        /// The drive holds no medium (or its tray is open).
        public static let noMedium = Code(kind: .noMedium)
        /// The medium in the drive is no longer the one that was read (swapped, or written by another program).
        public static let mediumChanged = Code(kind: .mediumChanged)
        /// The medium cannot be used for what was asked (e.g. blanking a CD-R).
        public static let unsuitableMedium = Code(kind: .unsuitableMedium)
        /// The medium holds something that is not a readable ISO 9660 session.
        public static let corruptMedium = Code(kind: .corruptMedium)
        /// Sectors of the medium could not be read.
        public static let readError = Code(kind: .readError)
        /// A path or session does not exist.
        public static let notFound = Code(kind: .notFound)
        /// The change does not fit on the medium.
        public static let noSpace = Code(kind: .noSpace)
        /// The medium, the drive or the view cannot be written.
        public static let readOnly = Code(kind: .readOnly)
        /// Writing a session failed; earlier sessions are intact.
        public static let writeFailed = Code(kind: .writeFailed)
        /// Data read back does not match its recorded checksums.
        public static let verifyFailed = Code(kind: .verifyFailed)
        /// The medium or drive cannot do this.
        public static let unsupported = Code(kind: .unsupported)
        /// A host file could not be read or written.
        public static let hostIO = Code(kind: .hostIO)
        /// libisoburn, libisofs or libburn refused without a more specific reason.
        public static let library = Code(kind: .library)

        public var description: String { kind.rawValue }

        /// The errno the mount answers with for this kind of failure.
        public var errno: Int32 {
            switch kind {
            case .invalidArgument: EINVAL
            case .driveNotFound, .noMedium, .mediumChanged: ENOMEDIUM
            case .driveBusy: EBUSY
            case .unsuitableMedium, .unsupported: ENOTSUP
            case .corruptMedium, .readError, .writeFailed, .verifyFailed, .hostIO, .library: EIO
            case .notFound: ENOENT
            case .noSpace: ENOSPC
            case .readOnly: EROFS
            }
        }
    }

    public var code: Code
    /// What went wrong, in words a user understands, with the libraries' own text.
    public var message: String
    /// The underlying failure, if any (an errno, another error).
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
