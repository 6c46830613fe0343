// The daemon's status as any process reads it through the mount:
// getxattr(MOUNTPOINT/.isofuse/status, "user.isofuse.status"), one JSON object.
// `unmount` needs only the daemon's pid and whether a commit runs, so it
// decodes just those keys: it must find the daemon even if other keys change.

import CLinux
import FoundationEssentials
import Glibc
import Stage

struct DaemonIdentity: Decodable {
    struct Commit: Decodable {
        var state: String
    }
    var pid: Int32
    var commit: Commit?

    var isCommitting: Bool { commit?.state == "running" }

    /// nil if the mount does not answer (not isofuse, not mounted).
    init?(mountpoint: String) {
        guard let json = Self.readStatus(mountpoint + "/.isofuse/status"),
              let identity = try? JSONDecoder().decode(Self.self, from: Data(json)) else { return nil }
        self = identity
    }

    private static func readStatus(_ path: String) -> [UInt8]? {
        while true {
            // Ask the size, then read; the status may grow in between (ERANGE): ask again.
            let size = getxattr(path, statusAttributeName, nil, 0)
            guard size >= 0 else { return nil }
            var value = [UInt8](repeating: 0, count: size)
            let read = value.withUnsafeMutableBytes { getxattr(path, statusAttributeName, $0.baseAddress, $0.count) }
            if read >= 0 { return Array(value.prefix(read)) }
            guard errno == ERANGE else { return nil }
        }
    }
}
