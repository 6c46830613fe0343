// What a medium is and holds, as plain values: copied out of libburn so that
// callers never touch a drive to answer "what is on it".

/// The state of a medium, as the spec names it.
public enum MediumStatus: String, Sendable, Hashable {
    /// Nothing written yet: the first commit makes session 1.
    case blank
    /// Holds sessions and takes more.
    case appendable
    /// Holds sessions and takes no more (closed by a final session).
    case closed
    /// Cannot be written at all: pressed media, a read-only drive or image file.
    case rom
}

/// The medium type libburn reports ("DVD+RW", "BD-R sequential recording", "stdio file").
public struct MediumProfile: Hashable, Sendable {
    /// The MMC profile number (0xffff for an image file).
    public var code: Int32
    public var name: String

    /// Pressed media: CD-ROM, DVD-ROM, BD-ROM.
    var isROM: Bool { [0x08, 0x10, 0x40].contains(code) }
    /// CD media need at least 300 blocks per track.
    var isCD: Bool { (0x08...0x0a).contains(code) }
}

/// One session of the medium, like a line of `xorriso -toc`.
public struct SessionInfo: Hashable, Sendable {
    /// 1 is the oldest.
    public var number: Int
    /// The block (2048 bytes) where the session starts.
    public var startBlock: UInt32
    /// The session's size in blocks.
    public var blocks: UInt32
    public var volumeID: String
    /// When the session was made (the volume's creation time), in seconds since 1970 UTC.
    public var creationTime: Int64?
    /// MD5 of the session's first 64 KiB (system area and volume descriptors);
    /// those hold the volume's creation time to 1/100 s and where its tree lies.
    public var headDigest: MD5Digest

    public var byteCount: UInt64 { UInt64(blocks) * 2048 }
}

/// "This medium in this state": what staged changes are bound to.
///
/// `medium` names the medium for its whole life (its first session, or the
/// drive path while it is blank), so that the staging directory stays the same
/// across commits; `state` changes with every commit, so a staging made on
/// another state of the medium is recognised as stale.
public struct MediumIdentity: Hashable, Sendable, CustomStringConvertible {
    public var medium: String
    public var state: String

    init(address: DriveAddress, sessions: [SessionInfo]) {
        func key(_ s: SessionInfo) -> String { "\(s.volumeID)@\(s.startBlock)+\(s.blocks)#\(s.headDigest.hex)" }
        if let first = sessions.first, let newest = sessions.last {
            medium = key(first)
            state = "\(sessions.count):" + key(newest)
        } else {
            medium = "blank:" + address.description
            state = "0:blank"
        }
    }

    public var description: String { state }

    /// A file-name-safe name for the medium (the hex MD5 of `medium`).
    public var mediumKey: String {
        Array(medium.utf8).withUnsafeBytes { MD5.digest($0) }.hex
    }
}

/// Everything about the medium in a drive, read at one moment.
public struct MediumInfo: Sendable {
    public var address: DriveAddress
    public var profile: MediumProfile
    public var status: MediumStatus
    /// Sessions, oldest first.
    public var sessions: [SessionInfo]
    /// Where the next session would start.
    public var nextWritableBlock: UInt32
    /// Bytes the medium can still take (for image files: `--capacity` or the host's free space).
    public var freeBytes: UInt64
    /// Whether sessions are emulated (image files, DVD+RW, BD-RE, ...): a new
    /// session becomes visible only when it is activated, so it can be checked first.
    public var isOverwritable: Bool
    /// Vendor and product of the drive ("YOYODYNE WARP DRIVE" for image files).
    public var driveName: String

    public var identity: MediumIdentity { MediumIdentity(address: address, sessions: sessions) }
}
