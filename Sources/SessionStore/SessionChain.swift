// A guard in front of libisoburn for image files. libisoburn finds the
// sessions of an image by following a chain of session heads: from block 32,
// each head's volume size leads (rounded up to 32 blocks) to the next one.
// A head that claims 16 blocks or fewer leads back to itself, and libisoburn
// then loops forever while acquiring the drive (a real session is never that
// small: its system area alone is 16 blocks). So the chain is walked here
// first, the way libisoburn walks it, and such an image is refused.

struct SessionChain {
    private static let blockSize = 2048

    let reader: any BlockReading

    /// Throws `.corruptMedium` when a head in the chain would not lead onwards.
    func check() throws(IsofuseError) {
        guard let imageBlocks = volumeBlocks(ofHeadAt: 0) else { return }   // not an ISO image: libisoburn stops at once
        var block: UInt64 = 32
        var previousEnd: UInt64 = 0
        while block < imageBlocks {
            // growisofs aligns sessions to 16 blocks: libisoburn also looks 16 blocks earlier then.
            let earlier = block - (previousEnd + 15) / 16 * 16 == 16 ? block - 16 : nil
            guard let (head, blocks) = [block, earlier].compactMap({ $0 })
                .lazy.compactMap({ head in self.volumeBlocks(ofHeadAt: head).map { (head, $0) } }).first else { return }
            guard blocks > 16 else {
                throw IsofuseError(.corruptMedium, "the session at block \(head) claims to hold \(blocks) blocks, too few for a session (a damaged chain of sessions)")
            }
            previousEnd = head + blocks
            block = (previousEnd + 31) / 32 * 32
        }
    }

    /// The volume size in blocks recorded by the primary volume descriptor of
    /// the session starting at `head`; nil when there is none.
    private func volumeBlocks(ofHeadAt head: UInt64) -> UInt64? {
        var descriptor = [UInt8](repeating: 0, count: Self.blockSize)
        let read = descriptor.withUnsafeMutableBytes { bytes in
            try? reader.readFully(into: bytes, at: (head + 16) * UInt64(Self.blockSize))
        }
        guard read == Self.blockSize, descriptor[0] == 1, descriptor[1..<6].elementsEqual("CD001".utf8) else { return nil }
        return (0..<4).reduce(0) { $0 | UInt64(descriptor[80 + $1]) << (8 * $1) }
    }
}
