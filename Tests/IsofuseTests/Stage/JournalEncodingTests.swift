// The journal is written by hand and read by JSONDecoder: every record must
// read back as itself, whatever its names, xattrs and ACL texts hold, and
// stay on one line.

import Foundation
import SessionStore
@testable import Stage
import Testing

@Suite struct JournalEncodingTests {
    @Test func everyKindOfRecordReadsBackAsItself() throws {
        let time = Timestamp(seconds: -86_400, nanoseconds: 999_999_999)
        let full = Metadata(permissions: 0o7777, uid: .max, gid: 0, accessTime: time,
                            modificationTime: Timestamp(seconds: .max), changeTime: Timestamp(seconds: 0),
                            xattrs: ["user.a \"quoted\" \\ name\n": [0, 10, 255], "user.é": [], "security.x": Array("v".utf8)],
                            acl: ACLText(access: "user::rwx\ngroup::r-x\nuser:1000:r--\nmask::r-x\nother::---\n", default: nil))
        let plain = Metadata(permissions: 0o644, uid: 1000, gid: 1000, accessTime: time, modificationTime: time, changeTime: time)
        let records: [JournalRecord] = [
            .node(1, UpperNode(kind: .directory, metadata: plain, origin: .root)),
            .node(.max, UpperNode(kind: .regularFile, metadata: full, content: .staged(7), size: .max, nlink: 3)),
            .node(3, UpperNode(kind: .regularFile, metadata: plain, origin: NodeID(rawValue: 42), content: .base(NodeID(rawValue: 42)))),
            .node(4, UpperNode(kind: .symlink, metadata: plain, target: [0x2e, 0x2e, 0x2f, 0xe9, 0x0a])),
            .node(5, UpperNode(kind: .blockDevice, metadata: plain, rdev: 0x0803)),
            .drop(9),
            .listing(1, [:]),
            .listing(2, [Array("a".utf8): .upper(3), [0xff, 0x22, 0x5c]: .base(NodeID(rawValue: 5)), []: .upper(0)]),
            .entry(1, Array("caf\u{e9}".utf8), .upper(4)),
            .entry(1, [0xe9, 0x0a], nil),
            .shadow(NodeID(rawValue: 3), 8),
            .shadow(.root, nil),
        ]
        for record in records {
            try expectRoundTrip(record)
        }
    }

    /// Random records: names of any bytes, xattr names and ACL texts of any
    /// characters (quotes, backslashes, controls, beyond ASCII).
    @Test func randomRecordsReadBackAsThemselves() throws {
        var random = SeededGenerator(seed: 17)
        for _ in 0..<2_000 {
            try expectRoundTrip(randomRecord(&random))
        }
    }

    private func expectRoundTrip(_ record: JournalRecord) throws {
        let line = JournalEncoding.line(record)
        #expect(line.last == UInt8(ascii: "\n") && line.dropLast().contains(UInt8(ascii: "\n")) == false, "\(record)")
        let decoded = try JSONDecoder().decode(JournalRecord.self, from: Data(line.dropLast()))
        #expect(decoded == record)
    }

    private func randomRecord(_ random: inout SeededGenerator) -> JournalRecord {
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
        func text() -> String {
            let pool: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "€", "😀", ":"]
            return String((0..<Int.random(in: 0...12, using: &random)).map { _ in pool.randomElement(using: &random)! })
        }
        func ref() -> NodeRef {
            Bool.random(using: &random) ? .upper(UInt64.random(in: 0...UInt64.max, using: &random))
                : .base(NodeID(rawValue: UInt32.random(in: 0...UInt32.max, using: &random)))
        }
        func time() -> Timestamp {
            Timestamp(seconds: Int64.random(in: Int64.min...Int64.max, using: &random),
                      nanoseconds: Int32.random(in: 0...999_999_999, using: &random))
        }
        let id = UInt64.random(in: 0...UInt64.max, using: &random)
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            var xattrs: [String: [UInt8]] = [:]
            for _ in 0..<Int.random(in: 0...3, using: &random) { xattrs[text()] = bytes(Int.random(in: 0...20, using: &random)) }
            let acl = Bool.random(using: &random) ? ACLText(access: Bool.random(using: &random) ? text() : nil,
                                                            default: Bool.random(using: &random) ? text() : nil) : nil
            let metadata = Metadata(permissions: UInt32.random(in: 0...0o7777, using: &random), uid: UInt32.random(in: 0...UInt32.max, using: &random),
                                    gid: UInt32.random(in: 0...UInt32.max, using: &random), accessTime: time(), modificationTime: time(),
                                    changeTime: time(), xattrs: xattrs, acl: acl)
            let content: FileContent? = [nil, .staged(id &+ 1), .base(NodeID(rawValue: 9))].randomElement(using: &random)!
            return .node(id, UpperNode(kind: NodeKind(rawValue: UInt8.random(in: 0...6, using: &random))!, metadata: metadata,
                                       origin: Bool.random(using: &random) ? NodeID(rawValue: 1) : nil, content: content,
                                       size: UInt64.random(in: 0...UInt64.max, using: &random),
                                       target: Bool.random(using: &random) ? bytes(Int.random(in: 0...30, using: &random)) : nil,
                                       rdev: UInt64.random(in: 0...UInt64.max, using: &random),
                                       nlink: UInt32.random(in: 0...UInt32.max, using: &random)))
        case 1:
            return .drop(id)
        case 2:
            var entries: [Name: NodeRef] = [:]
            for _ in 0..<Int.random(in: 0...5, using: &random) { entries[bytes(Int.random(in: 0...8, using: &random))] = ref() }
            return .listing(id, entries)
        case 3:
            return .entry(id, bytes(Int.random(in: 0...16, using: &random)), Bool.random(using: &random) ? ref() : nil)
        default:
            return .shadow(NodeID(rawValue: UInt32.random(in: 0...UInt32.max, using: &random)), Bool.random(using: &random) ? id : nil)
        }
    }
}
