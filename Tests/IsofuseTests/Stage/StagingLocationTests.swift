import SessionStore
import Stage
import SystemPackage
import Testing

@Suite struct StagingLocationTests {
    /// Identities of two different (blank) media; blank media are told apart by their address.
    /// That a medium keeps its key across sessions is shown in SessionStoreTests.
    static func identities() throws -> (first: MediumIdentity, other: MediumIdentity) {
        let a = try Drive(DriveAddress(parsing: "/tmp/isofuse-tests-missing-a.iso")).medium().identity
        let b = try Drive(DriveAddress(parsing: "/tmp/isofuse-tests-missing-b.iso")).medium().identity
        return (a, b)
    }

    @Test func followsXDGStateHome() throws {
        let identity = try Self.identities().first
        let path = try StagingLocation.defaultDirectory(for: identity, environment: ["XDG_STATE_HOME": "/var/state", "HOME": "/home/u"])
        #expect(path == FilePath("/var/state/isofuse").appending(identity.mediumKey))
    }

    @Test func fallsBackToHomeAndIgnoresRelativeValues() throws {
        let identity = try Self.identities().first
        let path = try StagingLocation.defaultDirectory(for: identity, environment: ["XDG_STATE_HOME": "rel", "HOME": "/home/u"])
        #expect(path == FilePath("/home/u/.local/state/isofuse").appending(identity.mediumKey))
        #expect(throws: IsofuseError.self) { try StagingLocation.defaultDirectory(for: identity, environment: [:]) }
    }

    @Test func differentMediaGetDifferentDirectories() throws {
        let ids = try Self.identities()
        let env = ["HOME": "/root"]
        #expect(try StagingLocation.defaultDirectory(for: ids.first, environment: env)
                != StagingLocation.defaultDirectory(for: ids.other, environment: env))
        #expect(ids.first.mediumKey.count == 32)
    }
}
