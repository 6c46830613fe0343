// Images no honest tool makes, for the hostile-image tests: an image made by
// xorriso, changed in memory at the fields that matter (a Rock Ridge name, a
// directory record's extent or size, a checksum tag) and written back.

import Foundation

struct ImagePatcher {
    var bytes: [UInt8]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(_ path: String) throws {
        bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func write(to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Where `pattern` occurs, expecting exactly once.
    func offset(of pattern: [UInt8]) throws -> Int {
        let found = offsets(of: pattern)
        guard found.count == 1 else {
            throw Failure(description: "\(pattern) occurs \(found.count) times in the image, not once")
        }
        return found[0]
    }

    func offsets(of pattern: [UInt8]) -> [Int] {
        guard let first = pattern.first, bytes.count >= pattern.count else { return [] }
        return (0...(bytes.count - pattern.count)).filter { i in
            bytes[i] == first && bytes[i..<i + pattern.count].elementsEqual(pattern)
        }
    }

    /// Replaces the name in a Rock Ridge NM entry by bytes of the same length
    /// (a different length would break the chain of entries).
    mutating func renameRockRidge(_ name: String, to replacement: [UInt8]) throws {
        let old = Array(name.utf8)
        guard old.count == replacement.count else { throw Failure(description: "NM names must keep their length") }
        // "NM", entry length, version 1, flags 0, the name.
        let at = try offset(of: [0x4E, 0x4D, UInt8(5 + old.count), 1, 0] + old) + 5
        bytes.replaceSubrange(at..<at + old.count, with: replacement)
    }

    /// The offset of the directory record with this ISO 9660 identifier
    /// ("LOOP" for a directory, "DATA.BIN;1" for a file).
    func directoryRecord(named identifier: String) throws -> Int {
        let name = Array(identifier.utf8)
        // The identifier's length byte is at offset 32 of the record; the path tables hold the name too, differently framed.
        let records = offsets(of: [UInt8(name.count)] + name).map { $0 - 32 }
            .filter { $0 >= 0 && Int(bytes[$0]) >= 33 + name.count && bytes[$0 + 1] == 0 }
        guard records.count == 1 else {
            throw Failure(description: "\(records.count) directory records named \(identifier), not one")
        }
        return records[0]
    }

    /// The first block of a record's data (a file's content, a directory's records).
    func extent(ofRecordAt record: Int) -> UInt32 { littleEndian32(at: record + 2) }

    mutating func setExtent(ofRecordAt record: Int, to block: UInt32) { setBothEndian32(block, at: record + 2) }

    mutating func setDataLength(ofRecordAt record: Int, to length: UInt32) { setBothEndian32(length, at: record + 10) }

    /// Sets the volume size (in blocks) recorded by the session starting at `block`.
    mutating func setVolumeBlocks(ofSessionAt block: Int, to blocks: UInt32) {
        setBothEndian32(blocks, at: (block + 16) * 2048 + 80)
    }

    /// The root directory's block, from the volume descriptor at block 16 (for
    /// an image file the newest session's).
    var rootDirectoryBlock: UInt32 { extent(ofRecordAt: 16 * 2048 + 156) }

    /// The block holding a libisofs checksum tag of this kind: "libisofs_sb_checksum_tag_v1",
    /// "libisofs_tree_checksum_tag_v1" or "libisofs_checksum_tag_v1", the last one found.
    func checksumTagBlock(_ kind: String) throws -> Int {
        guard let at = offsets(of: Array((kind + " pos=").utf8)).filter({ $0 % 2048 == 0 }).last else {
            throw Failure(description: "no \(kind) in the image")
        }
        return at / 2048
    }

    private func littleEndian32(at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    /// ISO 9660 "both-byte orders": little-endian, then big-endian.
    private mutating func setBothEndian32(_ value: UInt32, at offset: Int) {
        for i in 0..<4 {
            bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
            bytes[offset + 7 - i] = UInt8(truncatingIfNeeded: value >> (8 * i))
        }
    }
}
