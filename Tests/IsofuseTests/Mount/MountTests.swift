// isofuse as a user runs it: `isofuse mount`, real files copied in with the
// usual tools, `isofuse commit` or `touch .isofuse/commit`, unmount, remount,
// a killed daemon. xorriso judges what lands in the image.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable, "needs /dev/fuse"))
struct MountTests {
    // MARK: 1. A first session

    @Test func aTreeCopiedOntoABlankImageBecomesItsFirstSession() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = dir.url("source")
        try Self.makeVariedTree(at: source)
        let image = dir.url("blank.iso")   // does not exist yet: a blank medium

        let mount = try IsofuseMount(image, in: dir, options: ["--capacity", "1G"])
        defer { mount.cleanUp() }
        let blank = try mount.status()
        #expect(blank.mediumStatus == "blank" && blank.sessions == 0)

        let copy = try Self.sh(["cp", "-a", source + "/.", mount.mountpoint])
        #expect(copy.status == 0 && copy.stderr.isEmpty, "cp -a: \(copy.stderr)")
        #expect(try hostTree(mount.mountpoint) == hostTree(source), "the staged view")

        let commit = try mount.commit()
        try #require(commit.status == 0, "isofuse commit: \(commit.stderr)")

        #expect(try Xorriso.toc(image: image).count == 1)
        #expect(try Xorriso.checkMD5(image: image))
        let listing = try Xorriso.list(image: image)
        #expect(listing.filter { $0.key != "/" }.mapValues(EntryShape.init) == (try hostTree(source)))
        #expect(try Xorriso.xattr(image: image, path: "/docs/readme.txt", name: "user.note") == "hello")

        // Extracted by xorriso: the same bytes everywhere, the hard links still one file.
        let extracted = dir.url("extracted")
        try Xorriso.query(image: image, options: ["-osirrox", "on", "-hardlinks", "on"], ["-extract", "/", extracted])
        #expect(FileManager.default.contentsEqual(atPath: extracted + "/big.bin", andPath: source + "/big.bin"))
        let diff = try Self.sh(["diff", "-r", "--no-dereference", source, extracted])
        #expect(diff.status == 0, "\(diff.stdout)\(diff.stderr)")
        #expect(try Self.inode(extracted + "/hardlink-a.txt") == Self.inode(extracted + "/docs/hardlink-b.txt"))

        // The mount now shows the session, nothing staged.
        let after = try mount.status()
        #expect(after.sessions == 1 && after.mediumStatus == "appendable")
        #expect(after.added == 0 && after.changed == 0 && after.removed == 0)
        #expect(try hostTree(mount.mountpoint) == hostTree(source), "the mount after the commit")
        #expect(try Self.inode(mount.path("hardlink-a.txt")) == Self.inode(mount.path("docs/hardlink-b.txt")))
        #expect(try Self.sh(["getfattr", "--only-values", "-n", "user.note", mount.path("docs/readme.txt")]).stdout == "hello")
    }

    // MARK: 2. A second round of changes

    @Test func aSecondRoundOfChangesBecomesSessionTwo() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (mount, image, model) = try Self.firstRound(in: dir)
        defer { mount.cleanUp() }
        let sessionOne = try hostTree(model)

        // Each change is made on the mount and on the host model of what session 2 must hold.
        func both(_ change: (String) throws -> Void) throws {
            try change(mount.mountpoint)
            try change(model)
        }
        try both { try Fixtures.write("added in round two\n", to: $0 + "/added/new file.txt") }
        try both { try Fixtures.write("staged before the rename\n", to: $0 + "/docs/staged.txt") }
        try both { root in
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/docs/nested/deeper/leaf.txt"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("appended in round two\n".utf8))
            try handle.close()
        }
        try both { try Self.shCheck(["rm", $0 + "/empty.txt"]) }
        try both { try Self.shCheck(["mv", $0 + "/docs", $0 + "/papers"]) }
        try both { try Self.shCheck(["chmod", "0640", $0 + "/dir with spaces/Äpfel € naïve.txt"]) }
        try both { try Self.shCheck(["setfattr", "-n", "user.round", "-v", "two", $0 + "/日本語.txt"]) }

        let staged = try mount.status()
        #expect(staged.added >= 2 && staged.changed >= 1 && staged.removed >= 1, "\(staged)")
        #expect(try hostTree(mount.mountpoint) == hostTree(model), "the staged view")

        let commit = try mount.commit()
        try #require(commit.status == 0, "isofuse commit: \(commit.stderr)")

        #expect(try Xorriso.toc(image: image).count == 2)
        #expect(try Xorriso.checkMD5(image: image))
        let expected = try hostTree(model)
        #expect(try hostTree(mount.mountpoint) == expected, "the mount")
        #expect(try Xorriso.list(image: image).filter { $0.key != "/" }.mapValues(EntryShape.init) == expected, "session 2")
        #expect(try hostTree(mount.path(".isofuse/sessions/1")) == sessionOne, ".isofuse/sessions/1")
        #expect(try Xorriso.list(image: image, session: 1).filter { $0.key != "/" }.mapValues(EntryShape.init) == sessionOne)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: mount.path(".isofuse/sessions/latest")) == "2")

        let leaf = Data("deep down\nappended in round two\n".utf8)
        #expect(FileManager.default.contents(atPath: mount.path("papers/nested/deeper/leaf.txt")) == leaf)
        // The newest session's view reads too (it gave EBADF).
        #expect(FileManager.default.contents(atPath: mount.path(".isofuse/sessions/2/papers/nested/deeper/leaf.txt")) == leaf)
        #expect(FileManager.default.contents(atPath: mount.path(".isofuse/sessions/latest/papers/nested/deeper/leaf.txt")) == leaf)
        try Xorriso.extract(image: image, path: "/papers/nested/deeper/leaf.txt", to: dir.url("leaf.txt"))
        #expect(FileManager.default.contents(atPath: dir.url("leaf.txt")) == leaf)
        #expect(try Xorriso.xattr(image: image, path: "/日本語.txt", name: "user.round") == "two")
        #expect(try Xorriso.xattr(image: image, path: "/papers/readme.txt", name: "user.note") == "hello")

        let after = try mount.status()
        #expect(after.sessions == 2 && after.added == 0 && after.changed == 0 && after.removed == 0, "\(after)")
    }

    // MARK: 3. Staged changes persist, and stay with their medium

    @Test func stagedChangesSurviveUnmountAndAKilledDaemonButNotAnotherMedium() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeThreeSessionImage(in: dir).image
        let other = try Fixtures.makeGenisoimageImage(in: dir)
        let state = dir.url("state")
        let environment = ["XDG_STATE_HOME": state]
        let kept = dir.url("kept.bin")
        try Fixtures.writeRandomFile(kept, count: 200_000, seed: 31)

        /// The staged file is there with its bytes, the staged removal still removed.
        func expectStaged(_ mount: IsofuseMount, _ when: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(FileManager.default.contentsEqual(atPath: mount.path("kept.bin"), andPath: kept), "\(when)",
                    sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: mount.path("docs/readme.txt")), "\(when)",
                    sourceLocation: sourceLocation)
            let status = try mount.status()
            #expect(status.added == 1 && status.removed == 1 && status.sessions == 3, "\(when): \(status)",
                    sourceLocation: sourceLocation)
        }

        let first = try IsofuseMount(image, in: dir, staging: .defaultLocation, environment: environment)
        defer { first.cleanUp() }
        try Self.shCheck(["cp", kept, first.path("kept.bin")])
        try Self.shCheck(["rm", first.path("docs/readme.txt")])
        try expectStaged(first, "before unmounting")
        #expect(try !FileManager.default.contentsOfDirectory(atPath: state).isEmpty, "the default staging is under XDG_STATE_HOME")
        let unmount = try first.unmount()
        #expect(unmount.status == 0 && !IsofuseMount.isMounted(first.mountpoint), "isofuse unmount: \(unmount.stderr)")

        let second = try first.remount()
        defer { second.cleanUp() }
        try expectStaged(second, "after unmount and remount")
        try second.killDaemon()
        #expect(!IsofuseMount.isMounted(second.mountpoint))

        let third = try second.remount()
        defer { third.cleanUp() }
        try expectStaged(third, "after kill -9 and remount")
        #expect(try third.unmount().status == 0)

        // Another medium, the same default staging location: none of it shows.
        let another = try IsofuseMount(other, in: dir, staging: .defaultLocation, environment: environment)
        defer { another.cleanUp() }
        #expect(!FileManager.default.fileExists(atPath: another.path("kept.bin")))
        #expect(FileManager.default.contents(atPath: another.path("plain.txt")) == Data("made by genisoimage\n".utf8))
        let status = try another.status()
        #expect(status.added == 0 && status.changed == 0 && status.removed == 0, "\(status)")
        #expect(try another.unmount().status == 0)

        // And the first medium still has its changes.
        let fourth = try first.remount()
        defer { fourth.cleanUp() }
        try expectStaged(fourth, "after mounting another medium")
    }

    // MARK: 4. Writes during a commit

    /// Rock Ridge names are bytes: names and symlink targets that are not
    /// UTF-8 (Latin-1 from old discs, or given through the mount) are removed,
    /// moved, added and written back byte for byte (a commit failed with
    /// "does not exist in the newest session" when a path was decoded as UTF-8).
    @Test func namesThatAreNotUTF8AreCommittedByteForByte() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = dir.url("source"), expected = dir.url("expected"), image = dir.url("latin1.iso")
        // é, ü, ï and ÿ in Latin-1: none of them UTF-8 on its own.
        let latin1 = #"e=$(printf '\351') u=$(printf '\374') i=$(printf '\357') y=$(printf '\377'); "#
        try Self.shCheck(["sh", "-c", latin1 + """
            mkdir -p "$1/d$u" && printf x > "$1/caf$e.txt" && printf y > "$1/d$u/na${i}ve" \
            && printf z > "$1/keep.txt" && ln -s "caf$e.txt" "$1/link"
            """, "sh", source])
        try Self.shCheck(["xorriso", "-no_rc", "-md5", "on", "-outdev", "stdio:" + image, "-map", source, "/", "-commit"])
        let changes = latin1 + """
            rm "$1/caf$e.txt" && mv "$1/d$u/na${i}ve" "$1/moved$e" && printf n > "$1/new$y.txt" \
            && ln -s "tar${e}get" "$1/d$u/link$y"
            """
        try Self.shCheck(["cp", "-a", source, expected])
        try Self.shCheck(["sh", "-c", changes, "sh", expected])

        let mount = try IsofuseMount(image, in: dir)
        defer { mount.cleanUp() }
        try Self.shCheck(["sh", "-c", changes, "sh", mount.mountpoint])
        let commit = try mount.commit()
        #expect(commit.status == 0, "\(commit.stderr)")
        try #require(try mount.unmount().status == 0)

        // Names, types and link targets, as octal escapes (a lossy decoding would hide a wrong byte).
        func shape(_ root: String) throws -> String {
            try Shell.check(["sh", "-c", "cd \"$1\" && find . -printf '%p %y %l\\n' | LC_ALL=C sort | od -An -c", "sh", root],
                            environment: IsofuseMount.cLocale).stdout
        }
        let extracted = dir.url("extracted")
        try Xorriso.extract(image: image, path: "/", to: extracted)
        #expect(try shape(extracted) == (try shape(expected)))
        let remounted = try mount.remount()
        defer { remounted.cleanUp() }
        #expect(try shape(remounted.mountpoint) == (try shape(expected)))
        #expect(try Xorriso.checkMD5(image: image))
    }

    @Test func aFileWrittenDuringACommitLandsInTheNextSession() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeThreeSessionImage(in: dir).image
        let mount = try IsofuseMount(image, in: dir)
        defer { mount.cleanUp() }
        // Big enough that the commit is still running when the small file is written.
        try Self.shCheck(["cp", try Self.makeBigFile(in: dir), mount.path("big.bin")])

        let before = try mount.status().commitSequence
        let touch = try mount.touchCommit()
        try #require(touch.status == 0, "touch .isofuse/commit: \(touch.stderr)")
        try Fixtures.write("written during the commit\n", to: mount.path("small.txt"))
        let during = try mount.status()
        #expect(during.commitState == "running", "the commit had ended before small.txt was written: \(during)")

        let done = try mount.waitForCommit(after: before)
        try #require(done.commitState == "succeeded", "\(done)")
        #expect(done.sessions == 4 && done.added == 1, "small.txt is still staged: \(done)")
        let four = try Xorriso.list(image: image)
        #expect(four["/big.bin"]?.size == UInt64(Self.bigSize))
        #expect(four["/small.txt"] == nil)
        #expect(FileManager.default.contents(atPath: mount.path("small.txt")) == Data("written during the commit\n".utf8))

        let commit = try mount.commit()
        try #require(commit.status == 0, "isofuse commit: \(commit.stderr)")
        let toc = try Xorriso.toc(image: image)
        #expect(toc.count == 5)
        #expect(try Xorriso.list(image: image, session: 4)["/small.txt"] == nil)
        #expect(try Xorriso.list(image: image)["/small.txt"]?.size == 26)
        #expect(try Xorriso.checkMD5(image: image))
    }

    // MARK: 5. A daemon killed during a commit

    /// When the daemon is killed: early (0.3 s in, while it writes: the session never
    /// lands), or once the status says "activating" (the session lands, but the daemon
    /// dies before it has switched to it: the next mount must finish that).
    enum KillMoment: String, Sendable, CaseIterable {
        case afterAFractionOfASecond, whileActivating
    }

    @Test(arguments: KillMoment.allCases)
    func killingTheDaemonDuringACommitLosesNothing(_ moment: KillMoment) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeThreeSessionImage(in: dir).image
        let big = try Self.makeBigFile(in: dir)

        let mount = try IsofuseMount(image, in: dir)
        defer { mount.cleanUp() }
        try Self.shCheck(["cp", big, mount.path("big.bin")])
        let before = try mount.status().commitSequence
        let touch = try mount.touchCommit()
        try #require(touch.status == 0, "touch .isofuse/commit: \(touch.stderr)")
        switch moment {
        case .afterAFractionOfASecond:
            Thread.sleep(forTimeInterval: 0.3)
        case .whileActivating:
            let deadline = Date(timeIntervalSinceNow: 60)
            while Date() < deadline {
                let status = try mount.status()
                if status.commitPhase == "activating" || (status.commitSequence > before && status.commitState != "running") {
                    break
                }
            }
        }
        try mount.killDaemon()

        // Every earlier session is intact, and the newest is whole.
        let sessions = try Xorriso.toc(image: image).count
        #expect(sessions == 3 || sessions == 4)
        #expect(try Xorriso.checkMD5(image: image))
        for session in 1...3 {
            #expect(try Xorriso.checkMD5(image: image, session: session), "session \(session)")
        }

        let again = try mount.remount()
        defer { again.cleanUp() }
        let status = try again.status()
        #expect(status.sessions == sessions)
        #expect(Self.sameBytes(again.path("big.bin"), big))
        if sessions == 3 {
            // The commit never landed: everything is still staged, and it can be burned now.
            #expect(status.added == 1, "\(status)")
            let commit = try again.commit()
            #expect(commit.status == 0, "isofuse commit after the kill: \(commit.stderr)")
            #expect(try Xorriso.toc(image: image).count == 4)
            #expect(try Xorriso.checkMD5(image: image))
        } else {
            // It landed: the file is in the newest session and no longer staged.
            #expect(status.added == 0 && status.changed == 0 && status.removed == 0, "\(status)")
            #expect(try Xorriso.list(image: image)["/big.bin"]?.size == UInt64(Self.bigSize))
        }
        try Xorriso.extract(image: image, path: "/big.bin", to: dir.url("extracted.bin"))
        #expect(Self.sameBytes(dir.url("extracted.bin"), big))
    }

    // MARK: 6. Errors

    @Test func writingMoreThanTheMediumTakesFailsWithENOSPC() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeThreeSessionImage(in: dir).image
        // A medium with 1 MB free after its sessions (the next one starts at the next writable block).
        let toc = try Shell.check([CommandLineTests.isofuse, "toc", image, "--json"]).stdout
        let medium = try #require(try JSONSerialization.jsonObject(with: Data(toc.utf8)) as? [String: Any])["medium"] as? [String: Any]
        let end = try #require(medium?["next_writable_block"] as? Int) * 2048
        let mount = try IsofuseMount(image, in: dir, options: ["--capacity", String(end + 1_000_000)])
        defer { mount.cleanUp() }

        // df tells what is left: less than the 1 MB above the image.
        let df = try Self.sh(["stat", "-f", "-c", "%a %S", mount.mountpoint]).stdout
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(df.count == 2 && df[0] * df[1] < 1_000_000, "stat -f: \(df)")

        let dd = try Self.sh(["dd", "if=/dev/zero", "of=" + mount.path("big.bin"), "bs=1M", "count=5"])
        #expect(dd.status != 0)
        #expect(dd.stderr.contains("No space left on device"), "dd: \(dd.stderr)")
        let status = try mount.status()
        #expect(status.stagedBytes <= 1_000_000, "\(status)")
        #expect(IsofuseMount.isMounted(mount.mountpoint))
    }

    @Test func sessionViewsAndReadOnlyMountsRefuseWritesWithEROFS() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Fixtures.makeThreeSessionImage(in: dir).image
        for options in [["--session", "1"], ["--read-only"]] {
            let mount = try IsofuseMount(image, in: dir, options: options)
            defer { mount.cleanUp() }
            let mkdir = try Self.sh(["mkdir", mount.path("new")])
            #expect(mkdir.status != 0 && mkdir.stderr.contains("Read-only file system"), "\(options) mkdir: \(mkdir.stderr)")
            let touch = try mount.touchCommit()
            #expect(touch.status != 0 && touch.stderr.contains("Read-only file system"), "\(options) touch: \(touch.stderr)")
            // What the view shows: session 1 still has what session 2 removed.
            let showsSessionOne = FileManager.default.fileExists(atPath: mount.path("docs/obsolete.txt"))
            #expect(showsSessionOne == (options[0] == "--session"), "\(options)")
            #expect(try mount.unmount().status == 0)
        }
        #expect(try Xorriso.toc(image: image).count == 3)
    }

    @Test func mountingGarbageFailsWithOneLineAndMountsNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let garbage = dir.url("garbage.iso")
        try Fixtures.writeRandomFile(garbage, count: 300_000, seed: 61)
        let mountpoint = try IsofuseMount.newDirectory(in: dir, named: "mnt")
        let result = try IsofuseMount.mount(garbage, at: mountpoint, ["--staging", dir.url("staging")])
        defer { IsofuseMount.detach(mountpoint) }
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1, "stderr: \(result.stderr)")
        #expect(try Self.sh(["mountpoint", "-q", mountpoint]).status != 0)
        #expect(!IsofuseMount.isMounted(mountpoint))
    }

    // MARK: Helpers

    /// The size of the file that makes a commit take a moment.
    static let bigSize = 300 * 1024 * 1024

    /// dir/big.bin: bigSize random bytes. Made on the host and copied in with cp (large
    /// writes): `head -c N /dev/urandom > MNT/file` writes 8 KiB at a time, which takes
    /// isofuse several seconds for 300 MB.
    static func makeBigFile(in dir: TemporaryDirectory) throws -> String {
        let big = dir.url("big.bin")
        try shCheck(["sh", "-c", "head -c \(bigSize) /dev/urandom > \"$1\"", "sh", big])
        return big
    }

    /// Runs a program with LANG=C.
    static func sh(_ arguments: [String]) throws -> Shell.Result {
        try Shell.run(arguments, environment: IsofuseMount.cLocale)
    }

    /// Runs a program with LANG=C; throws unless it exits 0.
    static func shCheck(_ arguments: [String]) throws {
        try Shell.check(arguments, environment: IsofuseMount.cLocale)
    }

    static func inode(_ path: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
    }

    /// cmp -s: for files too big to read into memory twice.
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        (try? sh(["cmp", "-s", a, b]).status) == 0
    }

    /// A tree with nested and empty directories, a symlink, a hard link pair, blanks
    /// and non-ASCII names, an empty file, a 10 MiB random file, modes 0600 and 0755,
    /// another owner and a user xattr.
    static func makeVariedTree(at source: String) throws {
        try Fixtures.write("Hello from the host.\n", to: source + "/docs/readme.txt")
        try shCheck(["setfattr", "-n", "user.note", "-v", "hello", source + "/docs/readme.txt"])
        try Fixtures.write("deep down\n", to: source + "/docs/nested/deeper/leaf.txt")
        try Fixtures.makeDirectory(source + "/docs/nested/empty")
        try Fixtures.makeDirectory(source + "/empty dir")
        try Fixtures.write("one file, two names\n", to: source + "/hardlink-a.txt")
        try FileManager.default.linkItem(atPath: source + "/hardlink-a.txt", toPath: source + "/docs/hardlink-b.txt")
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "docs/readme.txt")
        try Fixtures.write("", to: source + "/empty.txt")
        try Fixtures.write("apples\n", to: source + "/dir with spaces/Äpfel € naïve.txt")
        try Fixtures.write("nihongo\n", to: source + "/日本語.txt")
        try Fixtures.writeRandomFile(source + "/big.bin", count: 10 * 1024 * 1024, seed: 21)
        try Fixtures.write("secret\n", to: source + "/private.txt", mode: 0o600)
        try Fixtures.write("#!/bin/sh\necho hello\n", to: source + "/script.sh", mode: 0o755)
        try Fixtures.write("someone else's\n", to: source + "/owned.txt")
        try FileManager.default.setAttributes([.ownerAccountID: 1000, .groupOwnerAccountID: 100],
                                              ofItemAtPath: source + "/owned.txt")
    }

    /// Test 1's first round, without its checks: the varied tree copied onto a blank
    /// image and committed. Returns the mount (the caller cleans it up), the image
    /// and the source tree, which equals session 1.
    static func firstRound(in dir: TemporaryDirectory) throws -> (IsofuseMount, String, String) {
        let source = dir.url("source")
        try makeVariedTree(at: source)
        let image = dir.url("blank.iso")
        let mount = try IsofuseMount(image, in: dir, options: ["--capacity", "1G"])
        do {
            try shCheck(["cp", "-a", source + "/.", mount.mountpoint])
            let commit = try mount.commit()
            try #require(commit.status == 0, "isofuse commit: \(commit.stderr)")
            try #require(try Xorriso.toc(image: image).count == 1)
        } catch {
            mount.cleanUp()
            throw error
        }
        return (mount, image, source)
    }
}
