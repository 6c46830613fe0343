// The mounted filesystem driven through its FUSE-facing operations, without
// a mount: staging, the control directory, commits, persistence.

import Foundation
import SessionStore
import Stage
import SystemPackage
import Testing

/// A `MountedFileSystem` over a three-session fixture, and helpers that speak paths.
struct MountedSetup {
    let dir: TemporaryDirectory
    let fixture: Fixtures.ThreeSessions
    var fs: MountedFileSystem
    static let caller = Caller(uid: 0, gid: 0, pid: 1, umask: 0o022)

    init(capacity: UInt64? = nil) throws {
        dir = try TemporaryDirectory()
        fixture = try Fixtures.makeThreeSessionImage(in: dir)
        fs = try Self.mount(fixture.image, staging: dir.url("staging"), capacity: capacity)
    }

    static func mount(_ image: String, staging: String, capacity: UInt64? = nil, session: Int? = nil) throws -> MountedFileSystem {
        try MountedFileSystem(options: MountOptions(drive: DriveAddress(parsing: image), staging: FilePath(staging),
                                                    session: session, capacity: capacity),
                              environment: [:])
    }

    /// The inode at a path ("/" the root), looked up as the kernel would.
    func inode(_ path: String) throws(Errno) -> InodeNumber {
        var inode = rootInode
        for component in path.split(separator: "/") {
            inode = try fs.lookup(inode, Array(component.utf8)).inode
        }
        return inode
    }

    func place(_ path: String) throws -> (InodeNumber, [UInt8]) {
        let parent = String(path[..<path.lastIndex(of: "/")!])
        return (try inode(parent.isEmpty ? "/" : parent), Array(path.split(separator: "/").last!.utf8))
    }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        let (parent, name) = try place(path)
        let (_, file) = try fs.create(in: parent, name, mode: 0o100644, flags: O_WRONLY, caller: Self.caller)
        _ = try bytes.withUnsafeBytes { try fs.write(file.handle, offset: 0, data: $0) }
        fs.release(file.handle)
    }

    func read(_ path: String) throws -> [UInt8] {
        let inode = try inode(path)
        let file = try fs.open(inode, flags: O_RDONLY, caller: Self.caller)
        defer { fs.release(file.handle) }
        return try Self.bytes(try fs.read(inode, handle: file.handle, offset: 0, size: 1 << 24))
    }

    /// What a read's segments hold.
    static func bytes(_ segments: [ReadSegment]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for segment in segments {
            switch segment {
            case .bytes(let data): bytes += data
            case .file(let descriptor, let offset, let length):
                var buffer = [UInt8](repeating: 0, count: length)
                let n = try buffer.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: Int64(offset), into: $0) }
                bytes += buffer[..<n]
            }
        }
        return bytes
    }

    func names(_ path: String) throws -> [String] {
        let inode = try inode(path)
        let directory = try fs.openDirectory(inode)
        defer { fs.releaseDirectory(directory.handle) }
        return try fs.readDirectory(inode, handle: directory.handle, from: 0, limit: .max, retaining: false).map { String(decoding: $0.name, as: UTF8.self) }
    }

    func status() throws -> StatusReport {
        try StatusReport.decode(json: try fs.extendedAttribute(try inode("/.isofuse/status"), "user.isofuse.status"))
    }

    /// Touches `.isofuse/commit` and waits for the commit to end.
    func commit() throws -> StatusReport {
        let before = try status().commit.sequence
        _ = try fs.setAttributes(of: try inode("/.isofuse/commit"), AttributeChanges(modificationTime: .now), caller: Self.caller)
        while true {
            let status = try status()
            if status.commit.sequence > before && status.commit.state != .running { return status }
            usleep(20_000)
        }
    }
}

@Suite struct MountedFileSystemTests {
    @Test func stagedChangesAreCommittedAsTheMergedView() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        try setup.write("/hello.txt", Array("hello, disc\n".utf8))
        _ = try setup.fs.makeDirectory(in: rootInode, Array("photos".utf8), mode: 0o755, caller: MountedSetup.caller)
        try setup.fs.rename(in: rootInode, Array("docs".utf8), to: try setup.inode("/photos"), Array("docs".utf8), mode: .replace)
        try setup.fs.unlink(in: rootInode, Array("empty.txt".utf8))
        #expect(try setup.status().staged.added >= 2)
        #expect(try setup.names("/").contains(".isofuse") == false)

        let result = try setup.commit()
        #expect(result.commit.state == .succeeded, "\(result.commit.message)")
        #expect(result.medium.sessions == 4)
        #expect(result.staged.added == 0 && result.staged.bytes == 0)
        #expect(try Xorriso.checkMD5(image: setup.fixture.image))
        let listing = try Xorriso.list(image: setup.fixture.image)
        #expect(listing["/hello.txt"]?.size == 12)
        #expect(listing["/photos/docs/readme.txt"] != nil && listing["/docs"] == nil && listing["/empty.txt"] == nil)
        // The mount shows the same, now from the new session.
        #expect(try setup.read("/hello.txt") == Array("hello, disc\n".utf8))
        #expect(try setup.fs.attributes(of: try setup.inode("/hello.txt")).isImmutable)
        #expect(try setup.names("/.isofuse/sessions") == [".", "..", "latest", "1", "2", "3", "4"])
        #expect(try setup.names("/.isofuse/sessions/3").contains("docs"))
    }

    @Test func stagedCopiesLeaveTheStagingDirectoryAfterADiscardOrACommitAndNewFilesKeepTheirs() throws {
        var setup = try MountedSetup()
        defer { setup.dir.remove() }
        let data = setup.dir.url("staging") + "/data"
        func dataFiles() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: data)) }

        // Files staged right after a discard, while its old files may still
        // be being removed, get data files of new names: never one of those.
        for index in 0..<2000 { try setup.write("/discarded-\(index)", Array("discarded \(index)".utf8)) }
        let discarded = try dataFiles()
        _ = try setup.fs.setAttributes(of: try setup.inode("/.isofuse/discard"), AttributeChanges(modificationTime: .now),
                                       caller: MountedSetup.caller)
        for index in 0..<200 { try setup.write("/new-\(index)", Array("new \(index)".utf8)) }
        setup.fs.shutdown()   // waits for the removal
        let kept = try dataFiles()
        #expect(kept.count == 200 && kept.isDisjoint(with: discarded))
        setup.fs = try MountedSetup.mount(setup.fixture.image, staging: setup.dir.url("staging"))
        for index in 0..<200 { #expect(try setup.read("/new-\(index)") == Array("new \(index)".utf8)) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try setup.inode("/discarded-0") }

        // After a commit they go once it reported success, on the mount's background queue.
        #expect(try setup.commit().commit.state == .succeeded)
        for _ in 0..<500 where try !dataFiles().isEmpty { usleep(20_000) }
        #expect(try dataFiles().isEmpty)
    }

    @Test func writesAfterATimeChangeReachTheJournalAtClose() throws {
        var setup = try MountedSetup()
        defer { setup.dir.remove() }
        let (parent, name) = try setup.place("/copied.bin")
        let (_, file) = try setup.fs.create(in: parent, name, mode: 0o100644, flags: O_WRONLY, caller: MountedSetup.caller)
        _ = try Array("first".utf8).withUnsafeBytes { try setup.fs.write(file.handle, offset: 0, data: $0) }
        // The time change journals the whole node; the write after it must still reach the journal.
        let earlier = Timestamp(seconds: 1_000_000_000)
        _ = try setup.fs.setAttributes(of: try setup.inode("/copied.bin"), AttributeChanges(modificationTime: .set(earlier)),
                                       caller: MountedSetup.caller)
        _ = try Array(" and second".utf8).withUnsafeBytes { try setup.fs.write(file.handle, offset: 5, data: $0) }
        setup.fs.release(file.handle)
        setup.fs.shutdown()

        setup.fs = try MountedSetup.mount(setup.fixture.image, staging: setup.dir.url("staging"))
        #expect(try setup.read("/copied.bin") == Array("first and second".utf8))
        let attributes = try setup.fs.attributes(of: try setup.inode("/copied.bin"))
        #expect(attributes.size == 16 && attributes.modificationTime.seconds > earlier.seconds)
    }

    @Test func stagedChangesSurviveARemountAndStayWithTheirMedium() throws {
        var setup = try MountedSetup()
        defer { setup.dir.remove() }
        try setup.write("/kept.txt", Array("kept".utf8))
        setup.fs.shutdown()
        setup.fs = try MountedSetup.mount(setup.fixture.image, staging: setup.dir.url("staging"))
        #expect(try setup.read("/kept.txt") == Array("kept".utf8))

        // Another medium with the default staging location does not see them.
        let other = try Fixtures.makeGenisoimageImage(in: setup.dir)
        let otherFS = try MountedFileSystem(options: MountOptions(drive: DriveAddress(parsing: other)),
                                            environment: ["XDG_STATE_HOME": setup.dir.url("state")])
        #expect(throws: Errno.noSuchFileOrDirectory) { try otherFS.lookup(rootInode, Array("kept.txt".utf8)) }
    }

    /// POSIX: an unlinked file stays readable and writable through handles open on it.
    @Test func anUnlinkedOpenFileStaysUsableThroughItsHandle() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        try setup.write("/scratch.txt", Array("first".utf8))
        let inode = try setup.inode("/scratch.txt")
        let file = try setup.fs.open(inode, flags: O_RDWR, caller: MountedSetup.caller)
        try setup.fs.unlink(in: rootInode, Array("scratch.txt".utf8))
        _ = try Array(" second".utf8).withUnsafeBytes { try setup.fs.write(file.handle, offset: 5, data: $0) }
        var bytes: [UInt8] = []
        for case .file(let descriptor, let offset, let length) in try setup.fs.read(inode, handle: file.handle, offset: 0, size: 100) {
            var buffer = [UInt8](repeating: 0, count: length)
            _ = try buffer.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: Int64(offset), into: $0) }
            bytes += buffer
        }
        #expect(bytes == Array("first second".utf8))
        let orphan = try setup.fs.attributes(of: inode)   // fstat(2) of the unlinked file
        #expect(orphan.size == 12 && orphan.nlink == 0)
        setup.fs.release(file.handle)
        #expect(throws: Errno.noSuchFileOrDirectory) { try setup.fs.lookup(rootInode, Array("scratch.txt".utf8)) }
        #expect(try setup.status().staged.added == 0)
    }

    /// After a commit the new session numbers its nodes afresh: a medium node
    /// removed before the commit must not lend its inode number, or an open
    /// handle, to whichever node now has its place (wrong files, wrong bytes).
    @Test func aNodeRemovedBeforeACommitNamesNoOtherNodeAfterIt() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        let removed = try setup.inode("/empty.txt")
        let replaced = try setup.inode("/docs/readme.txt")
        let readme = try setup.read("/docs/readme.txt")
        let open = try setup.fs.open(replaced, flags: O_RDONLY, caller: MountedSetup.caller)
        defer { setup.fs.release(open.handle) }
        try setup.fs.unlink(in: rootInode, Array("empty.txt".utf8))
        try setup.write("/new.txt", Array("replaces the readme".utf8))
        try setup.fs.rename(in: rootInode, Array("new.txt".utf8), to: try setup.inode("/docs"), Array("readme.txt".utf8), mode: .replace)
        #expect(try setup.commit().commit.state == .succeeded)

        #expect(throws: Errno.self) { try setup.fs.attributes(of: removed) }
        #expect(throws: Errno.self) { try setup.fs.attributes(of: replaced) }
        let paths = try hostTree(setup.fixture.source).keys.filter { $0 != "/empty.txt" } + ["/docs/readme.txt"]
        let numbers = try paths.map { path throws(Errno) in try setup.inode(path) }
        #expect(!numbers.contains(removed) && !numbers.contains(replaced))
        // The handle open on the replaced readme reads its bytes on (from session 3), not another file's.
        var bytes: [UInt8] = []
        for segment in try setup.fs.read(replaced, handle: open.handle, offset: 0, size: 1 << 20) {
            guard case .file(let descriptor, let offset, let length) = segment else { continue }
            var buffer = [UInt8](repeating: 0, count: length)
            _ = try buffer.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: Int64(offset), into: $0) }
            bytes += buffer
        }
        #expect(bytes == readme)
    }

    /// readdirplus puts each entry's node into the kernel's cache under its
    /// name: a directory read after a rename must not name the node that had
    /// the name when the directory was opened (`ls -lR` beside `mv` made a
    /// replaced file's name lead to a dropped node: ENOENT on a file that exists).
    @Test func aDirectoryReadAfterRenamesNamesTheNodesAsTheyAreNow() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        try setup.write("/docs/replacement.txt", Array("new readme".utf8))
        let directory = try setup.fs.openDirectory(try setup.inode("/docs"))
        defer { setup.fs.releaseDirectory(directory.handle) }
        let docs = try setup.inode("/docs")
        try setup.fs.rename(in: docs, Array("replacement.txt".utf8), to: docs, Array("readme.txt".utf8), mode: .replace)
        try setup.fs.rename(in: docs, Array("changing.txt".utf8), to: rootInode, Array("moved.txt".utf8), mode: .replace)

        let entries = try setup.fs.readDirectory(docs, handle: directory.handle, from: 0, limit: .max, retaining: false)
        let names = entries.map { String(decoding: $0.name, as: UTF8.self) }
        #expect(!names.contains("replacement.txt") && !names.contains("changing.txt"))
        #expect(entries.first { $0.name == Array("readme.txt".utf8) }?.attributes.inode == (try setup.inode("/docs/readme.txt")))
        #expect(entries.first { $0.name == Array("readme.txt".utf8) }?.attributes.size == 10)
        #expect(try setup.fs.readDirectory(docs, handle: directory.handle, from: 0, limit: 3, retaining: false).count == 3)
    }

    /// A file committed while a handle is open on it is a medium file after
    /// the commit: a write through that handle must stage it again, not go
    /// to the old staged copy as if the file had been unlinked (the bytes were lost).
    @Test func aWriteThroughAHandleOpenAcrossACommitLandsInTheFile() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        try setup.write("/log.txt", Array("first ".utf8))
        let file = try setup.fs.open(try setup.inode("/log.txt"), flags: O_WRONLY | O_APPEND, caller: MountedSetup.caller)
        #expect(try setup.commit().commit.state == .succeeded)
        _ = try Array("second".utf8).withUnsafeBytes { try setup.fs.write(file.handle, offset: 6, data: $0) }
        setup.fs.release(file.handle)
        #expect(try setup.read("/log.txt") == Array("first second".utf8))
        #expect(try setup.fs.attributes(of: try setup.inode("/log.txt")).size == 12)
        #expect(try setup.status().staged.changed == 1)
    }

    @Test func writesBeyondTheMediumsSpaceFailAtWriteTime() throws {
        let nwa = try Drive(DriveAddress(parsing: try MountedSetup().fixture.image)).medium().nextWritableBlock
        let setup = try MountedSetup(capacity: UInt64(nwa) * 2048 + 1_000_000)
        defer { setup.dir.remove() }
        let (_, file) = try setup.fs.create(in: rootInode, Array("big".utf8), mode: 0o100644, flags: O_WRONLY, caller: MountedSetup.caller)
        let chunk = [UInt8](repeating: 7, count: 256 * 1024)
        var written = 0
        let error = #expect(throws: Errno.self) {
            while true {
                written += try chunk.withUnsafeBytes { try setup.fs.write(file.handle, offset: UInt64(written), data: $0) }
            }
        }
        #expect(error == .noSpace)
        #expect(written > 0 && written < 1_000_000)
        setup.fs.release(file.handle)
    }

    /// A mount that takes no writes has the kernel open files and directories
    /// by itself (ENOSYS to open): reads and listings then come by inode, a
    /// listing in windows as the kernel's buffer takes them.
    @Test func aMountThatTakesNoWritesServesReadsAndListingsWithoutHandles() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        let view = try MountedSetup.mount(setup.fixture.image, staging: setup.dir.url("view-staging"), session: 3)
        func inode(_ path: String) throws(Errno) -> InodeNumber {
            var inode = rootInode
            for name in path.split(separator: "/") { inode = try view.lookup(inode, Array(name.utf8)).inode }
            return inode
        }
        func windows(_ inode: InodeNumber) throws -> [String] {
            var names: [String] = [], offset: UInt64 = 0
            while let entry = try view.readDirectory(inode, handle: unopenedHandle, from: offset, limit: 1, retaining: false).first {
                names.append(String(decoding: entry.name, as: UTF8.self))
                offset = entry.nextOffset
            }
            return names
        }
        let readme = try inode("/docs/readme.txt")
        #expect(throws: Errno.noFunction) { try view.open(readme, flags: O_RDONLY, caller: MountedSetup.caller) }
        #expect(throws: Errno.noFunction) { try view.openDirectory(try inode("/docs")) }
        #expect(throws: Errno.noFunction) { try view.flush(unopenedHandle) }

        let content = try MountedSetup.bytes(try view.read(readme, handle: unopenedHandle, offset: 0, size: 1 << 20))
        #expect(Data(content) == FileManager.default.contents(atPath: setup.fixture.source + "/docs/readme.txt"))
        for path in ["/", "/docs", "/.isofuse", "/.isofuse/sessions", "/.isofuse/sessions/1/docs"] {
            #expect(try windows(try inode(path)) == (try setup.names(path)), "\(path)")
        }
        #expect(throws: Errno.isDirectory) { try view.read(try inode("/docs"), handle: unopenedHandle, offset: 0, size: 10) }

        // The status file has the size of its text: the kernel reads it through its page cache.
        let status = try inode("/.isofuse/status")
        let text = try MountedSetup.bytes(try view.read(status, handle: unopenedHandle, offset: 0, size: 1 << 16))
        #expect(try view.attributes(of: status).size == UInt64(text.count))
        #expect(String(decoding: text, as: UTF8.self).contains("read-only"))
    }

    /// readdirplus hands the kernel directories' nodes always, files' only
    /// past the first 32 entries or for a second after a file was looked up
    /// (someone stats what they list); each node handed out counts a lookup.
    @Test func listingsCarryFilesNodesWhereFilesAreLookedUpOrTheDirectoryIsBig() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        _ = try setup.fs.makeDirectory(in: rootInode, Array("big".utf8), mode: 0o755, caller: MountedSetup.caller)
        for index in 0..<40 { try setup.write("/big/file \(index)", []) }
        func carried(_ path: String) throws -> [String: Bool] {
            let inode = try setup.inode(path)
            let directory = try setup.fs.openDirectory(inode)
            defer { setup.fs.releaseDirectory(directory.handle) }
            let entries = try setup.fs.readDirectory(inode, handle: directory.handle, from: 0, limit: .max, retaining: true)
            for entry in entries where entry.carriesNode { setup.fs.forget(entry.attributes.inode, lookups: 1) }
            return Dictionary(uniqueKeysWithValues: entries.map { (String(decoding: $0.name, as: UTF8.self), $0.carriesNode) })
        }
        let root = try carried("/")
        #expect(root["docs"] == true && root["."] == false && root[".."] == false)
        #expect(root["random.bin"] == false && root["script.sh"] == false)
        let big = try carried("/big")
        #expect(big.filter(\.value).count == 40 - 32, "\(big)")

        _ = try setup.fs.lookup(rootInode, Array("random.bin".utf8))
        let afterLookup = try carried("/")
        #expect(afterLookup["random.bin"] == true && afterLookup["script.sh"] == true && afterLookup["."] == false)
        Thread.sleep(forTimeInterval: 1.1)
        #expect(try carried("/")["script.sh"] == false)
    }

    @Test func sessionViewsAndReadOnlyMountsRefuseWrites() throws {
        let setup = try MountedSetup()
        defer { setup.dir.remove() }
        let view = try MountedSetup.mount(setup.fixture.image, staging: setup.dir.url("view-staging"), session: 1)
        #expect(throws: Errno.readOnlyFileSystem) {
            _ = try view.makeDirectory(in: rootInode, Array("x".utf8), mode: 0o755, caller: MountedSetup.caller)
        }
        let commit = try view.lookup(try view.lookup(rootInode, Array(".isofuse".utf8)).inode, Array("commit".utf8))
        #expect(throws: Errno.readOnlyFileSystem) {
            _ = try view.setAttributes(of: commit.inode, AttributeChanges(modificationTime: .now), caller: MountedSetup.caller)
        }
        // Session 1 still has what later sessions removed.
        #expect(try view.lookup(rootInode, Array("docs".utf8)).mode & UInt32(S_IFDIR) != 0)
    }
}
