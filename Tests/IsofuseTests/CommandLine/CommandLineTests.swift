// The medium commands as a user runs them: exit status, stdout, one-line errors.

import Foundation
import Testing

@Suite struct CommandLineTests {
    /// The isofuse executable built beside this test bundle.
    static let isofuse = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("isofuse").path

    static func run(_ arguments: String...) throws -> Shell.Result {
        try Shell.run([isofuse] + arguments, environment: ["LANG": "C", "LC_ALL": "C"])
    }

    @Test func checkExitsZeroOnACleanImage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let result = try Self.run("check", fixture.image)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("all match"))
        #expect(try Self.run("check", fixture.image, "--session", "2").status == 0)
    }

    @Test func checkExitsOneNamingTheDamagedFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        // The first block of the largest file, found with xorriso.
        let report = try Shell.check(["xorriso", "-indev", "stdio:" + fixture.image, "-find", "/", "-type", "f",
                                      "-exec", "report_lba", "--"]).stdout
        let rows = report.split(separator: "\n").filter { $0.hasPrefix("File data lba:") }.map { row in
            let fields = row.dropFirst("File data lba:".count).split(separator: ",", maxSplits: 4)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            return (lba: UInt64(fields[1])!, size: UInt64(fields[3])!, path: String(fields[4].dropFirst().dropLast()))
        }
        let victim = try #require(rows.max { $0.size < $1.size })
        try flipByte(in: fixture.image, at: victim.lba * 2048 + 17)

        let result = try Self.run("check", fixture.image)
        #expect(result.status == 1)
        #expect(result.stdout.contains("MD5 MISMATCH: \(victim.path)"))
    }

    @Test func checkExitsTwoOnGarbageWithOneLine() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Fixtures.writeRandomFile(dir.url("garbage.iso"), count: 300_000, seed: 11)
        let result = try Self.run("check", dir.url("garbage.iso"))
        #expect(result.status == 2)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.hasPrefix("isofuse: "))
    }

    @Test func tocJSONHasTheSessions() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let result = try Self.run("toc", fixture.image, "--json")
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let sessions = try #require(json["sessions"] as? [[String: Any]])
        let expected = try Xorriso.toc(image: fixture.image)
        #expect(sessions.map { $0["start_block"] as? Int } == expected.map { Int($0.start) })
        #expect(sessions.map { $0["blocks"] as? Int } == expected.map { Int($0.blocks) })
        #expect(sessions.map { $0["volume_id"] as? String } == expected.map(\.volumeID))
        let medium = try #require(json["medium"] as? [String: Any])
        #expect(medium["status"] as? String == "appendable")
        #expect(medium["sessions"] as? Int == 3)
    }

    @Test func tocShowsEachSessionsDateInUTC() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(Self.run("toc", fixture.image, "--json").stdout.utf8))
            as? [String: Any])
        let dates = try #require((json["sessions"] as? [[String: Any]])?.compactMap { $0["date"] as? String })
        #expect(dates.count == 3)
        let text = try Self.run("toc", fixture.image).stdout
        for date in dates {
            #expect(date.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil, "\(date)")
            #expect(text.contains(date.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")))
        }
        // Made seconds ago.
        let made = try #require(ISO8601DateFormatter().date(from: dates[2]))
        #expect(abs(made.timeIntervalSinceNow) < 600)
    }

    /// Foundation's localization brings ICU (40 MB of libraries) into every
    /// process: a cold `isofuse --help` took 0.11 s with it, 0.06 s without,
    /// and a mount daemon's RSS at rest 26.7 MiB against 20.0.
    @Test func theExecutableDoesNotLoadICU() throws {
        let libraries = try Shell.run(["ldd", Self.isofuse]).stdout
        #expect(libraries.contains("libFoundationEssentials"))
        #expect(!libraries.contains("ICU") && !libraries.contains("FoundationInternationalization"))
    }

    @Test func failuresAreOneLineAndNonZero() throws {
        for arguments in [["toc", "/no/such/dir/x.iso"], ["blank", "/no/such/dir/x.iso"], ["format", "--mode", "by_index_x", "a.iso"]] {
            let result = try Shell.run([Self.isofuse] + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(!result.stderr.isEmpty)
        }
        let result = try Self.run("toc", "/no/such/dir/x.iso")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func aMountRefusesItsOwnReadSizeAsAnOption() throws {
        let result = try Self.run("mount", "x.iso", "/tmp", "-o", "ro,max_read=65536")
        #expect(result.status != 0)
        #expect(result.stderr.contains("max_read is isofuse's own"))
    }

    @Test func blankingAnImageMakesItBlank() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixture = try Fixtures.makeThreeSessionImage(in: dir)
        let result = try Self.run("blank", fixture.image, "--mode", "fast")
        #expect(result.status == 0, "\(result.stderr)")
        let toc = try Self.run("toc", fixture.image, "--json")
        #expect(toc.stdout.contains("\"status\" : \"blank\""))
        #expect(try Self.run("format", fixture.image, "--list").status != 0)
    }
}
