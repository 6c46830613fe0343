// The merged view written as a session: whatever the staged changes, xorriso
// must find exactly the merged view in the new session.

import Foundation
import SessionStore
import Stage
import SystemPackage
import Testing

@Suite struct CommitPlannerTests {
    /// An overlay over the newest session of the three-session fixture, with
    /// a folder for staged data.
    struct Setup {
        let dir: TemporaryDirectory
        let fixture: Fixtures.ThreeSessions
        let drive: Drive
        var overlay: Overlay
        let time = Timestamp(seconds: 1_750_000_000)

        init() throws {
            dir = try TemporaryDirectory()
            fixture = try Fixtures.makeThreeSessionImage(in: dir)
            drive = try Drive(DriveAddress(parsing: fixture.image))
            overlay = Overlay(base: try drive.loadTree())
            try FileManager.default.createDirectory(atPath: dir.url("data"), withIntermediateDirectories: true)
        }

        func dataPath(_ id: DataID) -> FilePath { FilePath(dir.url("data/\(id)")) }

        func ref(_ path: String) throws -> NodeRef { try #require(overlay.lookup(path: path), "\(path)") }

        /// Splits "/a/b" into the directory's node and the name.
        func place(_ path: String) throws -> (NodeRef, Name) {
            let parent = String(path[..<path.lastIndex(of: "/")!])
            return (try ref(parent.isEmpty ? "/" : parent), Array(path.split(separator: "/").last!.utf8))
        }

        func node(_ kind: NodeKind, _ permissions: UInt32) -> UpperNode {
            UpperNode(kind: kind, metadata: Metadata(permissions: permissions, uid: 0, gid: 0, accessTime: time,
                                                     modificationTime: time, changeTime: time))
        }

        mutating func mkdir(_ path: String) throws {
            let (dir, name) = try place(path)
            _ = try overlay.create(node(.directory, 0o755), named: name, in: dir, at: time)
        }

        /// A new file with `bytes` random bytes of staged content.
        mutating func createFile(_ path: String, bytes: Int, seed: UInt64) throws {
            let data = overlay.allocateDataID()
            try Fixtures.writeRandomFile(dataPath(data).string, count: bytes, seed: seed)
            var file = node(.regularFile, 0o644)
            file.content = .staged(data)
            file.size = UInt64(bytes)
            let (dir, name) = try place(path)
            _ = try overlay.create(file, named: name, in: dir, at: time)
        }

        /// New content for an existing file (what a write after copy-up leaves).
        mutating func rewrite(_ path: String, bytes: Int, seed: UInt64) throws {
            let data = overlay.allocateDataID()
            try Fixtures.writeRandomFile(dataPath(data).string, count: bytes, seed: seed)
            overlay.setContent(try ref(path), .staged(data), size: UInt64(bytes), at: time)
        }

        mutating func rename(_ from: String, _ to: String, mode: RenameMode = .replace) throws {
            let (fromDir, fromName) = try place(from), (toDir, toName) = try place(to)
            try overlay.rename(fromName, in: fromDir, to: toName, in: toDir, mode: mode, at: time)
        }

        /// Writes the merged view as a new session; returns what xorriso lists there.
        func commit() throws -> [String: Xorriso.Entry] {
            let plan = overlay.plannedCommit(dataPath: dataPath)
            try drive.append(plan.changes)
            #expect(try Xorriso.checkMD5(image: fixture.image))
            return try Xorriso.list(image: fixture.image)
        }
    }

    @Test func aSessionOfEveryKindOfChangeIsTheMergedView() throws {
        var setup = try Setup()
        defer { setup.dir.remove() }
        try setup.mkdir("/new")
        try setup.createFile("/new/file.bin", bytes: 100_000, seed: 1)
        try setup.rename("/docs", "/new/docs-moved")               // a base directory with content
        let (root, _) = try setup.place("/empty.txt")
        try setup.overlay.remove(Array("empty.txt".utf8), in: root, directory: false, at: setup.time)
        setup.overlay.update(try setup.ref("/script.sh")) { $0.metadata.permissions = 0o700; $0.metadata.xattrs["user.tag"] = Array("x".utf8) }
        setup.overlay.update(try setup.ref("/new/docs-moved/readme.txt")) { $0.metadata.xattrs["user.note"] = nil }
        try setup.rewrite("/random.bin", bytes: 50_000, seed: 2)  // a base file with new content
        try setup.rename("/renamed dir/Äpfel € naïve.txt", "/Äpfel.txt")
        try setup.overlay.remove(Array("empty dir".utf8), in: root, directory: true, at: setup.time)
        try setup.overlay.link(try setup.ref("/new/file.bin"), named: Array("file-link.bin".utf8),
                               in: try setup.ref("/new"), at: setup.time)
        var link = setup.node(.symlink, 0o777)
        link.target = Array("file.bin".utf8)
        _ = try setup.overlay.create(link, named: Array("sl".utf8), in: try setup.ref("/new"), at: setup.time)
        _ = try setup.overlay.create(setup.node(.fifo, 0o600), named: Array("pipe".utf8), in: try setup.ref("/new"), at: setup.time)
        try setup.rename("/owned.txt", "/private.txt", mode: .exchange)
        try setup.rename("/added", "/docs")                         // the moved directory's old name, reused

        let expected = mergedListing(setup.overlay)
        let listing = try setup.commit()
        #expect(listing.filter { $0.key != "/" }.mapValues(EntryShape.init) == expected)

        // Contents: new, rewritten, moved with its directory, and the xattrs.
        for (path, data) in [("/new/file.bin", 1), ("/random.bin", 2)] as [(String, DataID)] {
            try Xorriso.extract(image: setup.fixture.image, path: path, to: setup.dir.url("out"))
            #expect(FileManager.default.contentsEqual(atPath: setup.dir.url("out"), andPath: setup.dataPath(data).string), "\(path)")
            try FileManager.default.removeItem(atPath: setup.dir.url("out"))
        }
        try Xorriso.extract(image: setup.fixture.image, path: "/new/docs-moved/nested/deeper/leaf.txt", to: setup.dir.url("leaf"))
        #expect(FileManager.default.contentsEqual(atPath: setup.dir.url("leaf"),
                                                  andPath: setup.fixture.source + "/docs/nested/deeper/leaf.txt"))
        #expect(try Xorriso.xattr(image: setup.fixture.image, path: "/script.sh", name: "user.tag") == "x")
        #expect(try Xorriso.xattr(image: setup.fixture.image, path: "/new/docs-moved/readme.txt", name: "user.note") == nil)
    }

    @Test func swappingTwoDirectoriesGoesThroughLimbo() throws {
        var setup = try Setup()
        defer { setup.dir.remove() }
        try setup.rename("/docs", "/tmp-name")
        try setup.rename("/added", "/docs")
        try setup.rename("/tmp-name", "/added")
        let expected = mergedListing(setup.overlay)
        #expect(try setup.commit().filter { $0.key != "/" }.mapValues(EntryShape.init) == expected)
    }

    /// Changes frozen for a commit become base; changes made meanwhile stay
    /// staged over the new session, and the merged view does not change.
    @Test func changesMadeDuringACommitStayStagedOverTheNewSession() throws {
        var setup = try Setup()
        defer { setup.dir.remove() }
        try setup.mkdir("/first")
        try setup.createFile("/first/a.bin", bytes: 3000, seed: 3)
        try setup.rename("/docs", "/first/docs")
        setup.overlay.update(try setup.ref("/script.sh")) { $0.metadata.permissions = 0o711 }
        let frozen = setup.overlay

        // Meanwhile: a new file, a change to a file of the frozen changes, a move of a frozen directory.
        try setup.createFile("/second.bin", bytes: 2000, seed: 4)
        setup.overlay.update(try setup.ref("/first/a.bin")) { $0.metadata.permissions = 0o600 }
        try setup.rename("/first/docs", "/docs-again")
        let live = setup.overlay
        let expected = mergedListing(live)

        try setup.drive.append(frozen.plannedCommit(dataPath: setup.dataPath).changes)
        let (rebased, rebase) = try Rebase.rebase(live: live, frozen: frozen, onto: try setup.drive.loadTree())
        #expect(mergedListing(rebased) == expected)
        // The committed and untouched: base now. The touched and the new: still staged.
        #expect(rebased.view(try #require(rebased.lookup(path: "/script.sh"))).isBase)
        #expect(rebased.view(try #require(rebased.lookup(path: "/first"))).isBase == false)
        #expect(rebased.view(try #require(rebased.lookup(path: "/first/a.bin"))).isBase == false)
        #expect(rebased.upperNode(try #require(rebased.lookup(path: "/first/a.bin")))?.content.map {
            if case .base = $0 { true } else { false } } == true)
        #expect(rebase.translate(try #require(frozen.lookup(path: "/script.sh"))) == rebased.lookup(path: "/script.sh"))

        setup.overlay = rebased
        let plan = rebased.plannedCommit(dataPath: setup.dataPath)
        #expect(plan.added == 1)
        #expect(try setup.commit().filter { $0.key != "/" }.mapValues(EntryShape.init) == expected)
    }

    @Test func nothingStagedPlansNothing() throws {
        let setup = try Setup()
        defer { setup.dir.remove() }
        #expect(setup.overlay.plannedCommit(dataPath: setup.dataPath).isEmpty)
    }
}

/// The merged view as path → shape, like `listing(of: Tree)`.
func mergedListing(_ overlay: Overlay) -> [String: EntryShape] {
    var result: [String: EntryShape] = [:]
    func walk(_ ref: NodeRef, _ path: String) {
        for entry in overlay.listing(of: ref) {
            let child = path + "/" + String(decoding: entry.name, as: UTF8.self)
            let view = overlay.view(entry.ref)
            result[child] = EntryShape(type: EntryShape.type(of: view.kind), permissions: view.metadata.permissions, uid: view.metadata.uid, gid: view.metadata.gid,
                                       size: view.kind == .regularFile ? view.size : nil,
                                       linkTarget: view.target.map { String(decoding: $0, as: UTF8.self) })
            if view.kind == .directory { walk(entry.ref, child) }
        }
    }
    walk(.base(.root), "")
    return result
}
