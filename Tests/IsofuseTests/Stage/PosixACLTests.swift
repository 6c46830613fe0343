import Stage
import Testing

@Suite struct PosixACLTests {
    /// `setfacl -m u:1000:r-x,m::rwx` on a file with mode 0640, as the kernel passes it.
    static let binary: [UInt8] = [
        2, 0, 0, 0,
        0x01, 0, 6, 0, 0xFF, 0xFF, 0xFF, 0xFF,   // user::rw-
        0x02, 0, 5, 0, 0xE8, 0x03, 0, 0,         // user:1000:r-x
        0x04, 0, 4, 0, 0xFF, 0xFF, 0xFF, 0xFF,   // group::r--
        0x10, 0, 7, 0, 0xFF, 0xFF, 0xFF, 0xFF,   // mask::rwx
        0x20, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,   // other::---
    ]

    @Test func binaryBecomesLibisofsText() {
        #expect(PosixACL.text(fromBinary: Self.binary) == "user::rw-\nuser:1000:r-x\ngroup::r--\nmask::rwx\nother::---\n")
    }

    @Test func textBecomesTheSameBinary() {
        #expect(PosixACL.binary(fromText: PosixACL.text(fromBinary: Self.binary)!) == Self.binary)
    }

    @Test func aMinimalACLIsTheMode() {
        #expect(PosixACL.permissions(ofMinimal: "user::rwx\ngroup::r-x\nother::---\n") == 0o750)
        #expect(PosixACL.permissions(ofMinimal: PosixACL.text(fromBinary: Self.binary)!) == nil)
    }

    @Test func malformedInputIsRefused() {
        #expect(PosixACL.text(fromBinary: [1, 0, 0, 0]) == nil)
        #expect(PosixACL.text(fromBinary: Array(Self.binary.dropLast())) == nil)
        #expect(PosixACL.binary(fromText: "user:lisa:r-x\n") == nil)
    }
}
