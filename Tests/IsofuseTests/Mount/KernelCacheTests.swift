// What the kernel may keep of committed nodes (listings, pages, no flush on
// close of read-only opens) must never hide a change made through the mount.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable, "needs /dev/fuse"))
struct KernelCacheTests {
    @Test func aCommittedDirectoryListedBeforeAChangeListsTheChange() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (mount, _, _) = try MountTests.firstRound(in: dir)
        defer { mount.cleanUp() }
        func names(_ relative: String) throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: mount.path(relative)))
        }
        // Listed twice: the second listing may come from the kernel's cache.
        let docs = try names("docs")
        #expect(try names("docs") == docs && docs.contains("readme.txt"))
        let nested = try names("docs/nested")

        try Fixtures.write("new\n", to: mount.path("docs/new.txt"))
        #expect(try names("docs") == docs.union(["new.txt"]))
        try MountTests.shCheck(["rm", mount.path("docs/readme.txt")])
        #expect(try names("docs") == docs.union(["new.txt"]).subtracting(["readme.txt"]))
        try MountTests.shCheck(["mv", mount.path("docs/nested/deeper"), mount.path("moved")])
        #expect(try names("docs/nested") == nested.subtracting(["deeper"]))
        #expect(try names("moved") == ["leaf.txt"])

        // Reading a committed file and closing it, then changing it: the new bytes, not cached ones.
        #expect(FileManager.default.contents(atPath: mount.path("moved/leaf.txt")) == Data("deep down\n".utf8))
        try Fixtures.write("rewritten\n", to: mount.path("moved/leaf.txt"))
        #expect(FileManager.default.contents(atPath: mount.path("moved/leaf.txt")) == Data("rewritten\n".utf8))

        // After a commit and a remount the listings are the committed ones again.
        try #require(try mount.commit().status == 0)
        #expect(try names("docs") == docs.union(["new.txt"]).subtracting(["readme.txt"]))
        try #require(try mount.unmount().status == 0)
        let remounted = try mount.remount()
        defer { remounted.cleanUp() }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: remounted.path("moved"))) == ["leaf.txt"])
    }

    /// A mount that takes no writes lets the kernel open files and directories
    /// by itself and keep what it read: reading the whole tree again asks the
    /// daemon nothing (an open and a release per file before). The directory
    /// of 400 names takes the kernel several readdir calls, each a window of it.
    @Test func aReadOnlyMountServesRepeatReadsFromTheKernelAlone() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = dir.url("source"), image = dir.url("wide.iso")
        for index in 0..<400 {
            try Fixtures.write("file \(index)\n", to: source + "/wide/a file with a long name, number \(index).txt")
        }
        try Fixtures.writeRandomFile(source + "/nested/deeper/random.bin", count: 200_000, seed: 7)
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-outdev", "stdio:" + image, "-map", source, "/", "-commit"],
                        environment: Xorriso.cLocale)
        let mount = try IsofuseMount(image, in: dir, options: ["--read-only"])
        defer { mount.cleanUp() }
        // find and md5sum, as a backup would read: no ioctl per file (isatty), which FUSE passes on.
        func checksums(under root: String) throws -> String {
            try Shell.check(["sh", "-c", "cd \"$1\" && find . -type f -exec md5sum {} + | sort", "sh", root]).stdout
        }
        let expected = try checksums(under: source)
        // A first `ls -lR`: names, types and attributes come with the listings, and
        // a medium without ACLs says ACLs are not supported (else: a request per file).
        let start = try Self.readCalls(of: mount.daemon)
        try Shell.check(["ls", "-lR", mount.mountpoint])
        let listing = try Self.readCalls(of: mount.daemon) - start
        #expect(listing < 100, "\(listing) requests for ls -lR of 404 entries")
        #expect(try hostTree(mount.mountpoint) == (try hostTree(source)))
        #expect(try checksums(under: mount.mountpoint) == expected)
        let before = try Self.readCalls(of: mount.daemon)
        #expect(try checksums(under: mount.mountpoint) == expected)
        let requests = try Self.readCalls(of: mount.daemon) - before
        #expect(requests < 20, "\(requests) requests to read 401 cached files again")

        // The status file is read through the page cache too: its size is that of its text.
        let status = try String(contentsOfFile: mount.path(".isofuse/status"), encoding: .utf8)
        #expect(status.contains("read-only"))
        let size = try FileManager.default.attributesOfItem(atPath: mount.path(".isofuse/status"))[.size] as? Int
        #expect(size == status.utf8.count)
    }

    /// A big file is read in requests of nearly 1 MiB whose bytes go from the
    /// image to the kernel without passing through the daemon (spliced), and
    /// the kernel reads 4 MiB ahead. With FUSE's 128 KiB of readahead the
    /// kernel asked in 128 KiB requests; replies of a full 1 MiB do not fit
    /// libfuse's pipe and are copied through the daemon: both 3-4x slower.
    @Test func aBigFileIsReadInLargeRequestsSplicedFromTheImage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = dir.url("source"), image = dir.url("big.iso")
        try Fixtures.writeRandomFile(source + "/big.bin", count: 24 << 20, seed: 11)
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-outdev", "stdio:" + image, "-map", source, "/", "-commit"],
                        environment: Xorriso.cLocale)
        let mount = try IsofuseMount(image, in: dir, options: ["--read-only"])
        defer { mount.cleanUp() }
        // /proc/self/mountinfo: field 3 is the mount's device, field 5 its mount point.
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let device = try #require(mountinfo.split(separator: "\n").map { $0.split(separator: " ") }
            .last { $0.count > 4 && $0[4] == mount.mountpoint }?[2])
        let readahead = try String(contentsOfFile: "/sys/class/bdi/\(device)/read_ahead_kb", encoding: .utf8)
        #expect(readahead == "4096\n")

        let (calls, bytes) = (try Self.readCalls(of: mount.daemon), try Self.bytesRead(of: mount.daemon))
        let sum = try Shell.check(["sh", "-c", "dd if=\"$1\" bs=1M status=none | md5sum", "sh", mount.path("big.bin")]).stdout
        #expect(sum == (try Shell.check(["sh", "-c", "md5sum <\"$1\"", "sh", source + "/big.bin"]).stdout))
        let requests = try Self.readCalls(of: mount.daemon) - calls
        #expect(requests < 50, "\(requests) requests to read 24 MiB")
        let copied = try Self.bytesRead(of: mount.daemon) - bytes
        #expect(copied < 1 << 20, "\(copied) bytes of the file read by the daemon")
    }

    /// read(2) calls a process made (/proc/PID/io): a FUSE daemon reads each request with one.
    static func readCalls(of pid: Int32) throws -> Int {
        try ioCount("syscr", of: pid)
    }

    /// Bytes a process read with read(2) and its kind (/proc/PID/io); not those it spliced.
    static func bytesRead(of pid: Int32) throws -> Int {
        try ioCount("rchar", of: pid)
    }

    private static func ioCount(_ name: String, of pid: Int32) throws -> Int {
        let io = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
        let line = try #require(io.split(separator: "\n").first { $0.hasPrefix(name + ":") })
        return try #require(Int(line.split(separator: " ")[1]))
    }

    @Test(arguments: [["--read-only"], ["--session", "1"]])
    func aMountThatTakesNoChangesIsReadOnlyForTheKernel(options: [String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let mount = try IsofuseMount(fixture.image, in: dir, options: options)
        defer { mount.cleanUp() }
        // /proc/self/mountinfo: field 5 is the mount point, field 6 its options.
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let fields = mountinfo.split(separator: "\n").map { $0.split(separator: " ") }
            .first { $0.count > 5 && $0[4] == mount.mountpoint }
        #expect(fields.map { $0[5].split(separator: ",").contains("ro") } == true, "\(options)")
        // Its nodes are numbered by their place in the tree: a number a node, one for both names of a hard link.
        var names: [Int?: Set<String>] = [:]
        for path in try hostTree(mount.mountpoint).keys {
            names[try MountTests.inode(mount.path(String(path.dropFirst()))), default: []].insert(path)
        }
        #expect(names.values.filter { $0.count > 1 } == [["/hardlink-a.txt", "/docs/hardlink-b.txt"]], "\(options)")
    }
}
