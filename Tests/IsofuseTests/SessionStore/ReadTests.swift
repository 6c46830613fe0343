// Byte-range reads of files through their extents.

import Foundation
import SessionStore
import SystemPackage
import Testing

@Suite struct ReadTests {
    @Test func rangeReadsAtRandomOffsetsEqualTheSource() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let drive = try Drive(DriveAddress(parsing: fixture.image))
        let tree = try drive.loadTree()
        let reader = try drive.makeReader()
        var generator = SeededGenerator(seed: 42)
        var filesCompared = 0
        for node in tree.walk() where tree.kind(of: node) == .regularFile {
            let source = try Data(contentsOf: URL(fileURLWithPath: fixture.source + tree.path(of: node)))
            #expect(tree.info(of: node).size == UInt64(source.count))
            for _ in 0..<20 {
                let offset = source.isEmpty ? 0 : Int.random(in: 0..<source.count, using: &generator)
                let length = Int.random(in: 1...70_000, using: &generator)
                let bytes = try read(reader, node, tree, offset: UInt64(offset), length: length)
                #expect(bytes == [UInt8](source[offset..<min(source.count, offset + length)]))
            }
            #expect(try read(reader, node, tree, offset: UInt64(source.count), length: 10).isEmpty)
            filesCompared += 1
        }
        #expect(filesCompared >= 5)
    }

    /// A file over 4 GiB is stored in several extents; reads across their
    /// boundary and at the end must still be the file's bytes. The source is
    /// sparse, with markers where the bytes matter.
    @Test func readsAcrossTheExtentBoundaryOfAFileOver4GiB() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let size: UInt64 = 4_500_000_000
        let boundary: UInt64 = 0xFFFF_F800   // the largest extent libisofs writes
        try FileManager.default.createDirectory(atPath: dir.url("src"), withIntermediateDirectories: true)
        let fd = try FileDescriptor.open(FilePath(dir.url("src/huge.bin")), .writeOnly, options: [.create], permissions: .ownerReadWrite)
        var markers: [(UInt64, [UInt8])] = []
        var generator = SeededGenerator(seed: 9)
        for offset in [0, boundary - 5000, size - 7000] {
            let bytes = (0..<7000).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), bytes)
            markers.append((offset, bytes))
        }
        try fd.resize(to: Int64(size))
        try fd.close()
        let image = dir.url("huge.iso")
        try Shell.check(["xorriso", "-md5", "on", "-outdev", "stdio:" + image, "-map", dir.url("src"), "/", "-commit"])

        let drive = try Drive(DriveAddress(parsing: image))
        let tree = try drive.loadTree()
        let file = try #require(tree.lookup(path: "/huge.bin"))
        #expect(tree.info(of: file).size == size)
        #expect(tree.extents(of: file).count == 2)
        let reader = try drive.makeReader()
        for (offset, bytes) in markers {
            #expect(try read(reader, file, tree, offset: offset, length: bytes.count) == bytes)
        }
        // Straddling the boundary: the marker's last 2100 bytes, then zeros of the sparse hole.
        let across = try read(reader, file, tree, offset: boundary - 100, length: 4096)
        #expect(Array(across[..<2100]) == Array(markers[1].1[4900..<7000]))
        #expect(across[2100...].allSatisfy { $0 == 0 })
        #expect(try read(reader, file, tree, offset: size - 10, length: 100) == Array(markers[2].1[6990...]))
    }
}

func read(_ reader: any MediumReader, _ node: NodeID, _ tree: Tree, offset: UInt64, length: Int) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: length)
    let n = try buffer.withUnsafeMutableBytes { try reader.read(node, of: tree, at: offset, into: $0) }
    return Array(buffer[..<n])
}
