// Appending a session: load the newest tree, apply a change set, write it
// with Rock Ridge, AAIP (xattrs, ACLs), hard links, ISO level 3 (files of
// 4 GiB and more) and MD5s for every file and the session.
//
// Safety, in order:
// - a commit never reads the medium while it writes (libburn would let the
//   writer's blocks land in older sessions): change sets only add host files,
//   never clones or filters of files already on the medium;
// - any message of severity FAILURE or worse during the write cancels it,
//   whatever libburn says afterwards;
// - on overwritable media and image files the new session is invisible until
//   `isoburn_activate_session` rewrites the superblock at block 0, so its
//   checksum tags are re-read and checked first: a session that fails the
//   check is never activated and the earlier sessions stay the medium's state.

import CIsoburn
#if canImport(Glibc)
import Glibc
#endif

public struct AppendOptions: Sendable {
    /// Write the session so that the medium takes no more (sequential media only).
    public var closeMedium: Bool
    /// Run the whole write without writing (libburn's simulation).
    public var simulate: Bool
    /// Re-read the new session and check its checksum tags before activating it.
    public var verify: Bool
    /// Write only onto this medium in this state: the drive is asked afresh
    /// right before writing, so a swapped disc or an image file replaced or
    /// written by another program is refused (`.mediumChanged`), not written.
    public var expectedMedium: MediumIdentity?

    public init(closeMedium: Bool = false, simulate: Bool = false, verify: Bool = true,
                expectedMedium: MediumIdentity? = nil) {
        self.closeMedium = closeMedium
        self.simulate = simulate
        self.verify = verify
        self.expectedMedium = expectedMedium
    }
}

public struct AppendProgress: Sendable {
    public enum Phase: String, Sendable {
        case preparing, writing, closing, checking, activating
    }
    public var phase: Phase
    public var blocksDone: UInt64
    public var blocksTotal: UInt64
    public var bytesPerSecond: Double

    public var percent: Double { blocksTotal == 0 ? 0 : 100 * Double(blocksDone) / Double(blocksTotal) }
}

/// Where the next session would go and how big it would be.
public struct SessionEstimate: Hashable, Sendable {
    public var startBlock: UInt32
    /// Its size in blocks, padding and MD5 array included.
    public var blocks: UInt32
    /// Whether it fits in the medium's free space.
    public var fits: Bool

    public var byteCount: UInt64 { UInt64(blocks) * 2048 }
}

extension Drive {
    /// The exact size of the session `changes` would make, from a full
    /// preparation of it (a will_cancel run would leave out the MD5 array).
    public func estimate(_ changes: ChangeSet, options: AppendOptions = .init()) throws(IsofuseError) -> SessionEstimate {
        try withHandle { handle throws(IsofuseError) in
            let estimate = try prepare(handle, changes, options: options).estimate
            detachImage(handle)
            return estimate
        }
    }

    /// Writes `changes` as a new session and returns the medium as it is afterwards.
    /// Throws `.noSpace` (writing nothing) when the session does not fit.
    @discardableResult
    public func append(_ changes: ChangeSet, options: AppendOptions = .init(),
                       progress: (AppendProgress) -> Void = { _ in }) throws(IsofuseError) -> MediumInfo {
        try withHandle(refreshed: options.expectedMedium != nil) { handle throws(IsofuseError) in
            progress(AppendProgress(phase: .preparing, blocksDone: 0, blocksTotal: 0, bytesPerSecond: 0))
            let prepared = try prepare(handle, changes, options: options)
            guard prepared.estimate.fits else {
                let needed = prepared.estimate.byteCount
                _ = consume prepared
                detachImage(handle)
                let free = try mediumInfo(handle).freeBytes
                throw IsofuseError(.noSpace, "the new session needs \(needed) bytes, the medium has \(free) free")
            }
            defer { detachImage(handle) }
            try prepared.write(to: address, options: options, progress: progress)

            let emulated = isoburn_needs_emulation(handle.drive) == 1
            if options.verify && !options.simulate {
                let estimate = prepared.estimate
                progress(AppendProgress(phase: .checking, blocksDone: 0, blocksTotal: UInt64(estimate.blocks), bytesPerSecond: 0))
                let result = try checkTags(handle, start: estimate.startBlock, blocks: estimate.blocks)
                guard result == .match else {
                    throw IsofuseError(.verifyFailed, emulated
                        ? "the written session failed its checksum check (\(result)); it was not activated and the earlier sessions are unchanged"
                        : "the written session failed its checksum check (\(result))")
                }
            }
            progress(AppendProgress(phase: .activating, blocksDone: 0, blocksTotal: 0, bytesPerSecond: 0))
            prepared.activate()
            return try reassess(handle)
        }
    }

    /// Checks the new session's tags, reading an image file with `pread` and a drive through libburn.
    private func checkTags(_ handle: DriveHandle, start: UInt32, blocks: UInt32) throws(IsofuseError) -> SessionTagResult {
        let reader: any BlockReading = switch address.kind {
        case .image: try ImageFileReader(path: address.path)
        case .recorder: HeldDriveReader(drive: self, handle: handle)
        }
        return ChecksumTagScanner(reader: reader).check(sessionStart: start, blocks: blocks)
    }

    /// Makes libisoburn read the medium's new state (its TOC, its status).
    func reassess(_ handle: DriveHandle) throws(IsofuseError) -> MediumInfo {
        var infos: UnsafeMutablePointer<burn_drive_info>? = handle.infos
        let ret = withMutableCString(handle.libburnAddress) {
            isoburn_drive_aquire(&infos, $0, 256 | handle.acquireFlags)
        }
        guard ret == 1 else {
            throw IsofuseError(.library, Libburnia.reason("\(address): cannot re-read the medium after writing"))
        }
        expectNewMedium(handle)
        return try mediumInfo(handle)
    }

    private func prepare(_ handle: DriveHandle, _ changes: ChangeSet, options: AppendOptions) throws(IsofuseError) -> PreparedSession {
        let d = handle.drive
        let medium = try mediumInfo(handle)
        if let expected = options.expectedMedium, medium.identity != expected {
            throw IsofuseError(.mediumChanged, medium.identity.medium == expected.medium
                ? "\(address) was written by another program (it has \(medium.sessions.count) sessions now); nothing was written"
                : "\(address) holds another medium than the one the staged changes belong to; nothing was written")
        }
        guard handle.role != 4, medium.status == .blank || medium.status == .appendable else {
            throw IsofuseError(.readOnly, "\(address): the medium is \(medium.status.rawValue) and takes no more sessions")
        }
        if options.closeMedium && medium.isOverwritable {
            throw IsofuseError(.unsupported, "\(address): a \(medium.profile.name) cannot be closed; it always takes more sessions")
        }
        let image = try readImage(handle, session: nil, of: medium)
        do throws(IsofuseError) {
            try TreeEditor(image: image).apply(changes)
        } catch {
            iso_image_unref(image)
            throw error
        }
        if let volumeID = changes.volumeID {
            iso_image_set_volume_id(image, volumeID)
        } else if medium.sessions.isEmpty {
            iso_image_set_volume_id(image, "ISOFUSE")
        }

        var generation: OpaquePointer?
        isoburn_igopt_new(&generation, 0)
        isoburn_igopt_set_level(generation, 3)
        isoburn_igopt_set_extensions(generation, isoburn_igopt_rockridge | isoburn_igopt_aaip | isoburn_igopt_hardlinks
                                     | isoburn_igopt_session_md5 | isoburn_igopt_file_md5)
        isoburn_igopt_set_relaxed(generation, isoburn_igopt_allow_deep_paths)
        isoburn_igopt_set_sort_files(generation, 1)
        isoburn_igopt_set_stdio_endsync(generation, 1)   // fsync the new superblock at block 0
        iso_image_update_sizes(image)

        var disc: OpaquePointer?
        let ret = isoburn_prepare_disc(d, &disc, generation)
        guard ret > 0, let disc else {
            isoburn_igopt_destroy(&generation, 0)
            iso_image_unref(image)
            throw IsofuseError(.writeFailed, Libburnia.reason("\(address): cannot prepare the new session"))
        }
        var start: Int32 = 0
        isoburn_igopt_get_effective_lba(generation, &start)
        isoburn_igopt_destroy(&generation, 0)
        var blocks = burn_disc_get_sectors(disc)

        // Pad like xorriso: end on a 32-block boundary (so no stale volume
        // descriptors follow the session); CD tracks need 300 blocks at least.
        var padding = (32 - (start + blocks) % 32) % 32
        if medium.profile.isCD && blocks + padding < 300 { padding = 300 - blocks }
        var sessionCount: Int32 = 0, trackCount: Int32 = 0
        if let sessions = burn_disc_get_sessions(disc, &sessionCount), sessionCount > 0,
           let tracks = burn_session_get_tracks(sessions[0], &trackCount), trackCount > 0 {
            burn_track_define_data(tracks[0], 0, padding * 2048, 0, Int32(BURN_MODE1))
        }
        blocks += padding

        let fits: Bool
        if let capacity {
            fits = (UInt64(start) + UInt64(blocks)) * 2048 <= capacity
        } else {
            let writeOptions = burn_write_opts_new(d)
            fits = UInt64(max(0, isoburn_disc_available_space(d, writeOptions))) >= UInt64(blocks) * 2048
            burn_write_opts_free(writeOptions)
        }
        _ = Libburnia.drainMessages()
        return PreparedSession(drive: d, image: image, disc: disc,
                               estimate: SessionEstimate(startBlock: UInt32(start), blocks: UInt32(blocks), fits: fits))
    }
}

/// A session libisofs is ready to produce. Dropping it cancels it, so that
/// no path but `activate` can make it visible.
private struct PreparedSession: ~Copyable {
    let drive: OpaquePointer
    let image: OpaquePointer
    let disc: OpaquePointer
    let estimate: SessionEstimate

    deinit {
        isoburn_cancel_prepared_write(drive, nil, 0)
        Self.release(drive: drive, image: image, disc: disc)
    }

    /// Makes a written session the medium's newest (on emulated media:
    /// rewrites the superblock copy at block 0).
    consuming func activate() {
        isoburn_activate_session(drive)
        Self.release(drive: drive, image: image, disc: disc)
        discard self
    }

    private static func release(drive: OpaquePointer, image: OpaquePointer, disc: OpaquePointer) {
        // libisofs' generator thread may still be ending.
        for _ in 0..<500 where iso_image_generator_is_running(image) != 0 { usleep(10_000) }
        burn_disc_free(disc)
        isoburn_sync_after_write(drive, nil, 0)
        iso_image_unref(image)
        _ = Libburnia.drainMessages()
    }

    /// Runs libburn's write and waits for it, reporting progress. Cancels on
    /// any FAILURE-or-worse message; throws if the write did not go well.
    func write(to address: DriveAddress, options: AppendOptions, progress: (AppendProgress) -> Void) throws(IsofuseError) {
        let writeOptions = burn_write_opts_new(drive)
        burn_write_opts_set_simulate(writeOptions, options.simulate ? 1 : 0)
        burn_write_opts_set_multi(writeOptions, options.closeMedium ? 0 : 1)
        burn_write_opts_set_underrun_proof(writeOptions, 1)
        // No write type: libisoburn picks TAO/SAO and the start address itself.
        _ = Libburnia.drainMessages()
        isoburn_disc_write(writeOptions, disc)
        burn_write_opts_free(writeOptions)

        let started = ContinuousClock.now
        var failure: String?
        var seen: [LibraryMessage] = []
        var generatorWaits = 0
        while burn_drive_get_status(drive, nil) == BURN_DRIVE_SPAWNING { usleep(5_000) }
        while true {
            var state = burn_progress()
            let status = burn_drive_get_status(drive, &state)
            if status == BURN_DRIVE_IDLE {
                if iso_image_generator_is_running(image) == 0 { break }
                generatorWaits += 1
                if generatorWaits > 100 {
                    failure = failure ?? "the image generator did not finish"
                    break
                }
            }
            seen += Libburnia.drainMessages()
            if failure == nil, let worst = seen.first(where: { $0.severity >= .failure }) {
                failure = worst.explanation
                burn_drive_cancel(drive)
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            let done = UInt64(max(0, state.sector))
            let closing = status == BURN_DRIVE_CLOSING_TRACK || status == BURN_DRIVE_CLOSING_SESSION
                || status == BURN_DRIVE_WRITING_LEADOUT
            progress(AppendProgress(phase: closing ? .closing : .writing, blocksDone: done,
                                    blocksTotal: UInt64(estimate.blocks),
                                    bytesPerSecond: seconds > 0 ? Double(done * 2048) / seconds : 0))
            usleep(20_000)
        }
        seen += Libburnia.drainMessages()
        if failure == nil, let worst = seen.first(where: { $0.severity >= .failure }) {
            failure = worst.explanation
        }
        if failure != nil || isoburn_drive_wrote_well(drive) != 1 {
            // libburn's thread of a failed write ends a little after the run
            // (seen: up to 3 s after ENOSPC); a write started before then is refused.
            sleep(3)
        }
        if let failure {
            throw IsofuseError(.writeFailed, "\(address): writing the session failed: \(failure); earlier sessions are intact")
        }
        guard isoburn_drive_wrote_well(drive) == 1 else {
            throw IsofuseError(.writeFailed, Libburnia.reason("\(address): writing the session failed", in: seen)
                               + "; earlier sessions are intact")
        }
        // A small session can end before the first poll saw it running.
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        let total = UInt64(estimate.blocks)
        progress(AppendProgress(phase: .writing, blocksDone: total, blocksTotal: total,
                                bytesPerSecond: seconds > 0 ? Double(total * 2048) / seconds : 0))
    }
}

/// Reads a recorder through a handle already held under the library lock
/// (the tag check after a write, and the directory walk of a tree load, run inside it).
struct HeldDriveReader: BlockReading {
    let drive: Drive
    let handle: DriveHandle

    func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        let aligned = byteOffset - byteOffset % 2048
        let skip = Int(byteOffset - aligned)
        let blocks = try drive.readBlocks(handle, at: aligned, byteCount: (skip + buffer.count + 2047) / 2048 * 2048)
        let n = max(0, min(buffer.count, blocks.count - skip))
        blocks.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[skip..<skip + n])) }
        return n
    }
}
