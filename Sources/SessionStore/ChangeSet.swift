// What a new session changes against the newest one, as plain values. The
// staging overlay produces it; `Drive.append` applies it to the loaded tree
// in order and writes the result.

import SystemPackage

/// Owner, permissions, times, xattrs and ACLs of an entry.
public struct Metadata: Hashable, Sendable, Codable {
    /// Permission bits (07777).
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var accessTime: Timestamp
    public var modificationTime: Timestamp
    public var changeTime: Timestamp
    public var xattrs: [String: [UInt8]]
    public var acl: ACLText?

    public init(permissions: UInt32, uid: UInt32, gid: UInt32, accessTime: Timestamp,
                modificationTime: Timestamp, changeTime: Timestamp,
                xattrs: [String: [UInt8]] = [:], acl: ACLText? = nil) {
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
        self.xattrs = xattrs
        self.acl = acl
    }
}

/// A change of some metadata of an existing entry; nil fields stay as they are.
public struct MetadataChange: Hashable, Sendable {
    public var permissions: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var accessTime: Timestamp?
    public var modificationTime: Timestamp?
    public var changeTime: Timestamp?
    /// xattrs to set (added or replaced).
    public var setXattrs: [String: [UInt8]]
    /// xattr names to remove.
    public var removeXattrs: [String]
    /// New ACLs; `.some(nil)` removes them.
    public var acl: ACLText??

    public init(permissions: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
                accessTime: Timestamp? = nil, modificationTime: Timestamp? = nil, changeTime: Timestamp? = nil,
                setXattrs: [String: [UInt8]] = [:], removeXattrs: [String] = [], acl: ACLText?? = nil) {
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
        self.setXattrs = setXattrs
        self.removeXattrs = removeXattrs
        self.acl = acl
    }
}

public struct ChangeSet: Sendable {
    /// What a new entry is made of.
    public enum Content: Hashable, Sendable {
        /// A regular file whose bytes are read from a host file during the write.
        /// Entries added from the same host file with equal metadata become hard links.
        case file(FilePath)
        case directory
        /// The target's bytes, as readlink(2) gives them.
        case symlink(target: [UInt8])
        case fifo
    }

    public enum Operation: Hashable, Sendable {
        /// Adds an entry at an absolute path. An existing entry there is
        /// replaced, except that a directory added over a directory keeps its
        /// contents and only takes the new metadata.
        case add(path: MediumPath, content: Content, metadata: Metadata)
        /// Removes an entry (a directory with everything below it).
        case remove(path: MediumPath)
        /// Moves an entry, replacing what is at the destination (as rename(2) does).
        case rename(from: MediumPath, to: MediumPath)
        case update(path: MediumPath, change: MetadataChange)
    }

    public var operations: [Operation]
    /// The new session's volume id; nil keeps the current one.
    public var volumeID: String?

    public init(_ operations: [Operation] = [], volumeID: String? = nil) {
        self.operations = operations
        self.volumeID = volumeID
    }
}
