// Faults on a real mount: the medium swapped or written behind the mount's
// back, unreadable sectors, a full host disk under the image, a full staging
// disk. In every case the mount stays up, nothing staged is lost and the
// earlier sessions pass xorriso's MD5 check.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable, "needs /dev/fuse"))
struct FaultTests {
    // MARK: Media swap

    @Test func aReplacedImageServesNoDiscDataAndTakesNoCommit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (a, b) = try Self.twoMedia(in: dir)
        let mount = try IsofuseMount(a, in: dir, options: ["--capacity", "100M"])
        defer { mount.cleanUp() }
        try Fixtures.write("staged on A\n", to: mount.path("staged.txt"))
        let original = dir.url("A-original.iso")
        try Self.sh(["cp", a, original])

        try Self.sh(["cp", b, a + ".new"])
        try Self.sh(["mv", a + ".new", a])   // another disc in the drive

        let read = try Self.sh(["cat", mount.path("a.txt")])
        #expect(read.status != 0 && read.stderr.contains("No medium found"), "\(read)")
        #expect(try String(contentsOfFile: mount.path("staged.txt"), encoding: .utf8) == "staged on A\n")
        #expect(try mount.status().notes.contains { $0.contains("no longer holds the mounted medium") })
        let touch = try mount.touchCommit()
        #expect(touch.status != 0 && touch.stderr.contains("Read-only file system"))
        let commit = try mount.commit()
        #expect(commit.status != 0)
        #expect(try Xorriso.toc(image: a).count == 1, "nothing was written onto the other medium")
        #expect(try Xorriso.checkMD5(image: a))
        try #require(try mount.unmount().status == 0)

        // Medium A back: its staged change is there and commits onto it.
        try Self.sh(["cp", original, a])
        let again = try mount.remount()
        defer { again.cleanUp() }
        #expect(FileManager.default.fileExists(atPath: again.path("staged.txt")))
        #expect(try again.commit().status == 0)
        #expect(try Xorriso.toc(image: a).count == 2)
        #expect(try Xorriso.checkMD5(image: a))
    }

    @Test func aCommitChecksTheMediumRightBeforeWriting() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (a, b) = try Self.twoMedia(in: dir)
        let mount = try IsofuseMount(a, in: dir, options: ["--capacity", "100M"])
        defer { mount.cleanUp() }
        try Fixtures.write("staged on A\n", to: mount.path("staged.txt"))
        try Self.sh(["cp", b, a])   // overwritten in place; nothing reads it before the commit

        let commit = try mount.commit()
        #expect(commit.status != 0)
        #expect(commit.stderr.contains("holds another medium than the one the staged changes belong to"), "\(commit.stderr)")
        let status = try mount.status()
        #expect(status.commitState == "failed" && status.added == 1)
        #expect(try Xorriso.toc(image: a).count == 1)
        #expect(try Xorriso.list(image: a)["/staged.txt"] == nil)
    }

    @Test func aSessionAppendedByAnotherProgramKeepsReadsButRefusesCommits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (a, _) = try Self.twoMedia(in: dir)
        let mount = try IsofuseMount(a, in: dir, options: ["--capacity", "100M"])
        defer { mount.cleanUp() }
        try Fixtures.write("staged\n", to: mount.path("staged.txt"))
        try Fixtures.write("by xorriso\n", to: dir.url("other/x.txt"))
        try Self.xorrisoAdd(dir.url("other"), as: "/other", to: a)

        #expect(try String(contentsOfFile: mount.path("a.txt"), encoding: .utf8) == "medium A\n")
        #expect(try mount.status().notes.contains { $0.contains("was written by another program") })
        #expect(try mount.touchCommit().status != 0)
        #expect(try Xorriso.toc(image: a).count == 2)
        #expect(try Xorriso.checkMD5(image: a))
    }

    // MARK: Unreadable sectors

    @Test func unreadableSectorsFailOnlyTheReadsThatTouchThem() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = dir.url("source")
        try Fixtures.writeRandomFile(source + "/damaged.bin", count: 300_000, seed: 1)
        try Fixtures.writeRandomFile(source + "/sound.bin", count: 300_000, seed: 2)
        let image = dir.url("disc.iso")
        try Self.xorrisoAdd(source, to: image)
        let (start, blocks) = try Self.extent(of: "/damaged.bin", in: image)
        let faults = ["ISOFUSE_TEST_UNREADABLE_BLOCKS": "\(start + blocks / 2)-\(start + blocks / 2 + 1)"]

        let mount = try IsofuseMount(image, in: dir, options: ["--capacity", "100M"], environment: faults)
        defer { mount.cleanUp() }
        let damaged = try Self.sh(["cat", mount.path("damaged.bin")])
        #expect(damaged.status != 0 && damaged.stderr.contains("Input/output error"), "\(damaged.stderr)")
        let head = try Self.sh(["dd", "if=" + mount.path("damaged.bin"), "of=/dev/null", "bs=4096", "count=4", "iflag=direct"])
        #expect(head.status == 0, "reads before the bad blocks work: \(head.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: mount.path("sound.bin"), andPath: source + "/sound.bin"))
        // A change needs the file's bytes, so it fails the same way; nothing gets staged.
        let append = try Self.sh(["sh", "-c", "echo more >> '\(mount.path("damaged.bin"))'"])
        #expect(append.status != 0)

        // `isofuse check` names the file; a commit that needs no damaged data works.
        let check = try IsofuseMount.run(["check", image], environment: faults)
        #expect(check.status == 1 && (check.stdout + check.stderr).contains("damaged.bin"), "\(check)")
        try Fixtures.write("new\n", to: mount.path("new.txt"))
        let commit = try mount.commit()
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(IsofuseMount.isAlive(mount.daemon))
        #expect(try mount.unmount().status == 0)
        #expect(try Xorriso.checkMD5(image: image))
        #expect(try Xorriso.list(image: image)["/new.txt"] != nil)
    }

    // MARK: Full disks

    @Test func aFullHostDiskFailsTheCommitWithItsReasonAndLosesNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let disk = try Tmpfs(at: dir.url("disk"), size: "6M")
        defer { disk.unmount() }
        try Fixtures.write("session one\n", to: dir.url("source/one.txt"))
        let image = disk.path + "/disc.iso"
        try Self.xorrisoAdd(dir.url("source"), to: image)

        let mount = try IsofuseMount(image, in: dir, options: ["--capacity", "100M"])
        defer { mount.cleanUp() }
        try Fixtures.writeRandomFile(mount.path("big.bin"), count: 8_000_000, seed: 3)
        let commit = try mount.commit()
        #expect(commit.status != 0 && commit.stderr.contains("No space left on device"), "\(commit.stderr)")
        let status = try mount.status()
        #expect(status.commitState == "failed" && status.commitMessage.contains("No space left on device"))
        #expect(status.added == 1 && status.sessions == 1)
        #expect(try Xorriso.checkMD5(image: image))

        try Self.sh(["mount", "-o", "remount,size=24M", disk.path])
        let retry = try mount.commit()
        #expect(retry.status == 0, "\(retry.stderr)")
        try #require(try mount.unmount().status == 0)
        #expect(try Xorriso.toc(image: image).count == 2)
        #expect(try Xorriso.checkMD5(image: image))
    }

    @Test func aFullStagingDiskRefusesNewChangesAndKeepsTheStagedOnes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (image, _) = try Self.twoMedia(in: dir)
        let disk = try Tmpfs(at: dir.url("staging"), size: "2M")
        defer { disk.unmount() }
        let mount = try IsofuseMount(image, in: dir, staging: .at(disk.path), options: ["--capacity", "100M"])
        defer { mount.cleanUp() }

        try Fixtures.writeRandomFile(dir.url("kept.bin"), count: 600_000, seed: 4)
        try Self.sh(["cp", dir.url("kept.bin"), mount.path("kept.bin")])
        let tooMuch = try Self.sh(["sh", "-c", "head -c 2000000 /dev/zero > '\(mount.path("too-much.bin"))'"])
        #expect(tooMuch.status != 0 && tooMuch.stderr.contains("No space left on device"), "\(tooMuch.stderr)")
        // Changes go on being journaled (or refused with ENOSPC) while the disk is full.
        var made: [String] = []
        for i in 0..<200 {
            let name = "d\(i)"
            let mkdir = try Self.sh(["mkdir", mount.path(name)])
            if mkdir.status == 0 { made.append(name) } else { #expect(mkdir.stderr.contains("No space left on device")) }
        }
        try #require(try mount.unmount().status == 0)

        let again = try mount.remount()
        defer { again.cleanUp() }
        #expect(FileManager.default.contentsEqual(atPath: again.path("kept.bin"), andPath: dir.url("kept.bin")))
        for name in made { #expect(FileManager.default.fileExists(atPath: again.path(name)), "\(name) was lost") }
        try Self.sh(["rm", "-f", again.path("too-much.bin")])
        let commit = try again.commit()
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(try Xorriso.checkMD5(image: image))
        #expect(try Xorriso.list(image: image)["/kept.bin"] != nil)
    }

    // MARK: Helpers

    /// Two one-session images with different content: A holds /a.txt, B /b.txt.
    static func twoMedia(in dir: TemporaryDirectory) throws -> (a: String, b: String) {
        try Fixtures.write("medium A\n", to: dir.url("a-source/a.txt"))
        try Fixtures.writeRandomFile(dir.url("b-source/b.bin"), count: 200_000, seed: 9)
        let a = dir.url("A.iso"), b = dir.url("B.iso")
        try xorrisoAdd(dir.url("a-source"), to: a, volumeID: "MEDIUM_A")
        try xorrisoAdd(dir.url("b-source"), to: b, volumeID: "MEDIUM_B")
        return (a, b)
    }

    /// `xorriso -md5 on -dev stdio:IMAGE -map SOURCE TARGET -commit`: a new session, as another program writes it.
    static func xorrisoAdd(_ source: String, as target: String = "/", to image: String, volumeID: String? = nil) throws {
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-dev", "stdio:" + image]
                        + (volumeID.map { ["-volid", $0] } ?? []) + ["-map", source, target, "-commit"],
                        environment: IsofuseMount.cLocale)
    }

    /// Start block and block count of a file's data, as xorriso reports them.
    static func extent(of path: String, in image: String) throws -> (start: Int, blocks: Int) {
        let report = try Xorriso.query(image: image, ["-find", path, "-exec", "report_lba", "--"])
        // "File data lba:  0 ,      39 ,      147 ,   300000 , '/damaged.bin'"
        guard let line = report.split(separator: "\n").first(where: { $0.hasPrefix("File data lba:") }) else {
            throw Shell.Failure(description: "no extent of \(path) in: \(report)")
        }
        let fields = line.dropFirst("File data lba:".count).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count >= 3, let start = Int(fields[1]), let blocks = Int(fields[2]) else {
            throw Shell.Failure(description: "cannot parse \(line)")
        }
        return (start, blocks)
    }

    @discardableResult
    static func sh(_ arguments: [String]) throws -> Shell.Result {
        try Shell.run(arguments, environment: IsofuseMount.cLocale)
    }
}

/// A small tmpfs, to fill a disk on purpose.
struct Tmpfs {
    let path: String

    init(at path: String, size: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Shell.check(["mount", "-t", "tmpfs", "-o", "size=\(size),mode=0755", "tmpfs", path])
    }

    func unmount() {
        _ = try? Shell.run(["umount", "-l", path])
    }
}
