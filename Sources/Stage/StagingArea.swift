// The staging area on the host disk: what survives unmount, remount and a
// killed daemon.
//
//   DIR/lock      flock'ed by the daemon that uses DIR
//   DIR/journal   a header line (the medium and the state of it the staging
//                 belongs to), then one JSON `JournalRecord` a line (written
//                 by `JournalEncoding`, read by JSONDecoder)
//   DIR/data/N    the bytes of staged files
//   DIR/commit    while a commit runs: where the journal was frozen and where
//                 the new session will start (see `CommitMarker`)
//
// Records are appended with write(2), so a killed process loses nothing the
// kernel has; they are fsynced when a commit starts and at unmount. A torn
// last line (a crash mid-write) is ignored; any other damage is an error.
// The journal is rewritten whole (temp file, fsync, rename) when a commit
// lands or changes are discarded.

import CLinux
import FoundationEssentials
import Glibc
import SessionStore
import SystemPackage

/// The first line of the journal.
struct JournalHeader: Codable, Hashable {
    var format = 1
    /// `MediumIdentity.mediumKey` of the medium the changes belong to.
    var medium: String
    /// `MediumIdentity.state` of the medium when the changes were made.
    var state: String
    /// Its number of sessions.
    var sessions: Int
}

/// Written when a commit starts, removed when it ended either way.
struct CommitMarker: Codable, Hashable {
    /// The journal's size when the changes were frozen: records before it are in the commit.
    var journalOffset: UInt64
    /// Where the new session starts on the medium.
    var sessionStart: UInt32
}

final class StagingArea {
    let directory: FilePath
    private let lock: FileDescriptor
    private var journal: FileDescriptor
    /// Where the journal's allocated room ends (see `reserveJournalRoom`).
    private var reservedEnd: Int64 = 0
    /// Room kept allocated past the journal's end: an operation starts only
    /// while there is room for its records, so a full disk refuses new changes
    /// (ENOSPC) instead of losing the records of changes already made.
    private static let journalRoom: Int64 = 1 << 20

    /// What an operation may need of the journal's room.
    enum JournalNeed: Int64 {
        /// Any change: its records fit in 256 KiB (a 64 KiB xattr value is the largest).
        case change = 262_144
        /// A removal: one short record; allowed down to the last bit of room, as it frees space.
        case removal = 4096
    }
    private let encoder = JSONEncoder()
    private(set) var header: JournalHeader?

    /// Opens (creating it, mode 0700) and locks a staging directory.
    init(directory: FilePath) throws(IsofuseError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory.appending("data").string, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.string)
            lock = try FileDescriptor.open(directory.appending("lock"), .readWrite, options: [.create, .closeOnExec],
                                           permissions: .ownerReadWrite)
        } catch {
            throw IsofuseError(.hostIO, "cannot use the staging directory \(directory): \(error)", cause: error)
        }
        guard flock(lock.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            try? lock.close()
            throw IsofuseError(.driveBusy, "the staging directory \(directory) is in use by another isofuse mount")
        }
        do {
            journal = try FileDescriptor.open(directory.appending("journal"), .readWrite,
                                              options: [.create, .append, .closeOnExec], permissions: .ownerReadWrite)
        } catch {
            throw IsofuseError(.hostIO, "cannot open the staging journal in \(directory): \(error)", cause: error)
        }
    }

    deinit {
        try? journal.close()
        try? lock.close()
    }

    // MARK: The journal

    /// Reads the journal: the header and the records, or only those before
    /// `offset`. Nil header: a new staging area.
    func read(upTo offset: UInt64? = nil) throws(IsofuseError) -> (header: JournalHeader?, records: [JournalRecord]) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: directory.appending("journal").string))
        } catch {
            throw IsofuseError(.hostIO, "cannot read the staging journal in \(directory): \(error)", cause: error)
        }
        let bytes = offset.map { data.prefix(Int($0)) } ?? data[...]
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // What follows the last newline is empty, or a record cut by a crash
        // (never acknowledged to anyone).
        lines.removeLast()
        guard let first = lines.first else { return (nil, []) }
        let decoder = JSONDecoder()
        do {
            let header = try decoder.decode(JournalHeader.self, from: Data(first))
            let records = try lines.dropFirst().map { try decoder.decode(JournalRecord.self, from: Data($0)) }
            self.header = header
            return (header, records)
        } catch {
            throw IsofuseError(.hostIO, "the staging journal in \(directory) is damaged (\(error)); nothing was changed", cause: error)
        }
    }

    /// The journal's size now (where a commit freezes it).
    func journalSize() throws(IsofuseError) -> UInt64 {
        do {
            return UInt64(try journal.seek(offset: 0, from: .end))
        } catch {
            throw IsofuseError(.hostIO, "cannot read the staging journal's size: \(error)", cause: error)
        }
    }

    func append(_ records: [JournalRecord]) throws(IsofuseError) {
        guard !records.isEmpty else { return }
        let bytes = records.flatMap(JournalEncoding.line)
        do {
            _ = try journal.writeAll(bytes)
        } catch {
            throw IsofuseError(.hostIO, "cannot write the staging journal: \(error)", cause: error)
        }
    }

    /// Replaces the journal by one holding `state` for the medium in `header`'s state.
    func rewrite(_ state: OverlayState, header: JournalHeader) throws(IsofuseError) {
        do {
            let bytes = try encoder.encode(header) + [UInt8(ascii: "\n")] + state.records.flatMap(JournalEncoding.line)
            try replaceDurably("journal", with: bytes)
            let reopened = try FileDescriptor.open(directory.appending("journal"), .readWrite,
                                                   options: [.append, .closeOnExec])
            try? journal.close()
            journal = reopened
            reservedEnd = 0
            self.header = header
        } catch {
            throw IsofuseError(.hostIO, "cannot write the staging journal in \(directory): \(error)", cause: error)
        }
    }

    /// Whether the next operation's records are sure to fit: keeps up to
    /// `journalRoom` allocated past the journal's end, topping it up when half is used.
    func reserveJournalRoom(for need: JournalNeed) -> Bool {
        var info = stat()
        guard fstat(journal.rawValue, &info) == 0 else { return false }
        let end = Int64(info.st_size)
        // Room allocated by an earlier mount stays allocated past the end.
        reservedEnd = max(reservedEnd, Int64(info.st_blocks) * 512)
        if reservedEnd - end >= Self.journalRoom / 2 { return true }
        if fallocate(journal.rawValue, FALLOC_FL_KEEP_SIZE, off_t(end), off_t(Self.journalRoom)) == 0 {
            reservedEnd = end + Self.journalRoom
            return true
        }
        return reservedEnd - end >= need.rawValue
    }

    /// Makes what was appended durable.
    func sync() {
        fsync(journal.rawValue)
    }

    private func syncDirectory() {
        if let fd = try? FileDescriptor.open(directory, .readOnly, options: [.directory, .closeOnExec]) {
            fsync(fd.rawValue)
            try? fd.close()
        }
    }

    // MARK: The commit marker

    func readMarker() -> CommitMarker? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: directory.appending("commit").string)) else { return nil }
        return try? JSONDecoder().decode(CommitMarker.self, from: data)
    }

    func writeMarker(_ marker: CommitMarker) throws(IsofuseError) {
        do {
            sync()
            try replaceDurably("commit", with: try encoder.encode(marker))
        } catch {
            throw IsofuseError(.hostIO, "cannot write the commit marker in \(directory): \(error)", cause: error as? Errno)
        }
    }

    /// Writes `name` whole or not at all: a temporary file, fsynced, renamed over it, the directory fsynced.
    private func replaceDurably(_ name: String, with bytes: some Sequence<UInt8>) throws {
        let temporary = directory.appending(name + ".new")
        let file = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                           permissions: .ownerReadWrite)
        try file.closeAfter {
            _ = try file.writeAll(bytes)
            guard fsync(file.rawValue) == 0 else { throw Errno(rawValue: errno) }
        }
        guard rename(temporary.string, directory.appending(name).string) == 0 else { throw Errno(rawValue: errno) }
        syncDirectory()
    }

    func removeMarker() {
        unlink(directory.appending("commit").string)
        syncDirectory()
    }

    // MARK: Data files

    func dataPath(_ id: DataID) -> FilePath {
        directory.appending("data").appending(String(id))
    }

    /// The data files not in `keep`: what no state refers to any more.
    /// (Data ids are never given out again, so the list stays garbage.)
    func unreferencedData(keeping keep: Set<DataID>) -> [FilePath] {
        let data = directory.appending("data")
        return ((try? FileManager.default.contentsOfDirectory(atPath: data.string)) ?? []).compactMap { name in
            guard let id = DataID(name), !keep.contains(id) else { return nil }
            return data.appending(name)
        }
    }

    /// Removes data files (from `unreferencedData`).
    static func remove(_ files: [FilePath]) {
        for file in files { unlink(file.string) }
    }

    /// Moves everything staged aside (into `stale-<seconds>`) and starts empty.
    /// Returns where it went.
    func moveAside() throws(IsofuseError) -> FilePath {
        let aside = directory.appending("stale-\(Timestamp.now().seconds)")
        do {
            try FileManager.default.createDirectory(atPath: aside.string, withIntermediateDirectories: false)
            for name in ["journal", "data", "commit"] where access(directory.appending(name).string, F_OK) == 0 {
                guard rename(directory.appending(name).string, aside.appending(name).string) == 0 else {
                    throw Errno(rawValue: errno)
                }
            }
            try FileManager.default.createDirectory(atPath: directory.appending("data").string, withIntermediateDirectories: true)
            let reopened = try FileDescriptor.open(directory.appending("journal"), .readWrite,
                                                   options: [.create, .append, .closeOnExec], permissions: .ownerReadWrite)
            try? journal.close()
            journal = reopened
            reservedEnd = 0
            header = nil
        } catch {
            throw IsofuseError(.hostIO, "cannot move the old staging in \(directory) aside: \(error)", cause: error)
        }
        return aside
    }
}
