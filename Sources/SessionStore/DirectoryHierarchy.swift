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
    private static let runBlocks = 32

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
            guard read(&descriptor, block: UInt64(sessionStart) + index) == 1,
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

    /// Directories are read breadth-first, each in runs of up to 32 blocks:
    /// libisofs lays them out level by level, so the reads go forward through
    /// the image (a cold read of a million-file tree took 20 s block by block).
    private func walk(from root: Directory, visited: inout Set<UInt32>, what: String) throws(IsofuseError) {
        var queue = [root]
        var next = 0
        var run = [UInt8](repeating: 0, count: Self.runBlocks * Self.blockSize)
        while next < queue.count {
            let directory = queue[next]
            next += 1
            guard visited.insert(directory.block).inserted else {
                throw IsofuseError(.corruptMedium, "the directory tree of \(what) is damaged: the directory at block \(directory.block) is reached twice (the directories form a loop)")
            }
            guard directory.depth <= Self.maximumDepth else {
                throw IsofuseError(.corruptMedium, "the directory tree of \(what) is nested deeper than \(Self.maximumDepth) levels")
            }
            var byteCount = directory.byteCount
            var index: UInt64 = 0
            while true {
                // A CL target's size is in its first block's "." record.
                let wanted = byteCount.map { count in
                    min(UInt64(Self.runBlocks), (UInt64(count) + UInt64(Self.blockSize) - 1) / UInt64(Self.blockSize) - min(index, UInt64(count)))
                } ?? 1
                guard wanted > 0 else { break }
                let got = read(&run, block: UInt64(directory.block) + index, blocks: Int(wanted))
                for b in 0..<got {
                    let block = run[b * Self.blockSize..<(b + 1) * Self.blockSize]
                    records(in: block, of: directory, byteCount: &byteCount, queue: &queue)
                }
                guard byteCount != nil, got == Int(wanted) else { break }
                index += wanted
            }
        }
    }

    /// Queues the subdirectories a block of directory records names.
    private func records(in block: ArraySlice<UInt8>, of directory: Directory, byteCount: inout UInt32?,
                         queue: inout [Directory]) {
        var offset = block.startIndex
        // Records do not cross blocks; a zero length ends the block's records.
        while offset + 34 <= block.endIndex, block[offset] >= 34, offset + Int(block[offset]) <= block.endIndex {
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
            if isDirectory, systemUseEntry("RE", of: record, nameLength: nameLength) == nil {
                // (a relocated directory is reached by its CL)
                queue.append(Directory(block: littleEndian32(record, at: record.startIndex + 2),
                                       byteCount: littleEndian32(record, at: record.startIndex + 10),
                                       depth: directory.depth + 1))
            } else if !isDirectory, let link = systemUseEntry("CL", of: record, nameLength: nameLength), link.count >= 12 {
                queue.append(Directory(block: littleEndian32(link, at: link.startIndex + 4),
                                       byteCount: nil, depth: directory.depth + 1))
            }
        }
    }

    /// The SUSP entry with a signature ("CL", "RE") in a record's own system use area.
    private func systemUseEntry(_ signature: StaticString, of record: ArraySlice<UInt8>, nameLength: Int) -> ArraySlice<UInt8>? {
        let (first, second) = signature.withUTF8Buffer { ($0[0], $0[1]) }
        var offset = record.startIndex + 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0)
        while offset + 4 <= record.endIndex {
            let length = Int(record[offset + 2])
            guard length >= 4, offset + length <= record.endIndex else { break }
            if record[offset] == first && record[offset + 1] == second { return record[offset..<offset + length] }
            offset += length
        }
        return nil
    }

    /// Reads `blocks` blocks into the start of `buffer`; how many whole blocks
    /// were read (fewer where the medium ends or cannot be read: libisofs
    /// reports that damage when it gets there).
    private func read(_ buffer: inout [UInt8], block: UInt64, blocks: Int = 1) -> Int {
        guard block + UInt64(blocks) <= UInt64(UInt32.max) + 1 else { return 0 }
        return buffer.withUnsafeMutableBytes { bytes in
            let wanted = UnsafeMutableRawBufferPointer(rebasing: bytes[..<(blocks * Self.blockSize)])
            return ((try? reader.readFully(into: wanted, at: block * UInt64(Self.blockSize))) ?? 0) / Self.blockSize
        }
    }

    private func littleEndian32(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[index + $1]) << (8 * $1) }
    }
}
