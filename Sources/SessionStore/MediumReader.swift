// Reading bytes of the medium, and of files through their extents.
//
// Image files are read with `pread` on a descriptor of our own: thread-safe,
// no libburn involved, and safe while a session is being written (libburn's
// own reader is not: it would let the writer's blocks land in older sessions).
// Real drives can only be read through libburn, under the library lock, so
// `DriveBlockReader` keeps a cache of 64 KiB tiles in front of it, and reads
// ahead.

import CIsoburn
import Dispatch
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Something that reads bytes of the medium.
public protocol BlockReading {
    /// Reads up to `buffer.count` bytes at `byteOffset` of the medium; fewer only at its end.
    func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int
}

/// A reader that any thread may use.
public protocol MediumReader: BlockReading, Sendable {}

/// A byte range of the medium.
public struct MediumRange: Hashable, Sendable {
    public var byteOffset: UInt64
    public var length: Int
}

extension Tree {
    /// Where bytes `[offset, offset + length)` of a file lie on the medium, in
    /// file order; shorter than asked at the end of the file. Throws when they
    /// would lie beyond the end of the medium.
    public func ranges(of file: NodeID, offset: UInt64, length: Int) throws(IsofuseError) -> [MediumRange] {
        let size = info(of: file).size
        guard offset < size else { return [] }
        var remaining = Int(min(UInt64(length), size - offset))
        var skip = offset
        var result: [MediumRange] = []
        for extent in extents(of: file) where remaining > 0 {
            let extentBytes = UInt64(extent.byteCount)
            if skip >= extentBytes {
                skip -= extentBytes
                continue
            }
            let n = Int(min(UInt64(remaining), extentBytes - skip))
            guard extent.byteOffset + skip + UInt64(n) <= mediumByteCount else {
                throw IsofuseError(.readError, "\(path(of: file)): its data would lie beyond the end of the medium (block \(extent.block))")
            }
            result.append(MediumRange(byteOffset: extent.byteOffset + skip, length: n))
            remaining -= n
            skip = 0
        }
        return result
    }
}

extension BlockReading {
    /// Reads bytes of a file at `offset` into `buffer`; returns how many (0 at the end).
    public func read(_ file: NodeID, of tree: Tree, at offset: UInt64,
                     into buffer: UnsafeMutableRawBufferPointer) throws(IsofuseError) -> Int {
        let info = tree.info(of: file)
        guard info.kind == .regularFile else {
            throw IsofuseError(.invalidArgument, "\(tree.path(of: file)) is not a regular file")
        }
        guard !info.isFiltered else {
            throw IsofuseError(.unsupported, "\(tree.path(of: file)) is stored compressed (zisofs), which isofuse does not read")
        }
        var done = 0
        for range in try tree.ranges(of: file, offset: offset, length: buffer.count) {
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + range.length])
            let n = try readFully(into: target, at: range.byteOffset)
            guard n == range.length else {
                throw IsofuseError(.readError, "\(tree.path(of: file)): the medium ends inside the file")
            }
            done += n
        }
        return done
    }

    /// Reads until `buffer` is full or the medium ends.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                             at: byteOffset + UInt64(done))
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// Reads an image file (or block device) with `pread` on its own descriptor.
public final class ImageFileReader: MediumReader {
    /// The open image, for callers that splice from it directly.
    public let descriptor: FileDescriptor
    private let path: FilePath
    /// The image as it was when opened, or when this process last wrote it.
    private let known: VisibleMutex<ImageFingerprint?>

    public init(path: FilePath) throws(IsofuseError) {
        do {
            descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
        } catch {
            throw IsofuseError(.driveNotFound, "cannot open \(path): \(error)", cause: error)
        }
        self.path = path
        known = VisibleMutex(ImageFingerprint(descriptor: descriptor))
    }

    deinit { try? descriptor.close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        try checkReadable(MediumRange(byteOffset: byteOffset, length: buffer.count))
        do {
            return try descriptor.read(fromAbsoluteOffset: Int64(byteOffset), into: buffer)
        } catch {
            throw IsofuseError(.readError, "cannot read the image at byte \(byteOffset): \(error)", cause: error)
        }
    }

    /// Fails for ranges that `UnreadableBlocks` marks; callers that splice
    /// from `descriptor` ask this first.
    public func checkReadable(_ range: MediumRange) throws(IsofuseError) {
        if let block = UnreadableBlocks.configured.first(in: range) {
            throw IsofuseError(.readError, "cannot read block \(block) of \(path): Input/output error")
        }
    }

    /// Whether the image changed since it was opened or since `acceptChanges`:
    /// another file now at its path, or its file written by another program.
    public func hasChanged() -> Bool {
        let known = known.withLock { $0 }
        return ImageFingerprint(descriptor: descriptor) != known || ImageFingerprint(path: path) != known
    }

    /// This process wrote the image (a commit): its new state is the known one.
    public func acceptChanges() {
        known.withLock { $0 = ImageFingerprint(descriptor: descriptor) }
    }
}

/// What the bytes read from an image file depend on: which file it is, its size and when it was last written.
struct ImageFingerprint: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modified: Int64
    var modifiedNanoseconds: Int

    init?(descriptor: FileDescriptor) {
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { return nil }
        self.init(info)
    }

    init?(path: FilePath) {
        var info = stat()
        guard stat(path.string, &info) == 0 else { return nil }
        self.init(info)
    }

    private init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
    }
}

/// Blocks this process treats as unreadable, for tests of read errors without
/// a damaged disc: `ISOFUSE_TEST_UNREADABLE_BLOCKS=100-120,300` (2048-byte
/// blocks of the medium). Unset, as in normal use, nothing is unreadable.
struct UnreadableBlocks: Sendable {
    var ranges: [ClosedRange<UInt64>] = []

    static let configured = UnreadableBlocks(getenv("ISOFUSE_TEST_UNREADABLE_BLOCKS").map { String(cString: $0) } ?? "")

    init(_ text: String) {
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { UInt64($0) }
            if bounds.count == 1 { ranges.append(bounds[0]...bounds[0]) }
            if bounds.count == 2, bounds[0] <= bounds[1] { ranges.append(bounds[0]...bounds[1]) }
        }
    }

    /// The first unreadable block in `range`, if any.
    func first(in range: MediumRange) -> UInt64? {
        guard !ranges.isEmpty, range.length > 0 else { return nil }
        let first = range.byteOffset / 2048, last = (range.byteOffset + UInt64(range.length) - 1) / 2048
        return ranges.filter { $0.lowerBound <= last && $0.upperBound >= first }
            .map { max($0.lowerBound, first) }.min()
    }
}

/// Reads a real drive through libburn, with a cache of 64 KiB tiles in
/// front of it. An optical drive answers a seek in tens of milliseconds and
/// then streams, so reads go to it in large requests: a miss fetches at least
/// 256 KiB, and a miss where an earlier fetch ended (a file read from start
/// to end) fetches twice as much as that one did, up to 4 MiB. Such a
/// sequential reader is kept one fetch ahead of in the background: the next
/// window is read while it consumes this one, and when it reaches that window
/// the one after is fetched.
final class DriveBlockReader: MediumReader {
    /// libburn reads 32 blocks per MMC command: one tile per command.
    static let tileBytes = 64 * 1024
    /// 32 MiB: several seconds of a drive's streaming rate, so that
    /// interleaved reads of a few files do not evict each other's read-ahead.
    static let tileCount = 512
    static let smallestFetch = 4
    static let largestFetch = 64
    /// How long cached tiles are served without asking whether the medium
    /// is still the same (an ioctl; drive reads always ask).
    static let confirmationInterval = Duration.milliseconds(250)

    private let drive: Drive
    private let cache: VisibleMutex<TileCache>
    private let readAhead = DispatchQueue(label: "isofuse.drive-read-ahead")

    init(drive: Drive) {
        self.drive = drive
        cache = VisibleMutex(TileCache(confirmed: .now))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        let tileBytes = UInt64(Self.tileBytes)
        let first = byteOffset / tileBytes
        switch cache.withLock({ $0.copy(into: buffer, at: byteOffset, now: .now) }) {
        case .copied(let count, let confirm, let next):
            if let next { fetchInBackground(next) }
            if confirm {
                try drive.confirmMedium()
                cache.withLock { $0.confirmed = .now }
            }
            return count
        case .missing:
            let wanted = Int((byteOffset + UInt64(max(buffer.count, 1)) - 1) / tileBytes - first) + 1
            let target = CallerBuffer(bytes: buffer)
            let (count, next) = try drive.withBlockReads { readBlocks throws(IsofuseError) -> (Int, TileCache.Window?) in
                // Concurrent misses on neighbouring tiles wait here for the fetch that brings them.
                if case .copied(let count, _, let next) = cache.withLock({ $0.copy(into: target.bytes, at: byteOffset, now: .now) }) {
                    return (count, next)
                }
                let plan = cache.withLock { $0.plan(first: first, wanted: wanted) }
                let data = try readBlocks(first * tileBytes, plan.size * Self.tileBytes)
                cache.withLock { $0.store(data, first: first) }
                let skip = Int(byteOffset - first * tileBytes)
                guard skip < data.count else { return (0, nil) }
                let n = min(target.bytes.count, data.count - skip)
                data.withUnsafeBytes { target.bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[skip..<skip + n])) }
                return (n, data.count == plan.size * Self.tileBytes ? plan.next : nil)
            }
            if let next { fetchInBackground(next) }
            return count
        }
    }

    /// Fetches a window a sequential reader will want next; its failures are
    /// left for that reader's own read to meet.
    private func fetchInBackground(_ window: TileCache.Window) {
        guard cache.withLock({ $0.claim(window) }) else { return }
        readAhead.async { [self] in
            let tileBytes = UInt64(Self.tileBytes)
            _ = try? drive.withBlockReads { readBlocks throws(IsofuseError) in
                guard cache.withLock({ !$0.holds(window.first) }) else { return }
                let data = try readBlocks(window.first * tileBytes, window.size * Self.tileBytes)
                cache.withLock { $0.store(data, first: window.first, ahead: window) }
            }
            cache.withLock { $0.release(window) }
        }
    }
}

/// The caller's buffer, filled under the library lock while the caller waits.
private struct CallerBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
}

/// The tiles `DriveBlockReader` holds, and where sequential reads are expected next.
private struct TileCache {
    /// Tiles `first..<first + size`.
    struct Window: Hashable, Sendable {
        var first: UInt64
        var size: Int
        var end: UInt64 { first + UInt64(size) }
        /// The window after this one, twice as large (up to the largest fetch).
        var next: Window { Window(first: end, size: min(2 * size, DriveBlockReader.largestFetch)) }
    }

    enum Lookup {
        /// `count` bytes copied from cached tiles; `confirm`: ask the drive
        /// whether its medium is the same; `next`: a window to fetch ahead.
        case copied(Int, confirm: Bool, next: Window?)
        case missing
    }

    /// Slices of the fetched buffers: a fetch is stored without copying.
    private var tiles: [UInt64: (bytes: ArraySlice<UInt8>, lastUse: UInt64)] = [:]
    private var uses: UInt64 = 0
    /// Tile where a fetch ended → that fetch's size in tiles.
    private var streams: [UInt64: Int] = [:]
    /// First tile of a window fetched ahead → that window: reading it starts the next fetch ahead.
    private var aheadStarts: [UInt64: Window] = [:]
    /// Windows being fetched ahead.
    private var claimed: Set<Window> = []
    var confirmed: ContinuousClock.Instant

    init(confirmed: ContinuousClock.Instant) { self.confirmed = confirmed }

    func holds(_ tile: UInt64) -> Bool { tiles[tile] != nil }

    /// Copies from the tile holding `byteOffset` and the cached tiles after it.
    mutating func copy(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64,
                       now: ContinuousClock.Instant) -> Lookup {
        let tileBytes = UInt64(DriveBlockReader.tileBytes)
        let first = byteOffset / tileBytes
        guard tiles[first] != nil else { return .missing }
        var done = 0
        while done < buffer.count {
            let offset = byteOffset + UInt64(done)
            let index = offset / tileBytes
            guard let tile = tiles[index] else { break }
            uses += 1
            tiles[index]!.lastUse = uses
            let skip = Int(offset - index * tileBytes)
            guard skip < tile.bytes.count else { break }   // the medium's end
            let n = min(buffer.count - done, tile.bytes.count - skip)
            tile.bytes.withUnsafeBytes { source in   // indices from 0, whatever the slice's
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[skip..<skip + n]))
            }
            done += n
            if tile.bytes.count < DriveBlockReader.tileBytes { break }
        }
        return .copied(done, confirm: now - confirmed > DriveBlockReader.confirmationInterval,
                       next: aheadStarts.removeValue(forKey: first)?.next)
    }

    /// The window to fetch from `first` when `wanted` tiles are asked for,
    /// and the one to fetch ahead after it when the reader is sequential.
    mutating func plan(first: UInt64, wanted: Int) -> (size: Int, next: Window?) {
        let previous = streams.removeValue(forKey: first)
        let size = min(DriveBlockReader.largestFetch,
                       max(wanted, previous.map { 2 * $0 } ?? DriveBlockReader.smallestFetch))
        remember(Window(first: first, size: size))
        return (size, previous == nil ? nil : Window(first: first, size: size).next)
    }

    /// Takes `window` for a fetch ahead; false when it is cached or taken already.
    mutating func claim(_ window: Window) -> Bool {
        guard tiles[window.first] == nil, !claimed.contains(window) else { return false }
        claimed.insert(window)
        return true
    }

    /// Ends a fetch ahead (done, failed, or found cached).
    mutating func release(_ window: Window) {
        claimed.remove(window)
    }

    /// Keeps fetched bytes as tiles (the last one short at the medium's end),
    /// dropping the least recently used when full.
    mutating func store(_ data: [UInt8], first: UInt64, ahead: Window? = nil) {
        let tileBytes = DriveBlockReader.tileBytes
        for (i, start) in stride(from: 0, to: data.count, by: tileBytes).enumerated() {
            uses += 1
            tiles[first + UInt64(i)] = (data[start..<min(data.count, start + tileBytes)], uses)
        }
        if let ahead {
            remember(ahead)
            if data.count == ahead.size * tileBytes { aheadStarts[ahead.first] = ahead }
        }
        let excess = tiles.count - DriveBlockReader.tileCount
        if excess > 0 {
            for index in tiles.sorted(by: { $0.value.lastUse < $1.value.lastUse }).prefix(excess).map(\.key) {
                tiles[index] = nil
                aheadStarts[index] = nil
            }
        }
    }

    /// A reader that goes on where `window` ends is sequential.
    private mutating func remember(_ window: Window) {
        if streams.count >= 16 { streams.removeAll() }
        streams[window.end] = window.size
    }
}

/// A temporary buffer (malloc'ed with 16-byte alignment: page alignment would
/// make every allocation an mmap).
public func withScratchBuffer<R, E: Error>(byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 16)
    defer { buffer.deallocate() }
    return try body(buffer)
}
