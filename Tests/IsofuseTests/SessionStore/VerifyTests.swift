// Verification of recorded MD5s and checksum tags.

import Foundation
import SessionStore
import SystemPackage
import Testing

@Suite struct VerifyTests {
    @Test func aCleanImageMatchesEverywhere() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        var lastProgress: VerificationProgress?
        let report = try Drive(DriveAddress(parsing: fixture.image)).verify { lastProgress = $0 }
        #expect(report.verdict == .match)
        #expect(report.problems.isEmpty)
        #expect(report.sessionsWithTags == 3)
        #expect(report.filesChecked > 5)
        #expect(lastProgress?.bytesDone == lastProgress?.bytesTotal)
    }

    @Test func aFlippedByteNamesItsFileAndSession() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let drive = try Drive(DriveAddress(parsing: fixture.image))
        let tree = try drive.loadTree()
        // The largest file of the newest session, changed in one byte.
        let victim = try #require(tree.walk().filter { tree.kind(of: $0) == .regularFile }.max { tree.info(of: $0).size < tree.info(of: $1).size })
        let offset = try #require(tree.extents(of: victim).first).byteOffset + 1000
        try flipByte(in: fixture.image, at: offset)

        let report = try drive.verify()
        #expect(report.verdict == .mismatch)
        #expect(report.problems.contains { $0.path == tree.path(of: victim) && $0.detail == "MD5 MISMATCH" })
        #expect(report.problems.contains { $0.path == nil })   // the session tag covering the byte
        #expect(try Xorriso.checkMD5(image: fixture.image) == false)
    }

    @Test func anImageWithoutChecksumsCannotBeChecked() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeGenisoimageImage(in: dir)
        let report = try Drive(DriveAddress(parsing: image)).verify()
        #expect(report.verdict == .couldNotCheck)
        #expect(report.filesWithoutMD5 > 0)
    }
}

func flipByte(in path: String, at offset: UInt64) throws {
    let fd = try FileDescriptor.open(FilePath(path), .readWrite)
    defer { try? fd.close() }
    var byte: [UInt8] = [0]
    _ = try byte.withUnsafeMutableBytes { try fd.read(fromAbsoluteOffset: Int64(offset), into: $0) }
    byte[0] ^= 0xFF
    _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), byte)
}
