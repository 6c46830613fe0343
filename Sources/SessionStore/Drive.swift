// A drive held by this process: a recorder, or an image file standing in for
// one. Its libburn handle lives in the library state (under the library lock),
// so `Drive` itself is a plain Sendable value-like reference.

import CIsoburn
import CLinux
import Dispatch
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The libburn side of a held drive. Touched only under the library lock.
final class DriveHandle {
    let infos: UnsafeMutablePointer<burn_drive_info>
    let libburnAddress: String
    let acquireFlags: Int32
    /// Tells when a recorder's medium is taken out or replaced (nil: an image file, or an unwatchable node).
    let watch: MediumWatch?
    /// The sessions as isofuse last read them: the medium that must stay in the drive.
    var knownSessions: [SessionInfo] = []
    /// Why the medium cannot be read, while it is out of the drive or another is in.
    var lostMedium: IsofuseError?
    /// A tree load left its libisofs tree attached, to be freed by the next
    /// holder of the library lock rather than on the way to the first listing.
    var holdsLoadedTree = false

    init(infos: UnsafeMutablePointer<burn_drive_info>, libburnAddress: String, acquireFlags: Int32, watch: MediumWatch?) {
        self.infos = infos
        self.libburnAddress = libburnAddress
        self.acquireFlags = acquireFlags
        self.watch = watch
    }

    var drive: OpaquePointer { infos[0].drive }

    /// 1 a real MMC drive, 2 a read-write image, 4 a read-only image.
    var role: Int32 { burn_drive_get_drive_role(drive) }
}

public final class Drive: Sendable {
    public let address: DriveAddress
    /// For image files: the size of the medium they stand for (the spec's `--capacity`).
    public let capacity: UInt64?
    let id: Int
    /// `DriveHandle.lostMedium`, readable without the library lock (which a burn holds for long).
    private let lostMediumMirror = VisibleMutex<IsofuseError?>(nil)

    /// Acquire flags: bit2 truncates an image file's garbage tail (left by an
    /// interrupted write) when a write begins; bits 5 and 6 stop libisofs from
    /// importing ACLs and xattrs of host files, which isofuse sets itself.
    private static let acquireFlags: Int32 = 4 | 32 | 64

    /// Takes the drive. A missing image file is a blank medium; an image file
    /// the user may not write is opened read-only.
    public init(_ address: DriveAddress, capacity: UInt64? = nil) throws(IsofuseError) {
        self.address = address
        self.capacity = capacity
        let recorder = address.kind == .recorder
        let flags = Self.acquireFlags | (recorder ? 1 : 0)   // bit0: close the tray
        if !recorder, access(address.path.string, R_OK) == 0 {
            do throws(IsofuseError) {
                try SessionChain(reader: ImageFileReader(path: address.path)).check()
            } catch {
                throw IsofuseError(error.code, "\(address): \(error.message)")
            }
        }
        id = try Libburnia.withLibrary { state throws(IsofuseError) -> Int in
            if recorder {
                // Exclusive open, so that no other burner or automounter writes meanwhile.
                burn_preset_device_open(1, 0, 0)
            }
            let handle = try Self.acquire(address, flags: flags)
            let id = state.nextDriveID
            state.nextDriveID += 1
            state.drives[id] = handle
            return id
        }
    }

    /// Opens the drive in libburn. Under the library lock.
    private static func acquire(_ address: DriveAddress, flags: Int32) throws(IsofuseError) -> DriveHandle {
        burn_allow_drive_role_4(1)
        var infos: UnsafeMutablePointer<burn_drive_info>?
        let ret = withMutableCString(address.libburnAddress) { isoburn_drive_aquire(&infos, $0, flags) }
        guard ret == 1, let infos else {
            let messages = Libburnia.drainMessages()
            let worst = messages.filter { $0.severity >= .sorry }.last?.text ?? "no drive answers"
            let busy = messages.contains { $0.osErrno == EBUSY } || worst.contains("busy")
            throw IsofuseError(busy ? .driveBusy : .driveNotFound, "cannot open \(address): \(worst)")
        }
        _ = Libburnia.drainMessages()
        return DriveHandle(infos: infos, libburnAddress: address.libburnAddress, acquireFlags: acquireFlags,
                           watch: address.kind == .recorder ? MediumWatch(path: address.path) : nil)
    }

    deinit { release(eject: false) }

    /// Gives the drive back (and ejects its tray if asked). Later calls fail; a second release does nothing.
    public func release(eject: Bool) {
        _ = try? Libburnia.withLibrary { state throws(IsofuseError) in
            guard let handle = state.drives.removeValue(forKey: id) else { return }
            isoburn_drive_release(handle.drive, eject ? 1 : 0)
            burn_drive_info_free(handle.infos)
            _ = Libburnia.drainMessages()
        }
    }

    /// Runs `body` with this drive's handle, under the library lock.
    ///
    /// `refreshed`: a handle that sees the medium as it is now. A recorder is
    /// re-assessed; an image file is opened again, because libburn would go on
    /// reading the file it opened first even after another file took its path
    /// (and then write to the new one).
    func withHandle<R: Sendable>(refreshed: Bool = false,
                                 _ body: (DriveHandle) throws(IsofuseError) -> R) throws(IsofuseError) -> R {
        try Libburnia.withLibrary { state throws(IsofuseError) -> R in
            guard let held = state.drives[id] else {
                throw IsofuseError(.invalidArgument, "\(address) was released")
            }
            if held.holdsLoadedTree { detachImage(held) }
            guard refreshed else { return try body(held) }
            guard address.kind == .image else {
                _ = try reassess(held)
                return try body(held)
            }
            isoburn_drive_release(held.drive, 0)
            burn_drive_info_free(held.infos)
            state.drives[id] = nil
            let handle = try Self.acquire(address, flags: held.acquireFlags)
            state.drives[id] = handle
            return try body(handle)
        }
    }

    // MARK: The medium

    /// The medium's type, state, sessions and free space, read now.
    public func medium() throws(IsofuseError) -> MediumInfo {
        try withHandle { handle throws(IsofuseError) in try mediumInfo(handle) }
    }

    /// The medium as the drive has it now: asked afresh, so that a swapped
    /// disc, or an image file replaced or written by another program, shows.
    public func freshMedium() throws(IsofuseError) -> MediumInfo {
        try withHandle(refreshed: true) { handle throws(IsofuseError) in try mediumInfo(handle) }
    }

    func mediumInfo(_ handle: DriveHandle) throws(IsofuseError) -> MediumInfo {
        try confirmMedium(handle)
        let d = handle.drive
        let discStatus = isoburn_disc_get_status(d)
        if discStatus == BURN_DISC_EMPTY {
            throw IsofuseError(.noMedium, "\(address): no medium in the drive")
        }
        if discStatus == BURN_DISC_UNREADY || discStatus == BURN_DISC_UNSUITABLE {
            throw IsofuseError(.unsuitableMedium, Libburnia.reason("\(address): the medium cannot be used"))
        }
        var profileNumber: Int32 = 0
        var profileName = [CChar](repeating: 0, count: 80)
        burn_disc_get_profile(d, &profileNumber, &profileName)
        let profile = MediumProfile(code: profileNumber, name: string(profileName))
        let sessions = try tableOfContents(handle)

        var status: MediumStatus
        switch discStatus {
        case BURN_DISC_BLANK: status = .blank
        case BURN_DISC_APPENDABLE: status = .appendable
        default: status = profile.isROM ? .rom : .closed
        }
        if handle.role == 4 { status = .rom }
        if status == .blank, address.kind == .image, try !imageLooksBlank() {
            throw IsofuseError(.corruptMedium, "\(address) is not an ISO 9660 image (it holds data but no session isofuse can read)")
        }
        if status != .blank, sessions.isEmpty {
            throw IsofuseError(.corruptMedium, "\(address): the medium holds no readable ISO 9660 session")
        }

        var lba: Int32 = 0, nwa: Int32 = 0
        if isoburn_disc_track_lba_nwa(d, nil, 0, &lba, &nwa) != 1 { nwa = 0 }
        var free: UInt64 = 0
        if status == .blank || status == .appendable {
            if let capacity {
                let used = UInt64(max(0, nwa)) * 2048
                free = capacity > used ? capacity - used : 0
            } else {
                free = UInt64(max(0, isoburn_disc_available_space(d, nil)))
            }
        }
        _ = Libburnia.drainMessages()
        handle.knownSessions = sessions
        let info = handle.infos[0]
        return MediumInfo(
            address: address, profile: profile, status: status, sessions: sessions,
            nextWritableBlock: UInt32(max(0, nwa)), freeBytes: free,
            isOverwritable: isoburn_needs_emulation(d) == 1,
            driveName: [tupleString(info.vendor), tupleString(info.product)]
                .filter { !$0.isEmpty }.joined(separator: " "))
    }

    /// A blank image is absent, empty, zeros where a session's head would be
    /// (a file made with `truncate -s 25G` to stand for an empty BD), or
    /// blanked by libisoburn (which turns the volume descriptors' "CD001" into
    /// "CDXX1"). Anything else would be overwritten by the first commit, so it is refused.
    private func imageLooksBlank() throws(IsofuseError) -> Bool {
        guard access(address.path.string, F_OK) == 0 else { return true }
        let reader = try ImageFileReader(path: address.path)
        return try withScratchBuffer(byteCount: 96 * 1024) { head throws(IsofuseError) in
            let n = try reader.readFully(into: head, at: 0)
            let descriptor = 16 * 2048
            return head[..<n].allSatisfy { $0 == 0 }
                || (n > descriptor + 6 && head[descriptor + 1..<descriptor + 6].elementsEqual("CDXX1".utf8))
        }
    }

    /// The sessions, like `xorriso -toc`: from the drive's TOC, or from the
    /// chain of session heads libisoburn finds on emulated media.
    private func tableOfContents(_ handle: DriveHandle) throws(IsofuseError) -> [SessionInfo] {
        let d = handle.drive
        guard let disc = isoburn_toc_drive_get_disc(d) else { return [] }
        defer { isoburn_toc_disc_free(disc) }
        var count: Int32 = 0
        guard let list = isoburn_toc_disc_get_sessions(disc, &count) else { return [] }
        var sessions: [SessionInfo] = []
        for i in 0..<Int(count) {
            var trackCount: Int32 = 0
            guard let session = list[i], let tracks = isoburn_toc_session_get_tracks(session, &trackCount),
                  trackCount > 0, let track = tracks[0] else { continue }
            var entry = burn_toc_entry()
            isoburn_toc_track_get_entry(track, &entry)
            if entry.control & 7 < 4 { continue }   // an audio track
            var start = entry.extensions_valid & 1 != 0
                ? entry.start_lba : burn_msf_to_lba(Int32(entry.pmin), Int32(entry.psec), Int32(entry.pframe))
            var blocks = entry.extensions_valid & 1 != 0 ? entry.track_blocks : 0
            var volumeID = [CChar](repeating: 0, count: 33)
            var emulatedStart: Int32 = 0, emulatedBlocks: Int32 = 0
            if isoburn_toc_track_get_emul(track, &emulatedStart, &emulatedBlocks, &volumeID, 0) == 1 {
                start = emulatedStart
                blocks = emulatedBlocks
            }
            guard start >= 0 else { continue }   // no session starts before the medium
            guard let (headBytes, headBlocks) = sessionHead(handle, at: start) else { continue }
            if blocks <= 0 { blocks = headBlocks }
            let descriptor = VolumeDescriptor(head: headBytes)
            sessions.append(SessionInfo(
                // A size of 2^31 blocks or more comes as a negative Int32.
                number: sessions.count + 1, startBlock: UInt32(start), blocks: UInt32(bitPattern: blocks),
                volumeID: descriptor?.volumeID ?? string(volumeID),
                creationTime: descriptor?.creationTime,
                headDigest: headBytes.withUnsafeBytes { MD5.digest($0) }))
        }
        _ = Libburnia.drainMessages()
        return sessions
    }

    /// The first 64 KiB of the session at `start` and the session's size in
    /// blocks, or nil when no ISO 9660 session starts there.
    private func sessionHead(_ handle: DriveHandle, at start: Int32) -> (bytes: [UInt8], blocks: Int32)? {
        var head = [CChar](repeating: 0, count: 65536)
        var blocks: Int32 = 0
        guard isoburn_read_iso_head(handle.drive, start, &blocks, &head, 2) > 0 else { return nil }
        return (head.map { UInt8(bitPattern: $0) }, blocks)
    }

    // MARK: A medium taken out or replaced

    /// Why the medium isofuse read cannot be read now (out of the drive, or
    /// another one in it), as last found by a read; nil while it is there.
    public var lostMedium: IsofuseError? { lostMediumMirror.withLock { $0 } }

    /// Throws `.noMedium` unless the medium whose sessions isofuse read is in
    /// the drive. Asks the drive only when the kernel saw the medium change;
    /// then the medium is the same one if its first and newest sessions'
    /// heads are (the same disc put back reads again).
    func confirmMedium(_ handle: DriveHandle) throws(IsofuseError) {
        guard let watch = handle.watch else { return }
        guard watch.mediumChanged() else {
            if let lost = handle.lostMedium { throw lost }
            return
        }
        let same = [handle.knownSessions.first, handle.knownSessions.last].compactMap { $0 }.allSatisfy { session in
            sessionHead(handle, at: Int32(session.startBlock)).map { head in
                head.bytes.withUnsafeBytes { MD5.digest($0) } == session.headDigest
            } ?? false
        }
        _ = Libburnia.drainMessages()
        handle.lostMedium = same ? nil : IsofuseError(.noMedium, watch.holdsMedium
            ? "\(address): another medium is in the drive; remount to read it"
            : "\(address): the medium was taken out of the drive; put it back, or remount")
        lostMediumMirror.withLock { $0 = handle.lostMedium }
        if let lost = handle.lostMedium { throw lost }
    }

    /// Forgets the medium isofuse knew: it changed by isofuse's own hand (a burn, a blank, a format).
    func expectNewMedium(_ handle: DriveHandle) {
        _ = handle.watch?.mediumChanged()
        handle.knownSessions = []
    }

    // MARK: Trees

    /// The tree of session `number` (1 the oldest), or of the newest session.
    /// A blank medium has an empty tree. With `checkingTags` (the default) a
    /// tree whose checksum tags do not match is refused as corrupt. Files'
    /// recorded MD5s are read only `withChecksums`.
    public func loadTree(session number: Int? = nil, checkingTags: Bool = true,
                         withChecksums: Bool = false) throws(IsofuseError) -> Tree {
        defer { freeLoadedTree() }
        return try withHandle { handle throws(IsofuseError) in
            let medium = try mediumInfo(handle)
            var session: SessionInfo? = medium.sessions.last
            if let number {
                guard medium.sessions.indices.contains(number - 1) else {
                    throw IsofuseError(.notFound, "\(address) has no session \(number) (it has \(medium.sessions.count))")
                }
                session = medium.sessions[number - 1]
            }
            let image = try readImage(handle, session: number, of: medium, checkingTags: checkingTags)
            let tree = TreeLoader(image: image, session: session, mediumByteCount: readableByteCount(handle),
                                  readsChecksums: withChecksums).load()
            iso_image_unref(image)
            handle.holdsLoadedTree = true
            return tree
        }
    }

    /// Frees the libisofs tree of a load on another thread: for a million
    /// files that takes 0.3 s, which the caller, with its copy, need not wait for.
    private func freeLoadedTree() {
        DispatchQueue.global(qos: .utility).async { [self] in
            _ = try? withHandle { _ throws(IsofuseError) in }
        }
    }

    /// The bytes a reader can get from the medium now (all of them when unknown).
    private func readableByteCount(_ handle: DriveHandle) -> UInt64 {
        switch address.kind {
        case .image:
            var status = stat()
            return stat(address.path.string, &status) == 0 ? UInt64(clamping: status.st_size) : .max
        case .recorder:
            var blocks: Int32 = 0
            return burn_get_read_capacity(handle.drive, &blocks, 0) == 1 ? UInt64(clamping: blocks) * 2048 : .max
        }
    }

    /// Loads a session's libisofs image (the newest when `session` is nil);
    /// the caller owns one reference.
    func readImage(_ handle: DriveHandle, session: Int?, of medium: MediumInfo,
                   checkingTags: Bool = true) throws(IsofuseError) -> OpaquePointer {
        let d = handle.drive
        let which = session.map { "session \($0)" } ?? "the newest session"
        if let start = (session.map { medium.sessions[$0 - 1] } ?? medium.sessions.last)?.startBlock {
            do throws(IsofuseError) {
                try DirectoryHierarchy(reader: HeldDriveReader(drive: self, handle: handle))
                    .check(sessionStart: start, what: which)
            } catch {
                throw IsofuseError(error.code, "\(address): \(error.message)")
            }
        }
        let mode: Int32 = session == nil ? 0 : 1
        withMutableCString(session.map(String.init) ?? "0") { _ = isoburn_set_msc1(d, mode, $0, 0) }
        var options: OpaquePointer?
        isoburn_ropt_new(&options, 0)
        defer { isoburn_ropt_destroy(&options, 0) }
        isoburn_ropt_set_extensions(options, isoburn_ropt_noiso1999 | (checkingTags ? 0 : isoburn_ropt_nomd5tag))
        var image: OpaquePointer?
        let ret = isoburn_read_image(d, options, &image)
        guard ret > 0, let image else {
            let error = ret == isofuse_err_sb_tree_corrupted()
                ? IsofuseError(.corruptMedium, "\(address): checksum mismatch in the directory tree of \(which)")
                : IsofuseError(.corruptMedium, Libburnia.reason("\(address): cannot read the directory tree of \(which)"))
            // What a failed import read stays attached to the drive (with 2 MiB of read cache) until replaced.
            detachImage(handle)
            throw error
        }
        _ = Libburnia.drainMessages()
        return image
    }

    /// Replaces the drive's loaded image by an empty one, so that a big
    /// libisofs tree does not stay in memory beside the compact copy, and
    /// gives the freed memory back to the system.
    func detachImage(_ handle: DriveHandle) {
        handle.holdsLoadedTree = false
        // Not isoburn_read_image(nil, nil, ...): it refuses nil read options, and
        // the whole tree stayed attached (~620 bytes a node, for the life of the mount).
        var empty: OpaquePointer?
        if iso_image_new("ISOIMAGE", &empty) > 0, let empty {
            isoburn_attach_image(handle.drive, empty)
        }
        _ = Libburnia.drainMessages()
        // A libisofs tree costs ~620 bytes a node; glibc keeps freed memory unless asked.
        malloc_trim(0)
    }

    // MARK: Reading

    /// A reader of this medium's bytes: `pread` on the image file, or libburn
    /// with a tile cache for a recorder.
    public func makeReader() throws(IsofuseError) -> any MediumReader {
        switch address.kind {
        case .image: try ImageFileReader(path: address.path)
        case .recorder: DriveBlockReader(drive: self)
        }
    }

    /// Runs `body` holding the drive (other reads wait), with a function
    /// that reads whole blocks of a recorder through libburn (fewer at the
    /// medium's end), of the medium isofuse knows and no other: a medium
    /// that changed before or during the read throws `.noMedium`.
    func withBlockReads<R: Sendable>(
        _ body: (_ read: (_ byteOffset: UInt64, _ byteCount: Int) throws(IsofuseError) -> [UInt8]) throws(IsofuseError) -> R
    ) throws(IsofuseError) -> R {
        try withHandle { handle throws(IsofuseError) in
            try body { byteOffset, byteCount throws(IsofuseError) in
                try confirmMedium(handle)
                let data: [UInt8]
                do throws(IsofuseError) {
                    data = try readBlocks(handle, at: byteOffset, byteCount: byteCount)
                } catch {
                    try confirmMedium(handle)   // an open tray is no read error
                    throw error
                }
                try confirmMedium(handle)
                return data
            }
        }
    }

    /// Throws `.noMedium` unless the medium isofuse knows is in the drive.
    func confirmMedium() throws(IsofuseError) {
        try withHandle { handle throws(IsofuseError) in try confirmMedium(handle) }
    }

    func readBlocks(_ handle: DriveHandle, at byteOffset: UInt64, byteCount: Int) throws(IsofuseError) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: byteCount)
        var count: off_t = 0
        // bit1: no error message of its own; we report.
        let ret = data.withUnsafeMutableBytes { buffer in
            burn_read_data(handle.drive, off_t(byteOffset), buffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                           off_t(byteCount), &count, 2)
        }
        guard ret > 0 || count > 0 else {
            throw IsofuseError(.readError, Libburnia.reason("\(address): cannot read block \(byteOffset / 2048)"))
        }
        data.removeLast(byteCount - Int(count))
        return data
    }
}

/// The primary volume descriptor inside a session's first 64 KiB.
struct VolumeDescriptor {
    var volumeID: String
    var creationTime: Int64?

    init?(head: [UInt8]) {
        let pvd = 16 * 2048
        guard head.count >= pvd + 2048, head[pvd] == 1,
              Array(head[pvd + 1..<pvd + 6]) == Array("CD001".utf8) else { return nil }
        let idBytes = head[pvd + 40..<pvd + 72]
        volumeID = String(decoding: idBytes, as: UTF8.self).trimmingTrailingSpaces()
        creationTime = Self.decodeDate(head[pvd + 813..<pvd + 830])
    }

    /// "YYYYMMDDhhmmsscc" in ASCII, then the offset from GMT in 15-minute units.
    static func decodeDate(_ field: ArraySlice<UInt8>) -> Int64? {
        let digits = field.prefix(14).map { Int($0) - 48 }
        guard digits.count == 14, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        func number(_ range: Range<Int>) -> Int32 { Int32(range.reduce(0) { $0 * 10 + digits[$1] }) }
        var t = tm()
        t.tm_year = number(0..<4) - 1900
        t.tm_mon = number(4..<6) - 1
        t.tm_mday = number(6..<8)
        t.tm_hour = number(8..<10)
        t.tm_min = number(10..<12)
        t.tm_sec = number(12..<14)
        guard t.tm_year > 0 else { return nil }
        let offset = Int64(Int8(bitPattern: field[field.startIndex + 16])) * 15 * 60
        return Int64(timegm(&t)) - offset
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        String(self[..<(lastIndex { $0 != " " && $0 != "\0" }.map { index(after: $0) } ?? startIndex)])
    }
}

/// A fixed C char array imported as a tuple, as a String.
func tupleString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self).trimmingTrailingSpaces()
    }
}
