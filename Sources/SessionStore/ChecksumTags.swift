// The checksum tags libisofs writes into each session with MD5 recording on
// (libisofs doc/checksums.txt): a superblock tag in blocks 16..31 of the
// session, a tree tag after the directory records, a session tag after all
// data. Each holds the MD5 of the blocks from the session start up to itself.
// Checking them re-reads everything the session wrote.

import CIsoburn

/// The outcome of checking one session's tags.
public enum SessionTagResult: Hashable, Sendable {
    /// All three tags found and matching.
    case match
    /// The session has no checksum tags (written without MD5s, e.g. by genisoimage).
    case absent
    /// A tag does not match the blocks it covers, or the chain is broken.
    case mismatch(String)
    /// Blocks of the session could not be read.
    case unreadable(String)
}

struct ChecksumTagScanner {
    let reader: any BlockReading

    private enum TagType: Int32 {
        case session = 1, superblock = 2, tree = 3
    }

    /// Checks the tags of the session starting at `start` and spanning about
    /// `blocks` blocks (tags may lie a little beyond the size the head states).
    /// `progress` gets the number of blocks read so far.
    func check(sessionStart start: UInt32, blocks: UInt32,
               progress: (UInt64) -> Void = { _ in }) -> SessionTagResult {
        let chunkBlocks = 512   // 1 MiB reads
        let limit = UInt64(start) + UInt64(blocks) + 64
        let md5 = MD5()
        var expected: TagType = .superblock
        var nextTag: UInt64 = 0
        var lba = UInt64(start)
        return withScratchBuffer(byteCount: chunkBlocks * 2048) { chunk -> SessionTagResult in
            while lba < limit {
                let want = Int(min(UInt64(chunkBlocks), limit - lba)) * 2048
                let got: Int
                do throws(IsofuseError) {
                    got = try reader.readFully(into: UnsafeMutableRawBufferPointer(rebasing: chunk[..<want]), at: lba * 2048)
                } catch {
                    return .unreadable(error.message)
                }
                let readBlocks = got / 2048
                if readBlocks == 0 { break }
                for i in 0..<readBlocks {
                    let block = UnsafeMutableRawBufferPointer(rebasing: chunk[i * 2048..<(i + 1) * 2048])
                    let position = lba + UInt64(i)
                    let inSuperblockArea = position >= UInt64(start) + 16 && position < UInt64(start) + 32
                    if (expected == .superblock && inSuperblockArea) || (expected != .superblock && position == nextTag),
                       let tag = decodeTag(block, at: position) {
                        let sum = md5.intermediate()
                        guard tag.rangeStart == start, UInt64(tag.rangeSize) == position - UInt64(start), tag.md5 == sum else {
                            return .mismatch("checksum tag at block \(position) does not match blocks \(start)..\(position - 1)")
                        }
                        if tag.type == .session { return .match }
                        expected = tag.type == .superblock ? .tree : .session
                        nextTag = UInt64(tag.next)
                    } else if expected != .superblock && position == nextTag {
                        return .mismatch("the checksum tag expected at block \(position) is missing or damaged")
                    }
                    md5.update(UnsafeRawBufferPointer(block))
                }
                progress(lba + UInt64(readBlocks) - UInt64(start))
                lba += UInt64(readBlocks)
                if readBlocks * 2048 < want { break }
            }
            return expected == .superblock ? .absent : .mismatch("the session's checksum tags end early")
        }
    }

    private struct Tag {
        var type: TagType
        var rangeStart: UInt32
        var rangeSize: UInt32
        var next: UInt32
        var md5: MD5Digest
    }

    /// A tag in `block` that names `position` as its own place (a copy of a
    /// tag elsewhere is no tag).
    private func decodeTag(_ block: UnsafeMutableRawBufferPointer, at position: UInt64) -> Tag? {
        var type: Int32 = 0
        var pos: UInt32 = 0, rangeStart: UInt32 = 0, rangeSize: UInt32 = 0, next: UInt32 = 0
        var md5 = [CChar](repeating: 0, count: 16)
        let ret = iso_util_decode_md5_tag(block.baseAddress!.assumingMemoryBound(to: CChar.self),
                                          &type, &pos, &rangeStart, &rangeSize, &next, &md5, 0)
        guard ret == 1, UInt64(pos) == position, let tagType = TagType(rawValue: type) else { return nil }
        return Tag(type: tagType, rangeStart: rangeStart, rangeSize: rangeSize, next: next, md5: MD5Digest(md5))
    }
}
