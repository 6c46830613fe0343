// A size on the command line: `123456`, `700M`, `4.7G`, `25G`, `64KiB`.
//
// K, M, G and T are powers of 1000, as media are sold: a "4.7 GB" DVD holds
// 4.7e9 bytes, a "700 MB" CD about 700e6 (its real 703 MiB ≈ 737e6 bytes).
// Ki, Mi, Gi and Ti are powers of 1024. A trailing B is allowed ("700MB",
// "4GiB"), letters in either case. Fractions round down to whole bytes.

import ArgumentParser

struct ByteSize: Hashable, Sendable, ExpressibleByArgument {
    var bytes: UInt64

    init(bytes: UInt64) {
        self.bytes = bytes
    }

    init?(argument: String) {
        guard let bytes = Self.parse(argument) else { return nil }
        self.bytes = bytes
    }

    static func parse(_ text: String) -> UInt64? {
        let digits = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard let multiplier = multiplier(text.dropFirst(digits.count).lowercased()) else { return nil }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        // "1.", ".5", "1.2.3" and more decimals than UInt64 can scale are refused.
        guard !whole.isEmpty, parts.count == 1 || !fraction.isEmpty, !fraction.contains("."), fraction.count <= 18,
              let mantissa = UInt64(whole + fraction) else { return nil }
        // bytes = mantissa × multiplier / 10^decimals, without overflowing in between.
        let scale = (0..<fraction.count).reduce(UInt64(1)) { value, _ in value * 10 }
        let product = mantissa.multipliedFullWidth(by: multiplier)
        guard product.high < scale else { return nil }
        return scale.dividingFullWidth(product).quotient
    }

    private static func multiplier(_ unit: String) -> UInt64? {
        var unit = Substring(unit)
        if unit.hasSuffix("b") { unit = unit.dropLast() }
        guard let prefix = unit.first else { return 1 }
        guard let power = ["k", "m", "g", "t"].firstIndex(of: prefix) else { return nil }
        switch unit.dropFirst() {
        case "": return (0...power).reduce(1) { value, _ in value * 1000 }
        case "i": return (0...power).reduce(1) { value, _ in value * 1024 }
        default: return nil
        }
    }
}
