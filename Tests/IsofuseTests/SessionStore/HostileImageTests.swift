// Images no honest tool makes: names no host can use, directory loops,
// extents past the end, absurd sizes, truncated sessions, broken checksum
// tags, and the fuzzer's regression corpus. Each is made by patching an
// xorriso image. The contract: a clear error or a working tree, never a
// crash, a hang, or an entry named `.`, `..`, "" or with `/` in it; a read
// that cannot be served is an error (EIO in the mount), not an early end.

import Foundation
import SessionStore
import Testing

@Suite struct HostileImageTests {
    /// A small single-session image without MD5s (so that patches are not
    /// refused for their checksums), with the names the patches look for.
    static func makeBaseImage(in dir: TemporaryDirectory, md5: Bool = false) throws -> String {
        let source = dir.url("source"), image = dir.url("base.iso")
        try Fixtures.writeRandomFile(source + "/data.bin", count: 10_000, seed: 7)
        for name in ["slash-xx", "dd", "nulx", "empty"] { try Fixtures.write("\(name)\n", to: source + "/" + name) }
        try Fixtures.write("y\n", to: source + "/dir/y")
        try Fixtures.write("inner\n", to: source + "/loop/inner/f.txt")
        try Shell.check(["xorriso", "-no_rc", "-padding", "0", "-md5", md5 ? "on" : "off",
                         "-outdev", "stdio:" + image, "-map", source, "/", "-commit"], environment: Xorriso.cLocale)
        return image
    }

    /// The patched copy of `image`, as dir/name.
    static func patched(_ image: String, _ name: String, in dir: TemporaryDirectory,
                        _ patch: (inout ImagePatcher) throws -> Void) throws -> String {
        var patcher = try ImagePatcher(image)
        try patch(&patcher)
        let path = dir.url(name)
        try patcher.write(to: path)
        return path
    }

    // MARK: Names

    @Test func namesNoHostCanUseAreLeftOut() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "names.iso", in: dir) { image in
            try image.renameRockRidge("dd", to: Array("..".utf8))
            try image.renameRockRidge("y", to: Array(".".utf8))
            try image.renameRockRidge("empty", to: [0, 0, 0, 0, 0])
            try image.renameRockRidge("nulx", to: [0x6E, 0x75, 0, 0x78])   // "nu\0x"
        }
        // libisofs loads these names as recorded (up to a NUL); xorriso fails on the "..".
        let workout = ImageWorkout(image: image)
        #expect(workout.violations.isEmpty, "\(workout.violations)")
        let tree = try #require(workout.trees.first)
        let names = Set(tree.children(of: .root).map { tree.name(of: $0) })
        #expect(names == ["data.bin", "dir", "loop", "nu", "slash-xx"])
        let subdirectory = try #require(tree.lookup(path: "/dir"))
        #expect(tree.children(of: subdirectory).isEmpty)

        try withMount(image, in: dir) { mount throws in
            #expect(try FileManager.default.contentsOfDirectory(atPath: mount.mountpoint).sorted()
                    == ["data.bin", "dir", "loop", "nu", "slash-xx"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: mount.path("dir")).isEmpty)
            #expect(try String(contentsOfFile: mount.path("nu"), encoding: .utf8) == "nulx\n")
        }
    }

    @Test func aSlashInARockRidgeNameNeverMakesAPath() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "slash.iso", in: dir) { try $0.renameRockRidge("slash-xx", to: Array("slash/xx".utf8)) }
        let workout = ImageWorkout(image: image)
        #expect(workout.violations.isEmpty, "\(workout.violations)")
        let tree = try #require(workout.trees.first)
        #expect(tree.children(of: .root).allSatisfy { !tree.name(of: $0).contains("/") })
        #expect(tree.lookup(path: "/data.bin") != nil)
    }

    // MARK: Structure

    /// libisofs follows a directory that points back to the root without end
    /// (xorriso hangs on this image): isofuse refuses it at once.
    @Test(.timeLimit(.minutes(2))) func aDirectoryLoopIsRefusedAtOnce() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "loop.iso", in: dir) { image in
            image.setExtent(ofRecordAt: try image.directoryRecord(named: "LOOP"), to: image.rootDirectoryBlock)
        }
        let drive = try Drive(DriveAddress(parsing: image))
        #expect(try drive.medium().sessions.count == 1)
        let error = #expect(throws: IsofuseError.self) { try drive.loadTree() }
        #expect(error?.code == .corruptMedium)
        #expect(error?.message.contains("loop") == true)
        drive.release(eject: false)

        #expect(try IsofuseMount.run(["toc", image], timeout: 30).status == 0)
        let check = try IsofuseMount.run(["check", image], timeout: 30)
        #expect(check.status == 1 && check.stdout.contains("loop"), "\(check.stdout) \(check.stderr)")
        expectMountRefused(image, in: dir, mentioning: "loop")
    }

    /// A session head claiming 0 blocks: libisoburn's walk from head to head
    /// would stay on it forever (xorriso hangs on this image); refused at once.
    @Test(.timeLimit(.minutes(2))) func aSessionClaimingNoBlocksIsRefusedAtOnce() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let start = try #require(try Xorriso.toc(image: base).first).start
        #expect(start == 32)   // an image file's first session follows the 64 KiB head
        let image = try Self.patched(base, "empty-session.iso", in: dir) { $0.setVolumeBlocks(ofSessionAt: Int(start), to: 0) }
        let error = #expect(throws: IsofuseError.self) { try Drive(DriveAddress(parsing: image)) }
        #expect(error?.code == .corruptMedium)
        expectOneLineFailure(try IsofuseMount.run(["toc", image], timeout: 30), status: 1, mentioning: "block 32")
        expectMountRefused(image, in: dir, mentioning: "block 32")
    }

    /// Two directory records sharing one directory: libisofs would read it
    /// once per record (a tree that doubles at every level); refused too.
    @Test func aDirectoryReachedTwiceIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "shared.iso", in: dir) { image in
            let loop = try image.directoryRecord(named: "LOOP")
            image.setExtent(ofRecordAt: try image.directoryRecord(named: "DIR"), to: image.extent(ofRecordAt: loop))
        }
        let error = #expect(throws: IsofuseError.self) { try Drive(DriveAddress(parsing: image)).loadTree() }
        #expect(error?.code == .corruptMedium)
    }

    /// genisoimage relocates directories deeper than 8 levels (Rock Ridge CL
    /// and RE entries): the loop guard follows them and lets the tree through.
    @Test func relocatedDeepDirectoriesStillLoad() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let deep = (1...12).map { "level\($0)" }.joined(separator: "/")
        try Fixtures.write("deep\n", to: dir.url("source/" + deep + "/leaf.txt"))
        let image = dir.url("deep.iso")
        try Shell.check(["genisoimage", "-quiet", "-R", "-o", image, dir.url("source")])
        #expect(try ImagePatcher(image).offsets(of: Array("rr_moved".utf8)).isEmpty == false)
        let tree = try Drive(DriveAddress(parsing: image)).loadTree()
        #expect(tree.lookup(path: "/" + deep + "/leaf.txt") != nil)
        #expect(Set(try Xorriso.list(image: image).keys) == Set(tree.walk().map { tree.path(of: $0) }))
    }

    // MARK: Extents and sizes

    @Test func anExtentPastTheEndIsAReadError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "past.iso", in: dir) { image in
            image.setExtent(ofRecordAt: try image.directoryRecord(named: "DATA.BIN;1"), to: 0x00FF_FFF0)
        }
        let drive = try Drive(DriveAddress(parsing: image))
        let tree = try drive.loadTree()
        let file = try #require(tree.lookup(path: "/data.bin"))
        let reader = try drive.makeReader()
        let error = #expect(throws: IsofuseError.self) { try read(reader, file, tree, offset: 0, length: 100) }
        #expect(error?.code == .readError)
        drive.release(eject: false)

        try withMount(image, in: dir) { mount throws in
            expectInputOutputError(reading: mount.path("data.bin"))
            #expect(try String(contentsOfFile: mount.path("dir/y"), encoding: .utf8) == "y\n")
        }
    }

    /// A file claiming 4 GiB - 1 bytes in a 100 KiB image: its size is shown,
    /// the bytes the image has are read, the rest is EIO; nothing traps or
    /// allocates the claimed size.
    @Test func anAbsurdSizeIsShownButNotBelieved() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir)
        let image = try Self.patched(base, "huge.iso", in: dir) { image in
            image.setDataLength(ofRecordAt: try image.directoryRecord(named: "DATA.BIN;1"), to: .max)
        }
        let workout = ImageWorkout(image: image)
        #expect(workout.violations.isEmpty)
        let tree = try #require(workout.trees.first)
        let file = try #require(tree.lookup(path: "/data.bin"))
        #expect(tree.info(of: file).size == UInt64(UInt32.max))
        let reader = try Drive(DriveAddress(parsing: image)).makeReader()
        #expect(try read(reader, file, tree, offset: 0, length: 100).count == 100)
        #expect(throws: IsofuseError.self) { try read(reader, file, tree, offset: UInt64(UInt32.max) - 100, length: 100) }

        try withMount(image, in: dir) { mount throws in
            let attributes = try FileManager.default.attributesOfItem(atPath: mount.path("data.bin"))
            #expect(attributes[.size] as? UInt64 == UInt64(UInt32.max))
            let tail = try Shell.run(["timeout", "20", "dd", "if=" + mount.path("data.bin"), "of=/dev/null",
                                      "bs=4096", "skip=1048000", "count=1"])
            #expect(tail.status == 1 && tail.stderr.contains("Input/output error"), "\(tail.stderr)")
            #expect(try mount.status().sessions == 1)   // the daemon lives
        }
    }

    // MARK: Sessions and tags

    /// A three-session image cut at several places: every step either works
    /// or fails clearly.
    @Test(.timeLimit(.minutes(3))) func truncatedImagesFailClearly() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture.image))
        let sessions = try Xorriso.toc(image: fixture.image)
        let cuts = [sessions[2].start * 2048 + 17 * 2048, sessions[1].start * 2048 + 40 * 2048,
                    UInt32(whole.count / 2), UInt32(whole.count) - 2048]
        for (index, cut) in cuts.enumerated() {
            let image = dir.url("cut-\(index).iso")
            try whole.prefix(Int(cut)).write(to: URL(fileURLWithPath: image))
            let workout = ImageWorkout(image: image)
            #expect(workout.violations.isEmpty, "cut at \(cut): \(workout.violations)")
            // check: 0 or 1 with its findings on stdout, or 2 with one line; toc: 0 or one line.
            let check = try IsofuseMount.run(["check", image], timeout: 60)
            #expect([0, 1, 2].contains(check.status))
            if check.status == 2 { expectOneLineFailure(check, status: 2) }
            let toc = try IsofuseMount.run(["toc", image], timeout: 60)
            if toc.status != 0 { expectOneLineFailure(toc, status: toc.status) }
        }
    }

    /// A damaged session or tree tag: `check` says so (exit 1); the tree is
    /// intact (libisofs takes a tag it cannot decode for none), so the mount works.
    @Test(arguments: ["libisofs_checksum_tag_v1", "libisofs_tree_checksum_tag_v1"])
    func aBrokenTagIsReportedButTheMountWorks(tag kind: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir, md5: true)
        let image = try Self.patched(base, "tag.iso", in: dir) { image in
            image.bytes[try image.checksumTagBlock(kind) * 2048 + 60] ^= 0x01
        }
        let result = try IsofuseMount.run(["check", image])
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("checksum tag"))
        try withMount(image, in: dir) { mount throws in
            #expect(try String(contentsOfFile: mount.path("dir/y"), encoding: .utf8) == "y\n")
        }
    }

    /// A directory record changed under an intact tree tag: the tree cannot
    /// be trusted, so the mount refuses it with one line; `check` reports it
    /// (exit 1) and still checks the files.
    @Test func aTreeThatDoesNotMatchItsTagIsRefusedByTheMount() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let base = try Self.makeBaseImage(in: dir, md5: true)
        let image = try Self.patched(base, "treetag.iso", in: dir) { image in
            image.bytes[try image.directoryRecord(named: "DIR") + 18] ^= 0x01   // the year of its date
        }
        let result = try IsofuseMount.run(["check", image])
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("checksum mismatch in the directory tree"))
        #expect(!result.stdout.contains(" 0 files with MD5 checked"), "\(result.stdout)")
        expectMountRefused(image, in: dir, mentioning: "checksum mismatch")
    }

    // MARK: The fuzzer's finds

    /// Every input in fuzz/corpus (inputs that once crashed, hung or leaked;
    /// `make fuzz` has its own run with sanitizers) goes through the fuzzer's loading path.
    @Test(.timeLimit(.minutes(2))) func theFuzzRegressionCorpusLoadsCleanly() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../fuzz/corpus").standardized.path
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).sorted()
        #expect(!inputs.isEmpty)
        for input in inputs {
            let workout = ImageWorkout(image: corpus + "/" + input)
            #expect(workout.violations.isEmpty, "\(input): \(workout.violations)")
        }
    }

    // MARK: Helpers

    private func read(_ reader: any MediumReader, _ file: NodeID, _ tree: Tree, offset: UInt64, length: Int) throws -> [UInt8] {
        try withScratchBuffer(byteCount: length) { buffer in
            Array(buffer[..<(try reader.read(file, of: tree, at: offset, into: buffer))])
        }
    }

    private func withMount(_ image: String, in dir: TemporaryDirectory, _ body: (IsofuseMount) throws -> Void) throws {
        guard IsofuseMount.fuseAvailable else { return }
        let mount = try IsofuseMount(image, in: dir)
        defer { mount.cleanUp() }
        try body(mount)
    }

    private func expectOneLineFailure(_ result: Shell.Result, status: Int32, mentioning word: String? = nil,
                                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "\(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("isofuse: ") && word.map(lines[0].contains) != false,
                "\(result.stderr)", sourceLocation: sourceLocation)
    }

    private func expectMountRefused(_ image: String, in dir: TemporaryDirectory, mentioning word: String,
                                    sourceLocation: SourceLocation = #_sourceLocation) {
        guard IsofuseMount.fuseAvailable else { return }
        do {
            let mountpoint = try IsofuseMount.newDirectory(in: dir, named: "refused")
            let result = try IsofuseMount.mount(image, at: mountpoint, ["--staging", dir.url("refused-staging")])
            defer { IsofuseMount.detach(mountpoint) }
            #expect(result.status != 0 && !IsofuseMount.isMounted(mountpoint), sourceLocation: sourceLocation)
            expectOneLineFailure(result, status: result.status, mentioning: word, sourceLocation: sourceLocation)
        } catch {
            Issue.record(error, sourceLocation: sourceLocation)
        }
    }

    private func expectInputOutputError(reading path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let result = try Shell.run(["timeout", "20", "cat", path])
            #expect(result.status == 1 && result.stderr.contains("Input/output error"), "\(result.stderr)",
                    sourceLocation: sourceLocation)
        } catch {
            Issue.record(error, sourceLocation: sourceLocation)
        }
    }
}
