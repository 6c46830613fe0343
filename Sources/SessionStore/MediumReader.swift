// Reading bytes of the medium, and of files through their extents.
//
// Image files are read with `pread` on a descriptor of our own: thread-safe,
// no libburn involved, and safe while a session is being written (libburn's
// own reader is not: it would let the writer's blocks land in older sessions).
// Real drives can only be read through libburn, under the library lock, so
// `DriveBlockReader` keeps a small cache of 64 KiB tiles in front of it.

import CIsoburn
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

/// Reads a real drive through libburn, with a cache of 64 KiB tiles (optical
/// seeks cost tens of milliseconds, so neighbouring small reads must not each go to the drive).
final class DriveBlockReader: MediumReader {
    static let tileBytes = 64 * 1024
    static let tileCount = 64

    private let drive: Drive
    private struct Cache {
        var tiles: [UInt64: [UInt8]] = [:]
        var order: [UInt64] = []   // least recently used first
    }
    private let cache = VisibleMutex(Cache())

    init(drive: Drive) { self.drive = drive }

    func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        let tileStart = byteOffset - byteOffset % UInt64(Self.tileBytes)
        let tile = try self.tile(at: tileStart)
        let skip = Int(byteOffset - tileStart)
        guard skip < tile.count else { return 0 }
        let n = min(buffer.count, tile.count - skip)
        tile.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[skip..<skip + n])) }
        return n
    }

    private func tile(at start: UInt64) throws(IsofuseError) -> [UInt8] {
        if let hit = cache.withLock({ cache -> [UInt8]? in
            guard let tile = cache.tiles[start] else { return nil }
            cache.order.removeAll { $0 == start }
            cache.order.append(start)
            return tile
        }) {
            return hit
        }
        let tile = try drive.readBlocks(at: start, byteCount: Self.tileBytes)
        cache.withLock { cache in
            cache.tiles[start] = tile
            cache.order.append(start)
            if cache.order.count > Self.tileCount { cache.tiles[cache.order.removeFirst()] = nil }
        }
        return tile
    }
}

/// A temporary buffer (malloc'ed with 16-byte alignment: page alignment would
/// make every allocation an mmap).
public func withScratchBuffer<R, E: Error>(byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 16)
    defer { buffer.deallocate() }
    return try body(buffer)
}
