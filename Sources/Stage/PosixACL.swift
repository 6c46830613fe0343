// POSIX ACLs as the kernel passes them (the `system.posix_acl_access` and
// `system.posix_acl_default` xattrs, Linux's binary form) and as libisofs
// records them (long text form; libisofs gives names for ids the host knows). `cp -a` and `setfacl` set the
// binary form; the medium gets the text form in AAIP.

import Glibc
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
        guard let parsed = ACLEntries(text) else { return nil }
        var entries: [(tag: UInt16, permissions: UInt16, id: UInt32)] = []
        for entry in parsed.entries {
            let qualified = !entry.qualifier.isEmpty
            guard let kind = tags.first(where: { $0.name == entry.tag && $0.qualified == qualified }) else { return nil }
            guard let id = qualified ? id(of: String(entry.qualifier), isGroup: entry.tag == "group") : undefinedID
            else { return nil }
            entries.append((kind.tag, UInt16(entry.bits), id))
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
        guard let entries = ACLEntries(text), entries.isMinimal else { return nil }
        return permissions(ofAccess: text)
    }

    /// The permission bits an access ACL stands for (POSIX.1e): the owner's
    /// from `user::`, the group's from `mask::` (`group::` when there is no
    /// mask), the others' from `other::`.
    static func permissions(ofAccess text: String) -> UInt32? {
        guard let entries = ACLEntries(text),
              let owner = entries.bits(of: "user"), let other = entries.bits(of: "other"),
              let group = entries.bits(of: "mask") ?? entries.bits(of: "group") else { return nil }
        return owner << 6 | group << 3 | other
    }

    /// An access ACL after chmod: `user::`, `mask::` (or `group::`) and
    /// `other::` take the new permission bits, as on ext4 (posix_acl_chmod).
    static func access(_ text: String, withPermissions permissions: UInt32) -> String {
        guard var entries = ACLEntries(text) else { return text }
        entries.setBits(of: "user", to: permissions >> 6 & 7)
        entries.setBits(of: entries.bits(of: "mask") != nil ? "mask" : "group", to: permissions >> 3 & 7)
        entries.setBits(of: "other", to: permissions & 7)
        return entries.text
    }

    /// What a new node gets from its directory's default ACL (posix_acl_create):
    /// the default ACL with `user::`, `mask::` (or `group::`) and `other::`
    /// limited to the requested permissions, and the permissions that ACL
    /// stands for. The ACL is nil when it says no more than the permissions.
    static func inherited(fromDefault text: String, permissions: UInt32) -> (access: String?, permissions: UInt32)? {
        guard var entries = ACLEntries(text) else { return nil }
        let groupTag = entries.bits(of: "mask") != nil ? "mask" : "group"
        for (tag, shift) in [("user", UInt32(6)), (groupTag, 3), ("other", 0)] {
            guard let bits = entries.bits(of: tag) else { return nil }
            entries.setBits(of: tag, to: bits & permissions >> shift & 7)
        }
        let access = entries.text
        guard let bits = Self.permissions(ofAccess: access) else { return nil }
        return (Self.permissions(ofMinimal: access) == nil ? access : nil, permissions & 0o7000 | bits)
    }

    /// A qualifier's numeric id. libisofs gives names where the host knows
    /// the id (as getfacl does), so those are looked up again.
    private static func id(of qualifier: String, isGroup: Bool) -> UInt32? {
        if let number = UInt32(qualifier) { return number }
        var buffer = [CChar](repeating: 0, count: 16_384)
        if isGroup {
            var group = group(), result: UnsafeMutablePointer<group>?
            guard getgrnam_r(qualifier, &group, &buffer, buffer.count, &result) == 0, let result else { return nil }
            return result.pointee.gr_gid
        }
        var user = passwd(), result: UnsafeMutablePointer<passwd>?
        guard getpwnam_r(qualifier, &user, &buffer, buffer.count, &result) == 0, let result else { return nil }
        return result.pointee.pw_uid
    }

    private static func littleEndian32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    private static func littleEndianBytes(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }
}

/// The entries of an ACL's text form, one "tag:qualifier:rwx" line each.
private struct ACLEntries {
    private(set) var entries: [(tag: Substring, qualifier: Substring, bits: UInt32)] = []

    init?(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, fields[2].utf8.count == 3 else { return nil }
            let rwx = Array(fields[2].utf8)
            let bits = UInt32((rwx[0] == UInt8(ascii: "r") ? 4 : 0) | (rwx[1] == UInt8(ascii: "w") ? 2 : 0)
                              | (rwx[2] == UInt8(ascii: "x") ? 1 : 0))
            entries.append((fields[0], fields[1], bits))
        }
    }

    /// Only `user::`, `group::` and `other::`: the permission bits and nothing more.
    var isMinimal: Bool {
        entries.count == 3 && ["user", "group", "other"].allSatisfy { bits(of: $0) != nil }
    }

    /// The bits of the unqualified entry with this tag ("user::", "mask::", ...).
    func bits(of tag: String) -> UInt32? {
        entries.first { $0.tag == tag && $0.qualifier.isEmpty }?.bits
    }

    mutating func setBits(of tag: String, to bits: UInt32) {
        guard let index = entries.firstIndex(where: { $0.tag == tag && $0.qualifier.isEmpty }) else { return }
        entries[index].bits = bits
    }

    var text: String {
        entries.map { entry in
            let rwx = (entry.bits & 4 != 0 ? "r" : "-") + (entry.bits & 2 != 0 ? "w" : "-") + (entry.bits & 1 != 0 ? "x" : "-")
            return "\(entry.tag):\(entry.qualifier):\(rwx)\n"
        }.joined()
    }
}

extension PosixACL {
    /// The xattrs as the kernel sees them: a node's own, and its ACLs in binary form.
    static func extendedAttributes(_ xattrs: [String: [UInt8]], _ acl: ACLText?) -> [String: [UInt8]] {
        var all = xattrs
        // An access ACL that says no more than the mode is not one (libisofs
        // makes one from the mode for a directory with only a default ACL).
        if let text = acl?.access, permissions(ofMinimal: text) == nil, let access = binary(fromText: text) {
            all[accessName] = access
        }
        if let defaults = acl?.default.flatMap(binary(fromText:)) { all[defaultName] = defaults }
        return all
    }
}

extension Metadata {
    var extendedAttributes: [String: [UInt8]] { PosixACL.extendedAttributes(xattrs, acl) }
}

extension NodeAttributes {
    var extendedAttributes: [String: [UInt8]] { PosixACL.extendedAttributes(xattrs, acl) }
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
            // Any access ACL sets the permission bits it stands for: the kernel
            // checks permissions with both (FUSE_CAP_POSIX_ACL).
            if name == PosixACL.accessName {
                guard let bits = PosixACL.permissions(ofAccess: parsed) else { throw .invalidArgument }
                permissions = permissions & 0o7000 | bits
                if PosixACL.permissions(ofMinimal: parsed) != nil { text = nil }
            }
        }
        var acl = self.acl ?? ACLText(access: nil, default: nil)
        if name == PosixACL.accessName { acl.access = text } else { acl.default = text }
        self.acl = acl.access == nil && acl.default == nil ? nil : acl
    }
}

extension Metadata {
    /// chmod: the permission bits, and the access ACL's entries that stand for them.
    mutating func setPermissions(_ newPermissions: UInt32) {
        permissions = newPermissions & 0o7777
        if let access = acl?.access {
            acl?.access = PosixACL.access(access, withPermissions: permissions)
        }
    }

    /// The metadata of a node made in a directory with this metadata: with a
    /// default ACL, the node inherits it and the umask does not apply (as on
    /// ext4); without one, the umask does.
    func inheritedACL(for kind: NodeKind, permissions requested: UInt32, umask: UInt32) -> (permissions: UInt32, acl: ACLText?) {
        guard kind != .symlink, let defaults = acl?.default,
              let inherited = PosixACL.inherited(fromDefault: defaults, permissions: requested) else {
            return (requested & ~umask, nil)
        }
        let acl = ACLText(access: inherited.access, default: kind == .directory ? defaults : nil)
        return (inherited.permissions, acl.access == nil && acl.default == nil ? nil : acl)
    }
}
