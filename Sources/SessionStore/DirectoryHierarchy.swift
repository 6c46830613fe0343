// A guard in front of libisofs. libisofs follows a directory record that
// points back to an ancestor without end (it recurses until the stack runs
// out), and reads a directory that several records point to once per record.
// So before a session's tree is handed to libisofs, its directory hierarchy is
// walked here on the raw directory records (ISO 9660 and Joliet, with Rock
// Ridge CL links): every directory must be reached once, no deeper than
// `maximumDepth`. Honest images always pass; the walk reads only directories.

/// Checks the directory hierarchy of the session starting at a block.
struct DirectoryHierarchy {
    /// Far deeper than any path a host can use (PATH_MAX is 4096 bytes), far
    /// shallower than what exhausts libisofs' recursion.
    static let maximumDepth = 1000
    private static let blockSize = 2048

    let reader: any BlockReading

    /// Throws `.corruptMedium` (with `what`, e.g. "session 2", in the message)
    /// when a directory is its own ancestor, is reached twice, or lies too deep.
    /// Damage of other kinds is left to libisofs to report.
    func check(sessionStart: UInt32, what: String) throws(IsofuseError) {
        var visited = Set<UInt32>()
        for root in roots(sessionStart: sessionStart) {
            try walk(from: root, visited: &visited, what: what)
        }
    }

    private struct Directory {
        var block: UInt32
        /// Bytes of directory records; nil for a CL target, whose size is in its "." record.
        var byteCount: UInt32?
        var depth: Int
    }

    /// The root directories of the primary volume descriptor and of a Joliet
    /// one, from the descriptors starting at block 16 of the session.
    private func roots(sessionStart: UInt32) -> [Directory] {
        var roots: [Directory] = []
        var descriptor = [UInt8](repeating: 0, count: Self.blockSize)
        for index in UInt64(16)..<64 {
            guard read(&descriptor, block: UInt64(sessionStart) + index),
                  descriptor[1..<6].elementsEqual("CD001".utf8), descriptor[0] != 255 else { break }
            let joliet = descriptor[0] == 2 && descriptor[88] == 0x25 && descriptor[89] == 0x2F
                && [0x40, 0x43, 0x45].contains(descriptor[90])
            if descriptor[0] == 1 || joliet {
                roots.append(Directory(block: littleEndian32(descriptor[...], at: 156 + 2),
                                       byteCount: littleEndian32(descriptor[...], at: 156 + 10), depth: 0))
            }
        }
        return roots
    }

    private func walk(from root: Directory, visited: inout Set<UInt32>, what: String) throws(IsofuseError) {
        var pending = [root]
        var block = [UInt8](repeating: 0, count: Self.blockSize)
        while let directory = pending.popLast() {
            guard visited.insert(directory.block).inserted else {
                throw IsofuseError(.corruptMedium, "the directory tree of \(what) is damaged: the directory at block \(directory.block) is reached twice (the directories form a loop)")
            }
            guard directory.depth <= Self.maximumDepth else {
                throw IsofuseError(.corruptMedium, "the directory tree of \(what) is nested deeper than \(Self.maximumDepth) levels")
            }
            var byteCount = directory.byteCount
            var index: UInt64 = 0
            while byteCount.map({ index * UInt64(Self.blockSize) < UInt64($0) }) ?? true,
                  read(&block, block: UInt64(directory.block) + index) {
                var offset = 0
                // Records do not cross blocks; a zero length ends the block's records.
                while offset + 34 <= Self.blockSize, block[offset] >= 34, offset + Int(block[offset]) <= Self.blockSize {
                    let record = block[offset..<offset + Int(block[offset])]
                    offset += record.count
                    let nameLength = Int(record[record.startIndex + 32])
                    guard 33 + nameLength <= record.count else { break }
                    let name = record[(record.startIndex + 33)...].prefix(nameLength)
                    let isDirectory = record[record.startIndex + 25] & 2 != 0
                    if nameLength == 1 && name.first! <= 1 {
                        // "." gives the size of a CL target; ".." leads back up.
                        if byteCount == nil && name.first == 0 {
                            byteCount = littleEndian32(record, at: record.startIndex + 10)
                        }
                        continue
                    }
                    let entries = systemUseEntries(of: record, nameLength: nameLength)
                    if isDirectory, entries["RE"] == nil {   // a relocated directory is reached by its CL
                        pending.append(Directory(block: littleEndian32(record, at: record.startIndex + 2),
                                                 byteCount: littleEndian32(record, at: record.startIndex + 10),
                                                 depth: directory.depth + 1))
                    } else if !isDirectory, let link = entries["CL"], link.count >= 12 {
                        pending.append(Directory(block: littleEndian32(link, at: link.startIndex + 4),
                                                 byteCount: nil, depth: directory.depth + 1))
                    }
                }
                if byteCount == nil { break }
                index += 1
            }
        }
    }

    /// The SUSP entries in a record's own system use area, by signature ("CL", "RE").
    private func systemUseEntries(of record: ArraySlice<UInt8>, nameLength: Int) -> [String: ArraySlice<UInt8>] {
        var entries: [String: ArraySlice<UInt8>] = [:]
        var offset = record.startIndex + 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0)
        while offset + 4 <= record.endIndex {
            let length = Int(record[offset + 2])
            guard length >= 4, offset + length <= record.endIndex else { break }
            entries[String(decoding: record[offset..<offset + 2], as: UTF8.self)] = record[offset..<offset + length]
            offset += length
        }
        return entries
    }

    /// Reads one block; false when the medium ends before it or it cannot be read
    /// (libisofs reports that damage when it gets there).
    private func read(_ buffer: inout [UInt8], block: UInt64) -> Bool {
        guard block <= UInt64(UInt32.max) else { return false }
        return buffer.withUnsafeMutableBytes { bytes in
            (try? reader.readFully(into: bytes, at: block * UInt64(Self.blockSize))) == Self.blockSize
        }
    }

    private func littleEndian32(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[index + $1]) << (8 * $1) }
    }
}
