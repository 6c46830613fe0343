// The DRIVE argument of every command, parsed once.
//
// libburn knows real drives by their device path and emulated media by the
// "stdio:" prefix; it does not know xorriso's "mmc:" prefix, and it refuses a
// plain file path. This type makes the spec's forms into what libburn takes.

import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

public struct DriveAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A recorder spoken to through SG_IO (MMC commands).
        case recorder
        /// An emulated overwritable medium stored in a file or block device.
        case image
    }

    public var kind: Kind
    /// The device node or image file.
    public var path: FilePath

    public init(kind: Kind, path: FilePath) {
        self.kind = kind
        self.path = path
    }

    /// Parses `/dev/srN`, `/dev/sgN`, `mmc:/path`, `stdio:/path` or a plain path.
    ///
    /// `/dev/sr*` and `/dev/sg*` are always recorders: taking one for an image
    /// when no drive answers would treat the disc as a block device.
    public init(parsing text: String) throws(IsofuseError) {
        if let rest = text.dropPrefix("mmc:") {
            self.init(kind: .recorder, path: try Self.nonEmpty(rest, text))
        } else if let rest = text.dropPrefix("stdio:") {
            self.init(kind: .image, path: try Self.nonEmpty(rest, text))
        } else {
            // /dev/cdrom, /dev/dvd are links to the recorder's node.
            let path = Self.resolvingLinks(try Self.nonEmpty(Substring(text), text))
            let isRecorder = Self.isRecorderNode(path)
            self.init(kind: isRecorder ? .recorder : .image, path: isRecorder ? path : FilePath(text))
        }
    }

    /// /dev/srN, /dev/sgN, /dev/scdN: the names the kernel gives optical drives.
    private static func isRecorderNode(_ path: FilePath) -> Bool {
        let name = path.lastComponent?.string ?? ""
        return path.removingLastComponent() == "/dev"
            && (name.hasPrefix("sr") || name.hasPrefix("sg") || name.hasPrefix("scd"))
    }

    private static func nonEmpty(_ path: Substring, _ text: String) throws(IsofuseError) -> FilePath {
        guard !path.isEmpty else {
            throw IsofuseError(.invalidArgument, "'\(text)' names no drive: give a device or a file path")
        }
        return FilePath(String(path))
    }

    private static func resolvingLinks(_ path: FilePath) -> FilePath {
        guard let resolved = realpath(path.string, nil) else { return path }
        defer { free(resolved) }
        return FilePath(String(cString: resolved))
    }

    /// What `isoburn_drive_aquire` is given.
    var libburnAddress: String {
        switch kind {
        case .recorder: path.string
        case .image: "stdio:" + path.string
        }
    }

    public var description: String {
        switch kind {
        case .recorder: Self.isRecorderNode(path) ? path.string : "mmc:" + path.string
        case .image: Self.isRecorderNode(path) ? "stdio:" + path.string : path.string
        }
    }
}

extension String {
    func dropPrefix(_ prefix: String) -> Substring? {
        hasPrefix(prefix) ? dropFirst(prefix.count) : nil
    }
}
