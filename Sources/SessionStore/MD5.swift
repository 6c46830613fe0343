// MD5 through libisofs' own implementation (iso_md5_*), the one that wrote the
// checksums being compared. The functions keep all state in their context, so
// they need no library lock.

import CIsoburn

/// A 16-byte MD5 sum, stored inline (a tree keeps one per file).
public struct MD5Digest: Hashable, Sendable, CustomStringConvertible {
    private var high: UInt64
    private var low: UInt64

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16, "an MD5 digest has 16 bytes")
        high = bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes.dropFirst(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    init(_ cBytes: [CChar]) {
        self.init(bytes: cBytes.map { UInt8(bitPattern: $0) })
    }

    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> (56 - 8 * UInt64(i % 8))) }
    }

    public var hex: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    public var description: String { hex }
}

/// A running MD5 computation.
final class MD5 {
    private var context: UnsafeMutableRawPointer?

    init() {
        guard iso_md5_start(&context) == 1 else { fatalError("libisofs could not allocate an MD5 context") }
    }

    deinit {
        if context != nil {
            var discard = [CChar](repeating: 0, count: 16)
            iso_md5_end(&context, &discard)
        }
    }

    func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        // iso_md5_compute takes `char *` but only reads it.
        iso_md5_compute(context, UnsafeMutableRawPointer(mutating: base).assumingMemoryBound(to: CChar.self),
                        Int32(data.count))
    }

    /// The sum of what was fed so far; the computation can go on.
    func intermediate() -> MD5Digest {
        var copy: UnsafeMutableRawPointer?
        guard iso_md5_clone(context, &copy) == 1 else { fatalError("libisofs could not clone an MD5 context") }
        var out = [CChar](repeating: 0, count: 16)
        iso_md5_end(&copy, &out)
        return MD5Digest(out)
    }

    func finish() -> MD5Digest {
        var out = [CChar](repeating: 0, count: 16)
        iso_md5_end(&context, &out)
        context = nil
        return MD5Digest(out)
    }

    static func digest(_ data: UnsafeRawBufferPointer) -> MD5Digest {
        let md5 = MD5()
        md5.update(data)
        return md5.finish()
    }
}
