// A loaded session keeps only its compact `Tree`: libisofs' own tree (~500
// bytes a node) must not stay attached to the drive for the life of a mount.

import CIsoburn
@testable import SessionStore
import Testing

@Suite struct TreeMemoryTests {
    @Test func loadingATreeLeavesNoLibisofsTreeAttachedToTheDrive() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let drive = try Drive(DriveAddress(parsing: fixture.image))
        let tree = try drive.loadTree()
        #expect(tree.nodeCount > 3)
        let attachedChildren = try drive.withHandle { handle throws(IsofuseError) -> Int32 in
            guard let image = isoburn_get_attached_image(handle.drive) else { return 0 }
            defer { iso_image_unref(image) }
            return iso_dir_get_children_count(iso_image_get_root(image))
        }
        #expect(attachedChildren == 0)
    }

    /// A mount of a million files holds a million records, beside libisofs'
    /// tree while it loads: the record's size is the mount's peak.
    @Test func aRecordIs72Bytes() {
        #expect(MemoryLayout<Tree.Record>.stride == 72)
    }

    @Test func emptyFilesTakeNoExtents() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Fixtures.write("", to: dir.url("tree/empty"))
        try Fixtures.write("content", to: dir.url("tree/full"))
        let image = dir.url("image.iso")
        try Shell.check(["xorriso", "-no_rc", "-outdev", "stdio:" + image, "-map", dir.url("tree"), "/", "-commit"])
        let tree = try Drive(DriveAddress(parsing: image)).loadTree()
        let empty = try #require(tree.lookup(path: "/empty")), full = try #require(tree.lookup(path: "/full"))
        #expect(tree.extents(of: empty).isEmpty && tree.info(of: empty).size == 0)
        #expect(tree.extents(of: full).map(\.byteCount) == [7])
        #expect(tree.extents.count == 1)
    }
}
