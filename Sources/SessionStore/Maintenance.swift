// Listing recorders, blanking and formatting media: the operations that work
// on the whole medium rather than on sessions.

import CIsoburn
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A recorder found by a scan, like a line of `xorriso -devices`.
public struct RecorderDescription: Hashable, Sendable {
    public var path: String
    /// Other names of the node (/dev/cdrom, /dev/dvdrw), if any.
    public var link: String?
    public var vendor: String
    public var product: String
    public var revision: String
}

public enum BlankMode: String, Sendable, CaseIterable {
    /// Blank only a medium that is not blank already.
    case asNeeded = "as_needed"
    /// Blank the table of contents only (CD-RW, DVD-RW: then only DAO writes).
    case fast
    /// Blank the whole medium.
    case all
    /// Turn a formatted DVD-RW back into a sequential one, quickly.
    case deformatQuickest = "deformat_quickest"
}

public enum FormatMode: Hashable, Sendable {
    /// Format what needs it (unformatted DVD-RAM, BD-RE, BD-R; sequential DVD-RW).
    case asNeeded
    /// The format descriptor with this index (see `formats()`).
    case byIndex(Int)
}

/// One format a medium can take.
public struct FormatDescription: Hashable, Sendable {
    public var index: Int
    /// The MMC format type (0x00 full, 0x26 DVD+RW, 0x30 BD, ...).
    public var type: Int32
    public var byteCount: UInt64
}

public struct Formats: Hashable, Sendable {
    /// The medium's state: "unformatted", "formatted" or "unknown".
    public var status: String
    public var currentByteCount: UInt64
    public var available: [FormatDescription]
}

extension Drive {
    /// Recorders on this machine. libburn refuses to scan while this process
    /// holds a drive, and cannot see drives other processes hold exclusively.
    public static func scanRecorders() throws(IsofuseError) -> [RecorderDescription] {
        try Libburnia.withLibrary { state throws(IsofuseError) in
            guard state.drives.isEmpty else {
                throw IsofuseError(.driveBusy, "cannot list recorders while this process holds a drive")
            }
            burn_drive_clear_whitelist()
            var list: UnsafeMutablePointer<burn_drive_info>?
            var count: UInt32 = 0
            var ret: Int32 = 0
            for _ in 0..<100 {   // the scan runs in a thread and must be polled
                ret = burn_drive_scan(&list, &count)
                if ret != 0 { break }
                usleep(100_000)
            }
            guard ret > 0 else {
                throw IsofuseError(.library, Libburnia.reason("cannot scan for recorders"))
            }
            var recorders: [RecorderDescription] = []
            for i in 0..<Int(count) {
                guard let list else { break }
                var address = [CChar](repeating: 0, count: Int(BURN_DRIVE_ADR_LEN))
                guard burn_drive_get_adr(&list[i], &address) > 0 else { continue }
                var link = [CChar](repeating: 0, count: Int(BURN_DRIVE_ADR_LEN))
                let hasLink = withMutableCString("/dev") { burn_lookup_device_link(&address, &link, $0, nil, 0, 0) } > 0
                recorders.append(RecorderDescription(
                    path: string(address), link: hasLink ? string(link) : nil,
                    vendor: tupleString(list[i].vendor), product: tupleString(list[i].product),
                    revision: tupleString(list[i].revision)))
            }
            // Freeing the list gives back the exclusive opens the scan took.
            if let list { burn_drive_info_free(list) }
            _ = Libburnia.drainMessages()
            return recorders
        }
    }

    /// Makes a rewritable medium blank. Returns the medium afterwards.
    @discardableResult
    public func blank(mode: BlankMode, progress: (Double) -> Void = { _ in }) throws(IsofuseError) -> MediumInfo {
        try withHandle { handle throws(IsofuseError) in
            let d = handle.drive
            let medium = try mediumInfo(handle)
            if mode == .asNeeded && medium.status == .blank { return medium }
            guard handle.role != 4, medium.status != .rom else {
                throw IsofuseError(.readOnly, "\(address): the medium cannot be written")
            }
            if mode == .deformatQuickest {
                guard medium.profile.code == 0x13 else {
                    throw IsofuseError(.unsuitableMedium, "\(address): only a formatted DVD-RW can be deformatted (this is a \(medium.profile.name))")
                }
                burn_disc_erase(d, 1)
            } else {
                guard isoburn_disc_erasable(d) == 1 else {
                    throw IsofuseError(.unsuitableMedium, "\(address): a \(medium.profile.name) cannot be blanked")
                }
                // A fast blank of a sequential DVD-RW allows only DAO writes afterwards; xorriso blanks it fully.
                isoburn_disc_erase(d, mode == .fast && medium.profile.code != 0x14 ? 1 : 0)
            }
            try waitForIdle(handle, what: "blanking", progress: progress)
            return try reassess(handle)
        }
    }

    /// The formats the medium can take.
    public func formats() throws(IsofuseError) -> Formats {
        try withHandle { handle throws(IsofuseError) in
            var status: Int32 = 0, count: Int32 = 0
            var size: off_t = 0
            var blockSize: UInt32 = 0
            guard burn_disc_get_formats(handle.drive, &status, &size, &blockSize, &count) > 0 else {
                _ = Libburnia.drainMessages()
                throw IsofuseError(.unsupported, "\(address): this medium has no formats to choose from")
            }
            var available: [FormatDescription] = []
            for i in 0..<count {
                var type: Int32 = 0, bytes: off_t = 0
                var parameter: UInt32 = 0
                if burn_disc_get_format_descr(handle.drive, i, &type, &bytes, &parameter) > 0 {
                    available.append(FormatDescription(index: Int(i), type: type, byteCount: UInt64(bytes)))
                }
            }
            let name = switch status {
            case BURN_FORMAT_IS_UNFORMATTED: "unformatted"
            case BURN_FORMAT_IS_FORMATTED: "formatted"
            default: "unknown"
            }
            return Formats(status: name, currentByteCount: UInt64(size), available: available)
        }
    }

    /// Formats a DVD-RW, DVD-RAM, BD-RE or BD-R. Returns the medium afterwards.
    @discardableResult
    public func format(mode: FormatMode, progress: (Double) -> Void = { _ in }) throws(IsofuseError) -> MediumInfo {
        try withHandle { handle throws(IsofuseError) in
            let medium = try mediumInfo(handle)
            guard handle.role == 1 else {
                throw IsofuseError(.unsupported, "\(address): image files need no formatting")
            }
            // Size modes (flag bits 1-2): 2 the largest size, 3 the default one;
            // bit7 with bits 8-15 picks a descriptor by index.
            let flag: Int32
            switch mode {
            case .byIndex(let index):
                flag = Int32(index) << 8 | 128 | 4
            case .asNeeded:
                switch medium.profile.code {
                case 0x14: flag = 4              // sequential DVD-RW: full format
                case 0x12, 0x41, 0x43:           // DVD-RAM, BD-R, BD-RE
                    var status: Int32 = 0, count: Int32 = 0
                    var size: off_t = 0
                    var blockSize: UInt32 = 0
                    burn_disc_get_formats(handle.drive, &status, &size, &blockSize, &count)
                    if status == BURN_FORMAT_IS_FORMATTED { return medium }
                    flag = 6
                default:
                    return medium                // DVD+RW, formatted DVD-RW, others need nothing
                }
            }
            burn_disc_format(handle.drive, 0, flag)
            try waitForIdle(handle, what: "formatting", progress: progress)
            return try reassess(handle)
        }
    }

    /// Waits for an erase or format to end (they cannot be cancelled).
    private func waitForIdle(_ handle: DriveHandle, what: String, progress: (Double) -> Void) throws(IsofuseError) {
        while burn_drive_get_status(handle.drive, nil) == BURN_DRIVE_SPAWNING { usleep(10_000) }
        var state = burn_progress()
        while burn_drive_get_status(handle.drive, &state) != BURN_DRIVE_IDLE {
            if state.sectors > 0 { progress(100 * Double(state.sector) / Double(state.sectors)) }
            usleep(200_000)
        }
        guard burn_drive_wrote_well(handle.drive) == 1 else {
            throw IsofuseError(.writeFailed, Libburnia.reason("\(address): \(what) failed"))
        }
        _ = Libburnia.drainMessages()
    }
}
