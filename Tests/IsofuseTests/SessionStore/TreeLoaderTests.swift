// The tree loader reads nodes' details on several threads: the tree must be
// the same, index for index, whatever the chunks.

import CIsoburn
@testable import SessionStore
import Testing

@Suite struct TreeLoaderTests {
    @Test func aTreeLoadedInChunksIsTheTreeLoadedInOne() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try AccessTests.makeImage(in: dir)
        let source = dir.url("source")
        // xattrs, an ACL, a hard link and a symlink late in the tree, in the second chunk.
        try Fixtures.write("tagged\n", to: source + "/zz/tagged.txt")
        try Shell.check(["setfattr", "-n", "user.note", "-v", "kept", source + "/zz/tagged.txt"])
        try Shell.check(["setfacl", "-m", "u:65534:r", source + "/zz/tagged.txt"])
        try Shell.check(["ln", source + "/zz/tagged.txt", source + "/zz/linked.txt"])
        try Shell.check(["ln", "-s", "tagged.txt", source + "/zz/symlink"])
        try Fixtures.write("plain\n", to: source + "/zz/plain.txt")
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-for_backup", "-dev", "stdio:" + image,
                         "-map", source, "/", "-commit"], environment: Xorriso.cLocale)
        let drive = try Drive(DriveAddress(parsing: image))
        func load(minimumChunk: Int, readsChecksums: Bool = true) throws -> Tree {
            try drive.withHandle { handle throws(IsofuseError) -> Tree in
                let image = try drive.readImage(handle, session: nil, of: try drive.mediumInfo(handle))
                defer { iso_image_unref(image) }
                return TreeLoader(image: image, session: nil, mediumByteCount: .max, readsChecksums: readsChecksums,
                                  minimumChunk: minimumChunk).load()
            }
        }
        let whole = try load(minimumChunk: .max)
        let chunked = try load(minimumChunk: 1)
        #expect(whole.nodeCount > 8)
        #expect(chunked.records == whole.records)
        #expect(chunked.bytes == whole.bytes && chunked.extents == whole.extents && chunked.digests == whole.digests)
        #expect(chunked.attributes == whole.attributes && chunked.linkGroups == whole.linkGroups)
        let tagged = try #require(whole.lookup(path: "/zz/tagged.txt"))
        #expect(whole.attributes(of: tagged).xattrs["user.note"] == Array("kept".utf8))
        #expect(whole.attributes(of: tagged).acl?.access?.contains("user:") == true)
        #expect(whole.info(of: tagged).nlink == 2)
        // One group of names, the hard link's; every other file has one name.
        let linked = try #require(whole.lookup(path: "/zz/linked.txt"))
        #expect(whole.linkGroups.count == 1)
        #expect(whole.linkGroups.first?.map(\.rawValue).sorted() == [tagged, linked].map(\.rawValue).sorted())
        #expect(whole.info(of: try #require(whole.lookup(path: "/zz/plain.txt"))).nlink == 1)
        // MD5s only where asked (a check): the same tree without them.
        #expect(whole.info(of: tagged).recordedMD5 != nil)
        let lean = try load(minimumChunk: 1, readsChecksums: false)
        #expect(lean.digests.isEmpty && lean.info(of: tagged).recordedMD5 == nil)
        #expect(lean.bytes == whole.bytes && lean.extents == whole.extents && lean.attributes == whole.attributes)
    }
}
