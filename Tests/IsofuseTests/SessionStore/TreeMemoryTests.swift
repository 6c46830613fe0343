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
}
