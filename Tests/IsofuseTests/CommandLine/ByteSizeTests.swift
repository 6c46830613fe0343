// `--capacity` sizes, and the arguments `isofuse mount` gives its daemon;
// sizes and percentages as isofuse prints them.

@testable import isofuse
import Stage
import Testing

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("123456", 123_456),
        ("0", 0),
        ("700M", 700_000_000),
        ("4.7G", 4_700_000_000),
        ("25G", 25_000_000_000),
        ("1T", 1_000_000_000_000),
        ("64K", 64_000),
        ("700MB", 700_000_000),
        ("4.7g", 4_700_000_000),
        ("2KiB", 2048),
        ("1.5Ki", 1536),
        ("4GiB", 4_294_967_296),
        ("1.0000000001K", 1000),
        ("123B", 123),
    ] as [(String, UInt64)])
    func parses(_ text: String, _ bytes: UInt64) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test func decimalFractionsAreExactAndRoundDown() {
        #expect(ByteSize.parse("8.5G") == 8_500_000_000)
        #expect(ByteSize.parse("0.001K") == 1)
        #expect(ByteSize.parse("0.0001K") == 0)
        #expect(ByteSize.parse("1.5") == 1)
        // 4.7 × 2^30 = 5046586572.8
        #expect(ByteSize.parse("4.7GiB") == 5_046_586_572)
    }

    @Test(arguments: ["", "G", "M700", ".5G", "1.", "1.2.3", "4.7X", "4.7 G", "-1", "+1", "1e9", "1Gi B", "1iB",
                      "1bb", "١٢٣", "20000000T", "18446744073709551616"])
    func refuses(_ text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test func largestSizes() {
        #expect(ByteSize.parse("18446744073709551615") == UInt64.max)
        #expect(ByteSize.parse("18446744T") == 18_446_744_000_000_000_000)
        #expect(ByteSize.parse("18446745T") == nil)
    }

    @Test func isAnArgument() {
        #expect(ByteSize(argument: "4.7G")?.bytes == 4_700_000_000)
        #expect(ByteSize(argument: "lots") == nil)
    }
}

@Suite struct DaemonArgumentsTests {
    @Test func insertsTheDaemonOptionsAfterTheCommand() throws {
        let arguments = try DaemonLauncher.daemonArguments(["/usr/bin/isofuse", "mount", "--", "-odd.iso", "/mnt"])
        #expect(arguments == ["/usr/bin/isofuse", "mount", "--foreground", "--ready-fd", "3", "--", "-odd.iso", "/mnt"])
    }

    @Test func keepsTheUsersOptions() throws {
        let arguments = try DaemonLauncher.daemonArguments(["isofuse", "mount", "a.iso", "/mnt", "-o", "allow_other"])
        #expect(arguments == ["isofuse", "mount", "--foreground", "--ready-fd", "3", "a.iso", "/mnt", "-o", "allow_other"])
    }

    /// As printf's `%.1f` and `%5.1f` wrote them.
    @Test func sizesAndPercentagesHaveOneDecimal() {
        #expect(UInt64(812).byteCountText == "812 B")
        #expect(UInt64(1_700_000).byteCountText == "1.6 MiB")
        #expect(UInt64(4_724_464_025).byteCountText == "4.4 GiB")
        #expect(UInt64(1024).byteCountText == "1.0 KiB")
        #expect(0.0.oneDecimalText(width: 5) == "  0.0")
        #expect(12.34.oneDecimalText(width: 5) == " 12.3")
        #expect(99.96.oneDecimalText(width: 5) == "100.0")
        #expect(100.0.oneDecimalText(width: 3) == "100.0")
        #expect(0.26.oneDecimalText() == "0.3")
        #expect((-1.25).oneDecimalText() == "-1.3" && (-0.01).oneDecimalText() == "0.0")
    }
}
