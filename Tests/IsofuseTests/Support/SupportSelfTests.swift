// The test support itself, checked against the host trees the images were made from.

import Foundation
import Testing

@Suite struct SupportSelfTests {
    @Test func threeSessionImageHasItsSessionsAndMatchingMD5s() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let toc = try Xorriso.toc(image: fixture.image)
        #expect(toc.map(\.number) == [1, 2, 3])
        #expect(toc.map(\.volumeID) == ["ONE", "TWO", "THREE"])
        for (earlier, later) in zip(toc, toc.dropFirst()) {
            #expect(later.start >= earlier.start + earlier.blocks)
        }
        for session in [nil, 1, 2, 3] {
            #expect(try Xorriso.checkMD5(image: fixture.image, session: session), "session \(session ?? 0)")
        }
    }

    @Test func newestSessionListsExactlyTheSourceTree() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let listing = try Xorriso.list(image: fixture.image)
        #expect(listing["/"]?.type == "d")
        #expect(listing.filter { $0.key != "/" }.mapValues(EntryShape.init) == (try hostTree(fixture.source)))

        #expect(listing["/renamed dir/Äpfel € naïve.txt"]?.size == 7)
        #expect(listing["/日本語.txt"]?.type == "-")
        #expect(listing["/link"]?.type == "l" && listing["/link"]?.linkTarget == "docs/readme.txt")
        #expect(listing["/fifo"]?.type == "p")
        #expect(listing["/private.txt"]?.permissions == 0o600 && listing["/script.sh"]?.permissions == 0o755)
        #expect(listing["/owned.txt"].map { [$0.uid, $0.gid] } == [1000, 100])
        #expect(listing["/random.bin"]?.size == 300 * 1024)
        #expect(listing["/empty dir"]?.type == "d" && listing["/empty.txt"]?.size == 0)
    }

    @Test func earlierSessionsKeepTheirOwnTrees() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let one = try Xorriso.list(image: fixture.image, session: 1)
        let two = try Xorriso.list(image: fixture.image, session: 2)
        let three = try Xorriso.list(image: fixture.image, session: 3)
        #expect(one["/dir with spaces/Äpfel € naïve.txt"] != nil && one["/docs/obsolete.txt"] != nil)
        #expect(one["/added"] == nil && one["/renamed dir"] == nil)
        #expect(two["/dir with spaces"] == nil && two["/renamed dir/Äpfel € naïve.txt"] != nil)
        #expect(two["/docs/obsolete.txt"] == nil && two["/added/new.txt"] != nil && two["/docs/added.bin"]?.size == 10_000)
        #expect(two["/docs/changing.txt"].map { [$0.permissions, UInt32($0.size)] } == [0o644, 12])
        #expect(three["/docs/changing.txt"].map { [$0.permissions, UInt32($0.size)] } == [0o640, 39])
        #expect(three == (try Xorriso.list(image: fixture.image)))
    }

    @Test func xattrsAndExtractedFilesComeFromTheNewestSession() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        #expect(try Xorriso.xattr(image: fixture.image, path: "/docs/readme.txt", name: "user.note") == "hello")
        #expect(try Xorriso.xattr(image: fixture.image, path: "/docs/readme.txt", name: "user.other") == nil)
        #expect(try Xorriso.xattr(image: fixture.image, path: "/random.bin", name: "user.note") == nil)
        for path in ["/random.bin", "/docs/changing.txt"] {
            try Xorriso.extract(image: fixture.image, path: path, to: dir.url("extracted"))
            #expect(FileManager.default.contentsEqual(atPath: dir.url("extracted"), andPath: fixture.source + path), "\(path)")
            try FileManager.default.removeItem(atPath: dir.url("extracted"))
        }
    }

    /// Names and values that xorriso must quote or encode: blanks, control characters,
    /// quotes, backslashes, pattern characters, non-ASCII.
    @Test func awkwardNamesValuesAndVolumeIDsComeBackExactly() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let names = ["tab\there", "new\nline", "it's \"quoted\"", "back\\slash \\n", "star*?[x]", "  two leading",
                     "trailing ", "Äpfel € naïve.txt", "日本語.txt", "->", "a -> b"]
        try FileManager.default.createDirectory(atPath: dir.url("src"), withIntermediateDirectories: true)
        for (index, name) in names.enumerated() {
            try Fixtures.writeRandomFile(dir.url("src/" + name), count: index, seed: UInt64(index))
        }
        try FileManager.default.createSymbolicLink(atPath: dir.url("src/link"), withDestinationPath: "it's \"quoted\" -> é\t")
        let value = "a\tb\"c\\d é'"
        try Shell.check(["setfattr", "-n", "user.odd", "-v", value, dir.url("src/star*?[x]")])
        let image = dir.url("odd.iso"), volumeID = "Vé l,x\\y"
        try Shell.check(["xorriso", "-for_backup", "-outdev", "stdio:" + image, "-volid", volumeID,
                         "-map", dir.url("src"), "/", "-commit"])

        let listing = try Xorriso.list(image: image)
        #expect(Set(listing.keys) == Set(["/", "/link"] + names.map { "/" + $0 }))
        for (index, name) in names.enumerated() {
            #expect(listing["/" + name]?.size == UInt64(index), "\(name)")
        }
        #expect(listing["/link"]?.linkTarget == "it's \"quoted\" -> é\t")
        #expect(try Xorriso.xattr(image: image, path: "/star*?[x]", name: "user.odd") == value)
        #expect(try Xorriso.toc(image: image).map(\.volumeID) == [volumeID])
    }

    @Test func aChangedByteFailsTheMD5Check() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let report = try Xorriso.query(image: fixture.image, ["-find", "/random.bin", "-exec", "report_lba", "--"])
        // "File data lba:  0 ,       64 ,      150 ,   307200 , '/random.bin'"
        let row = try #require(report.split(separator: "\n").first { $0.hasPrefix("File data lba:") })
        let block = try #require(UInt64(row.split(separator: ",")[1].trimmingCharacters(in: .whitespaces)))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: fixture.image))
        try handle.seek(toOffset: block * 2048 + 100)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: block * 2048 + 100)
        try handle.write(contentsOf: [~byte])
        try handle.close()
        #expect(try Xorriso.checkMD5(image: fixture.image) == false)
    }

    @Test func genisoimageImageHasOneSessionAndNoMD5s() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeGenisoimageImage(in: dir)
        #expect(try Xorriso.toc(image: image).map(\.volumeID) == ["GENISO"])
        let listing = try Xorriso.list(image: image)
        #expect(listing["/sub/data.bin"]?.size == 50_000)
        #expect(listing["/link"]?.linkTarget == "plain.txt")
        #expect(try Xorriso.checkMD5(image: image) == false)
    }
}
