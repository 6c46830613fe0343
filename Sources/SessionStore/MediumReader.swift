// Reading bytes of the medium, and of files through their extents.
//
// Image files are read with `pread` on a descriptor of our own: thread-safe,
// no libburn involved, and safe while a session is being written (libburn's
// own reader is not: it would let the writer's blocks land in older sessions).
// Real drives can only be read through libburn, under the library lock, so
// `DriveBlockReader` keeps a small cache of 64 KiB tiles in front of it.

import CIsoburn
import SystemPackage

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
    /// file order; shorter than asked at the end of the file.
    public func ranges(of file: NodeID, offset: UInt64, length: Int) -> [MediumRange] {
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
        for range in tree.ranges(of: file, offset: offset, length: buffer.count) {
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

    public init(path: FilePath) throws(IsofuseError) {
        do {
            descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
        } catch {
            throw IsofuseError(.driveNotFound, "cannot open \(path): \(error)", cause: error)
        }
    }

    deinit { try? descriptor.close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at byteOffset: UInt64) throws(IsofuseError) -> Int {
        do {
            return try descriptor.read(fromAbsoluteOffset: Int64(byteOffset), into: buffer)
        } catch {
            throw IsofuseError(.readError, "cannot read the image at byte \(byteOffset): \(error)", cause: error)
        }
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
