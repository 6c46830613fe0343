// Verification of recorded MD5s and checksum tags.

import Foundation
@testable import SessionStore
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

    /// Empty files have no extents to tell them apart: each recorded MD5 is still checked.
    @Test func aWrongMD5OfOneEmptyFileAmongOthersIsFound() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        for name in ["a", "b", "c"] { try Fixtures.write("", to: dir.url("empty/" + name)) }
        let image = dir.url("empty.iso")
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-outdev", "stdio:" + image, "-map", dir.url("empty"), "/", "-commit"])
        var patcher = try ImagePatcher(image)
        let emptyMD5: [UInt8] = [0xD4, 0x1D, 0x8C, 0xD9, 0x8F, 0x00, 0xB2, 0x04, 0xE9, 0x80, 0x09, 0x98, 0xEC, 0xF8, 0x42, 0x7E]
        let recorded = patcher.offsets(of: emptyMD5)
        // libisofs' checksum array: the session's MD5, one for each file, and
        // the MD5 of those, which must match for libisofs to trust the array.
        try #require(recorded.count == 3 && recorded[2] - recorded[0] == 32)
        patcher.bytes[recorded[2]] ^= 0xFF
        let entries = recorded[0] - 16..<recorded[2] + 16
        let sealed = patcher.bytes[entries].withUnsafeBytes { MD5.digest($0) }.bytes
        patcher.bytes.replaceSubrange(entries.upperBound..<entries.upperBound + 16, with: sealed)
        try patcher.write(to: image)

        let report = try Drive(DriveAddress(parsing: image)).verify()
        #expect(report.verdict == .mismatch)
        let mismatches = report.problems.filter { $0.detail == "MD5 MISMATCH" }
        #expect(mismatches.count == 1 && ["/a", "/b", "/c"].contains(mismatches.first?.path))
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
