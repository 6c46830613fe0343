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
    }
}
