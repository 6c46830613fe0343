// A read's reply, from the filesystem's `[ReadSegment]`: one fuse_bufvec
// whose file segments libfuse splices (file → pipe → /dev/fuse, no copy
// through this process) and whose byte segments it copies.
//
// `fuse_bufvec` ends in `struct fuse_buf buf[1]`, which Swift imports as one
// field, so a vector of n buffers is laid out by hand in one allocation, with
// the bytes of the `.bytes` segments after it. Alignment 16: larger alignments
// make glibc mmap and munmap every allocation (interop notes 2.8 #6).

@preconcurrency import Glibc
import CFuse3
import Stage
import SystemPackage

enum FuseReadReply {
    static func send(_ request: FuseRequest, _ segments: [ReadSegment]) {
        let segments = segments.filter { $0.length > 0 }
        guard !segments.isEmpty else {
            fuse_reply_buf(request.raw, nil, 0)
            return
        }
        let buffersOffset = MemoryLayout<fuse_bufvec>.offset(of: \.buf)!
        let vectorSize = max(MemoryLayout<fuse_bufvec>.size,
                             buffersOffset + segments.count * MemoryLayout<fuse_buf>.stride)
        let byteCount = segments.reduce(0) { $0 + $1.inlineByteCount }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: vectorSize + byteCount, alignment: 16)
        defer { memory.deallocate() }

        let vector = memory.bindMemory(to: fuse_bufvec.self, capacity: 1)
        vector.pointee = fuse_bufvec(count: segments.count, idx: 0, off: 0, buf: fuse_buf())
        let buffers = (memory + buffersOffset).assumingMemoryBound(to: fuse_buf.self)
        var inline = memory + vectorSize
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .file(let descriptor, let offset, let length):
                let flags = fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue)
                buffers[index] = fuse_buf(size: length, flags: flags, mem: nil, fd: descriptor.rawValue, pos: off_t(offset))
            case .bytes(let bytes):
                bytes.withUnsafeBytes { inline.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                buffers[index] = fuse_buf(size: bytes.count, flags: fuse_buf_flags(0), mem: inline, fd: -1, pos: 0)
                inline += bytes.count
            }
        }
        // On a failed read of a file segment libfuse replies with its errno itself.
        fuse_reply_data(request.raw, vector, FUSE_BUF_SPLICE_MOVE)
    }
}

private extension ReadSegment {
    var length: Int {
        switch self {
        case .file(_, _, let length): length
        case .bytes(let bytes): bytes.count
        }
    }

    /// What the reply's allocation holds of this segment.
    var inlineByteCount: Int {
        if case .bytes(let bytes) = self { bytes.count } else { 0 }
    }
}
