// Appending sessions, judged by xorriso.

import Foundation
import SessionStore
import SystemPackage
import Testing

@Suite struct AppendTests {
    /// An image of three xorriso sessions and a folder of host files to add.
    struct Setup {
        let dir: TemporaryDirectory
        let fixture: Fixtures.ThreeSessions
        let address: DriveAddress

        init() throws {
            dir = try TemporaryDirectory()
            fixture = try Fixtures.makeThreeSessionImage(in: dir)
            address = try DriveAddress(parsing: fixture.image)
            try FileManager.default.createDirectory(atPath: dir.url("host"), withIntermediateDirectories: true)
        }

        func hostFile(_ name: String, bytes: Int, seed: UInt64) throws -> FilePath {
            try Fixtures.writeRandomFile(dir.url("host/" + name), count: bytes, seed: seed)
            return FilePath(dir.url("host/" + name))
        }

        /// The bytes of the image from block 32 (where session 1 starts) to `end`.
        func sessionBytes(upTo end: UInt32) throws -> Data {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: fixture.image))
            defer { try? handle.close() }
            try handle.seek(toOffset: 32 * 2048)
            return handle.readData(ofLength: Int(end - 32) * 2048)
        }
    }

    static func metadata(_ permissions: UInt32, mtime: Int64 = 1_700_000_000) -> Metadata {
        Metadata(permissions: permissions, uid: 1000, gid: 100, accessTime: Timestamp(seconds: mtime),
                 modificationTime: Timestamp(seconds: mtime), changeTime: Timestamp(seconds: mtime))
    }

    @Test func appendedSessionPassesXorrisosChecksAndKeepsEarlierSessions() throws {
        let setup = try Setup()
        defer { setup.dir.remove() }
        let drive = try Drive(setup.address)
        let before = try drive.medium()
        let oldTree = try drive.loadTree()
        let oldBytes = try setup.sessionBytes(upTo: before.nextWritableBlock)

        // Pick existing entries of the newest session to change.
        let files = oldTree.walk().filter { oldTree.kind(of: $0) == .regularFile }.map { oldTree.path(of: $0) }.sorted()
        let dirs = oldTree.walk().filter { oldTree.kind(of: $0) == .directory && $0 != .root }.map { oldTree.path(of: $0) }.sorted()
        let removed = try #require(files.first)
        let chmodded = try #require(files.last)
        let movedDir = try #require(dirs.first)

        let data = try setup.hostFile("data.bin", bytes: 1_000_000, seed: 1)
        let linked = try setup.hostFile("linked.bin", bytes: 5000, seed: 2)
        let changes = ChangeSet([
            .add(path: "/new", content: .directory, metadata: Self.metadata(0o755)),
            .add(path: "/new/data.bin", content: .file(data), metadata: Self.metadata(0o640)),
            .add(path: "/new/link", content: .symlink(target: Array("data.bin".utf8)), metadata: Self.metadata(0o777)),
            .add(path: "/new/pipe", content: .fifo, metadata: Self.metadata(0o600)),
            .add(path: "/hl1", content: .file(linked), metadata: Self.metadata(0o644)),
            .add(path: "/new/hl2", content: .file(linked), metadata: Self.metadata(0o644)),
            .remove(path: MediumPath(removed)),
            .rename(from: MediumPath(movedDir), to: "/new/moved"),
            .update(path: MediumPath(chmodded), change: MetadataChange(permissions: 0o751, uid: 4242, modificationTime: Timestamp(seconds: 1_600_000_000),
                                                           setXattrs: ["user.test": Array("value".utf8)])),
        ], volumeID: "FOUR")

        var phases: [AppendProgress.Phase] = []
        let after = try drive.append(changes) { phases.append($0.phase) }
        #expect(phases.first == .preparing && phases.contains(.writing) && phases.last == .activating)

        // xorriso sees four sessions, the new one named FOUR, every MD5 right.
        let toc = try Xorriso.toc(image: setup.fixture.image)
        #expect(toc.count == 4)
        #expect(toc.last?.volumeID == "FOUR")
        #expect(after.sessions.count == 4)
        #expect(try Xorriso.checkMD5(image: setup.fixture.image))
        // The earlier sessions are byte-identical.
        #expect(try setup.sessionBytes(upTo: before.nextWritableBlock) == oldBytes)

        // What the new session holds, as xorriso lists it.
        let listing = try Xorriso.list(image: setup.fixture.image)
        #expect(listing[removed] == nil)
        #expect(listing[movedDir] == nil && listing["/new/moved"]?.type == "d")
        #expect(listing[chmodded]?.permissions == 0o751 && listing[chmodded]?.uid == 4242)
        #expect(listing["/new/data.bin"]?.permissions == 0o640 && listing["/new/data.bin"]?.size == 1_000_000)
        #expect(listing["/new/link"]?.linkTarget == "data.bin")
        #expect(listing["/new/pipe"]?.type == "p")
        #expect(try Xorriso.xattr(image: setup.fixture.image, path: chmodded, name: "user.test") == "value")
        try Xorriso.extract(image: setup.fixture.image, path: "/new/data.bin", to: setup.dir.url("out.bin"))
        #expect(FileManager.default.contentsEqual(atPath: setup.dir.url("out.bin"), andPath: data.string))

        // Both names of the hard link are one file: xorriso extracts them as one inode.
        try Shell.check(["xorriso", "-hardlinks", "on", "-indev", "stdio:" + setup.fixture.image,
                         "-osirrox", "on", "-extract", "/", setup.dir.url("extracted")])
        let inodes = try ["hl1", "new/hl2"].map {
            try FileManager.default.attributesOfItem(atPath: setup.dir.url("extracted/" + $0))[.systemFileNumber] as? UInt64
        }
        #expect(inodes[0] != nil && inodes[0] == inodes[1])
        let tree = try drive.loadTree()
        let hl1 = try #require(tree.lookup(path: "/hl1")), hl2 = try #require(tree.lookup(path: "/new/hl2"))
        #expect(tree.hardLinks(of: hl1) == [hl1, hl2] && tree.hardLinks(of: hl2) == [hl1, hl2])
        #expect(tree.info(of: hl1).nlink == 2 && tree.info(of: hl2).nlink == 2)
        #expect(tree.extents(of: hl1) == tree.extents(of: hl2))
    }

    @Test func theEstimateIsNeverBelowTheWrittenSize() throws {
        let setup = try Setup()
        defer { setup.dir.remove() }
        let drive = try Drive(setup.address)
        for (round, bytes) in [0, 1, 2048, 700_000].enumerated() {
            let file = try setup.hostFile("f\(round)", bytes: bytes, seed: UInt64(round))
            let changes = ChangeSet([.add(path: "/f\(round)", content: .file(file), metadata: Self.metadata(0o644))])
            let estimate = try drive.estimate(changes)
            let medium = try drive.append(changes)
            let written = try #require(try Xorriso.toc(image: setup.fixture.image).last)
            #expect(written.start == estimate.startBlock)
            #expect(estimate.blocks >= written.blocks, "round \(round)")
            #expect(medium.sessions.last?.blocks == written.blocks)
        }
    }

    @Test func anAppendThatDoesNotFitFailsAndChangesNothing() throws {
        let setup = try Setup()
        defer { setup.dir.remove() }
        let nwa = try Drive(setup.address).medium().nextWritableBlock
        // A medium with room for 100 more blocks, asked to take 1 MB.
        let drive = try Drive(setup.address, capacity: UInt64(nwa + 100) * 2048)
        let before = try Data(contentsOf: URL(fileURLWithPath: setup.fixture.image))
        let file = try setup.hostFile("big", bytes: 1_000_000, seed: 3)
        let changes = ChangeSet([.add(path: "/big", content: .file(file), metadata: Self.metadata(0o644))])
        #expect(try drive.estimate(changes).fits == false)
        let error = #expect(throws: IsofuseError.self) { try drive.append(changes) }
        #expect(error?.code == .noSpace)
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.fixture.image)) == before)
        #expect(try drive.medium().sessions.count == 3)
    }

    @Test func firstSessionOnABlankImage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Fixtures.writeRandomFile(dir.url("payload"), count: 123_456, seed: 5)
        let image = dir.url("blank.iso")
        let drive = try Drive(DriveAddress(parsing: image))
        #expect(try drive.medium().status == .blank)
        try drive.append(ChangeSet([.add(path: "/payload", content: .file(FilePath(dir.url("payload"))),
                                         metadata: Self.metadata(0o600))], volumeID: "FIRST"))
        #expect(try Xorriso.toc(image: image).map(\.volumeID) == ["FIRST"])
        #expect(try Xorriso.checkMD5(image: image))
        let tree = try drive.loadTree(withChecksums: true)
        #expect(tree.info(of: try #require(tree.lookup(path: "/payload"))).recordedMD5 != nil)
    }

    @Test func badChangesAreRefusedBeforeAnythingIsWritten() throws {
        let setup = try Setup()
        defer { setup.dir.remove() }
        let drive = try Drive(setup.address)
        let before = try Data(contentsOf: URL(fileURLWithPath: setup.fixture.image))
        let cases: [(ChangeSet, IsofuseError.Code)] = [
            (ChangeSet([.remove(path: "/does/not/exist")]), .notFound),
            (ChangeSet([.add(path: MediumPath("/" + String(repeating: "n", count: 256)), content: .directory, metadata: Self.metadata(0o755))]), .invalidArgument),
            (ChangeSet([.add(path: "/x", content: .file(FilePath(setup.dir.url("missing"))), metadata: Self.metadata(0o644))]), .hostIO),
            (ChangeSet([.update(path: "/", change: MetadataChange(setXattrs: ["isofs.cx": [1]]))]), .invalidArgument),
        ]
        for (changes, code) in cases {
            let error = #expect(throws: IsofuseError.self) { try drive.append(changes) }
            #expect(error?.code == code, "\(changes.operations)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.fixture.image)) == before)
        #expect(try Xorriso.checkMD5(image: setup.fixture.image))
    }
}
