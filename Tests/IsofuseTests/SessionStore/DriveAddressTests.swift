import SessionStore
import SystemPackage
import Testing

@Suite struct DriveAddressTests {
    @Test func recorderNodesAreRecorders() throws {
        for text in ["/dev/sr0", "/dev/sg3"] {
            let address = try DriveAddress(parsing: text)
            #expect(address.kind == .recorder)
            #expect(address.path == FilePath(text))
        }
    }

    @Test func mmcPrefixMakesAnyNodeARecorder() throws {
        let address = try DriveAddress(parsing: "mmc:/dev/vda")
        #expect(address.kind == .recorder)
        #expect(address.path == "/dev/vda")
        #expect(address.description == "mmc:/dev/vda")
    }

    @Test func plainAndStdioPathsAreImages() throws {
        #expect(try DriveAddress(parsing: "backup.iso") == DriveAddress(kind: .image, path: "backup.iso"))
        #expect(try DriveAddress(parsing: "stdio:/dev/sr0") == DriveAddress(kind: .image, path: "/dev/sr0"))
    }

    @Test func emptyAddressesAreRefused() {
        for text in ["", "mmc:", "stdio:"] {
            #expect(throws: IsofuseError.self) { try DriveAddress(parsing: text) }
        }
    }
}
