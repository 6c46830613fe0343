// The medium as SessionStore reads it, judged by xorriso.

import SessionStore
import SystemPackage
import Testing

@Suite struct MediumTests {
    @Test func tocAgreesWithXorriso() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let medium = try Drive(DriveAddress(parsing: fixture.image)).medium()
        let expected = try Xorriso.toc(image: fixture.image)
        #expect(expected.count == 3)
        #expect(medium.sessions.map { Xorriso.TocEntry(number: $0.number, start: $0.startBlock, blocks: $0.blocks, volumeID: $0.volumeID) }
                == expected)
        #expect(medium.status == .appendable)
        #expect(medium.sessions.allSatisfy { $0.creationTime != nil })
    }

    @Test func everySessionTreeEqualsXorrisosListing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let drive = try Drive(DriveAddress(parsing: fixture.image))
        for session in 1...3 {
            let tree = try drive.loadTree(session: session)
            #expect(tree.session?.number == session)
            let expected = try Xorriso.list(image: fixture.image, session: session).filter { $0.key != "/" }
            #expect(listing(of: tree) == expected.mapValues(EntryShape.init), "session \(session)")
        }
    }

    @Test func nonASCIINamesArePathsUnderTheCLocale() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let tree = try Drive(DriveAddress(parsing: fixture.image)).loadTree()
        let names = Set(tree.walk().map { tree.path(of: $0) })
        #expect(names.contains { $0.hasSuffix("/Äpfel € naïve.txt") })
        #expect(names.contains { $0.hasSuffix("/日本語.txt") })
        #expect(tree.lookup(path: names.first { $0.hasSuffix("/日本語.txt") }!) != nil)
    }

    @Test func lookupFindsEveryNodeByPathAndListsChildrenSorted() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let tree = try Drive(DriveAddress(parsing: fixture.image)).loadTree()
        for node in tree.walk() {
            #expect(tree.lookup(path: tree.path(of: node)) == node)
            let names = tree.children(of: node).map { Array(tree.nameBytes(of: $0)) }
            #expect(names == names.sorted { $0.lexicographicallyPrecedes($1) })
        }
        #expect(tree.lookup(path: "/no/such/file") == nil)
    }

    @Test func blankImageHasNoSessionsAndAGarbageFileIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let blank = try Drive(DriveAddress(parsing: dir.url("new.iso"))).medium()
        #expect(blank.status == .blank)
        #expect(blank.sessions.isEmpty)

        try Fixtures.writeRandomFile(dir.url("garbage.bin"), count: 200_000, seed: 7)
        let error = #expect(throws: IsofuseError.self) {
            try Drive(DriveAddress(parsing: dir.url("garbage.bin"))).medium()
        }
        #expect(error?.code == .corruptMedium)
    }

    @Test func identityFollowsTheMediumAndItsState() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let before = try Drive(DriveAddress(parsing: fixture.image)).medium().identity
        try Shell.check(["xorriso", "-md5", "on", "-dev", "stdio:" + fixture.image, "-volid", "FOUR",
                         "-map", fixture.source, "/copy", "-commit"])
        let after = try Drive(DriveAddress(parsing: fixture.image)).medium().identity
        #expect(before.mediumKey == after.mediumKey)
        #expect(before.state != after.state)

        let other = try Fixtures.makeGenisoimageImage(in: dir)
        #expect(try Drive(DriveAddress(parsing: other)).medium().identity.mediumKey != before.mediumKey)
    }
}

extension EntryShape {
    /// The type letter `ls -l` shows for a kind of node.
    static func type(of kind: NodeKind) -> Character {
        switch kind {
        case .directory: "d"
        case .regularFile: "-"
        case .symlink: "l"
        case .fifo: "p"
        case .characterDevice: "c"
        case .blockDevice: "b"
        case .socket: "s"
        }
    }

    init(_ tree: Tree, _ node: NodeID) {
        let info = tree.info(of: node)
        self.init(type: Self.type(of: info.kind), permissions: info.permissions, uid: info.uid, gid: info.gid,
                  size: info.kind == .regularFile ? info.size : nil, linkTarget: tree.symlinkTarget(of: node).map { String(decoding: $0, as: UTF8.self) })
    }
}

func listing(of tree: Tree) -> [String: EntryShape] {
    Dictionary(uniqueKeysWithValues: tree.walk().filter { $0 != .root }.map { (tree.path(of: $0), EntryShape(tree, $0)) })
}
