/// What an xorriso listing entry, a host file and a tree node have in common.
struct EntryShape: Equatable, CustomStringConvertible {
    var type: Character
    var permissions: UInt32
    var uid: UInt32
    var gid: UInt32
    /// Regular files only: xorriso shows 0 for directories and symlinks.
    var size: UInt64?
    var linkTarget: String?

    init(_ entry: Xorriso.Entry) {
        self.init(type: entry.type, permissions: entry.permissions, uid: entry.uid, gid: entry.gid,
                  size: entry.type == "-" ? entry.size : nil, linkTarget: entry.linkTarget)
    }

    init(type: Character, permissions: UInt32, uid: UInt32, gid: UInt32, size: UInt64?, linkTarget: String?) {
        self.type = type
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.size = size
        self.linkTarget = linkTarget
    }

    var description: String {
        "\(type) \(String(permissions, radix: 8)) \(uid):\(gid) \(size.map(String.init) ?? "") \(linkTarget ?? "")"
    }
}
