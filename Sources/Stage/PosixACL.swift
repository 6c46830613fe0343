// POSIX ACLs as the kernel passes them (the `system.posix_acl_access` and
// `system.posix_acl_default` xattrs, Linux's binary form) and as libisofs
// records them (long text form, numeric ids). `cp -a` and `setfacl` set the
// binary form; the medium gets the text form in AAIP.

import SessionStore
import SystemPackage

public enum PosixACL {
    public static let accessName = "system.posix_acl_access"
    public static let defaultName = "system.posix_acl_default"

    private static let version: UInt32 = 2
    private static let undefinedID: UInt32 = 0xFFFF_FFFF
    private static let tags: [(tag: UInt16, name: String, qualified: Bool)] = [
        (0x01, "user", false), (0x02, "user", true), (0x04, "group", false),
        (0x08, "group", true), (0x10, "mask", false), (0x20, "other", false),
    ]

    /// The text form of a binary ACL ("user::rw-\nuser:1000:r--\n..."); nil if malformed.
    public static func text(fromBinary bytes: [UInt8]) -> String? {
        guard bytes.count >= 4, (bytes.count - 4) % 8 == 0, littleEndian32(bytes, 0) == version else { return nil }
        var lines: [String] = []
        for offset in stride(from: 4, to: bytes.count, by: 8) {
            let tag = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            let permissions = bytes[offset + 2]
            let id = littleEndian32(bytes, offset + 4)
            guard let kind = tags.first(where: { $0.tag == tag }) else { return nil }
            let qualifier = kind.qualified ? String(id) : ""
            let rwx = (permissions & 4 != 0 ? "r" : "-") + (permissions & 2 != 0 ? "w" : "-") + (permissions & 1 != 0 ? "x" : "-")
            lines.append("\(kind.name):\(qualifier):\(rwx)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The binary form of a text ACL; nil if it holds an entry it cannot express.
    public static func binary(fromText text: String) -> [UInt8]? {
        var entries: [(tag: UInt16, permissions: UInt16, id: UInt32)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 3 else { return nil }
            let qualified = !fields[1].isEmpty
            guard let kind = tags.first(where: { $0.name == fields[0] && $0.qualified == qualified }) else { return nil }
            let id = qualified ? UInt32(fields[1]) : undefinedID
            guard let id else { return nil }   // names instead of numbers: not from libisofs
            let rwx = Array(fields[2].utf8)
            guard rwx.count == 3 else { return nil }
            let permissions = UInt16((rwx[0] == UInt8(ascii: "r") ? 4 : 0) | (rwx[1] == UInt8(ascii: "w") ? 2 : 0)
                                     | (rwx[2] == UInt8(ascii: "x") ? 1 : 0))
            entries.append((kind.tag, permissions, id))
        }
        var bytes = littleEndianBytes(version)
        for entry in entries.sorted(by: { ($0.tag, $0.id) < ($1.tag, $1.id) }) {
            bytes += [UInt8(entry.tag & 0xFF), UInt8(entry.tag >> 8), UInt8(entry.permissions & 0xFF), UInt8(entry.permissions >> 8)]
            bytes += littleEndianBytes(entry.id)
        }
        return bytes
    }

    /// The rwx bits an ACL of only `user::`, `group::` and `other::` stands for; nil for any other ACL.
    public static func permissions(ofMinimal text: String) -> UInt32? {
        let shifts = ["user": 6, "group": 3, "other": 0]
        var bits: UInt32 = 0
        let lines = text.split(separator: "\n")
        guard lines.count == 3 else { return nil }
        for line in lines {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, fields[1].isEmpty, let shift = shifts[String(fields[0])] else { return nil }
            let rwx = Array(fields[2].utf8)
            let value = (rwx[0] == UInt8(ascii: "r") ? 4 : 0) | (rwx[1] == UInt8(ascii: "w") ? 2 : 0) | (rwx[2] == UInt8(ascii: "x") ? 1 : 0)
            bits |= UInt32(value) << UInt32(shift)
        }
        return bits
    }

    private static func littleEndian32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    private static func littleEndianBytes(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }
}

extension Metadata {
    /// The xattrs as the kernel sees them: the node's own, and its ACLs in binary form.
    var extendedAttributes: [String: [UInt8]] {
        var all = xattrs
        if let access = acl?.access.flatMap(PosixACL.binary(fromText:)) { all[PosixACL.accessName] = access }
        if let defaults = acl?.default.flatMap(PosixACL.binary(fromText:)) { all[PosixACL.defaultName] = defaults }
        return all
    }
}

extension Metadata {
    /// Sets (or with nil removes) an xattr; the ACL names set the ACLs.
    mutating func setExtendedAttribute(_ name: String, _ value: [UInt8]?) throws(Errno) {
        guard name == PosixACL.accessName || name == PosixACL.defaultName else {
            xattrs[name] = value
            return
        }
        var text: String?
        if let value {
            guard let parsed = PosixACL.text(fromBinary: value) else { throw .invalidArgument }
            text = parsed
            // An access ACL of only the owner, group and other entries is the
            // mode itself: like ext4, keep it as permission bits (cp -a sets such ACLs).
            if name == PosixACL.accessName, let bits = PosixACL.permissions(ofMinimal: parsed) {
                permissions = permissions & 0o7000 | bits
                text = nil
            }
        }
        var acl = self.acl ?? ACLText(access: nil, default: nil)
        if name == PosixACL.accessName { acl.access = text } else { acl.default = text }
        self.acl = acl.access == nil && acl.default == nil ? nil : acl
    }
}
