// xorriso as the independent judge: what it sees in an image.
//
// Every query runs as
//   LANG=C LC_ALL=C xorriso -no_rc -backslash_codes encode_output -iso_rr_pattern off [options]
//       [-load session N] -indev stdio:IMAGE <command>
// -no_rc keeps the machine's xorriso startup files out. Under LANG=C and the default
// `-backslash_codes off` xorriso prints names as raw bytes, so a name with a newline
// would split a listing line; `encode_output` instead writes every control byte, every
// byte >= 0x7F and the backslash as a backslash code (\n, \303, \\ ...), which
// XorrisoText undoes. -iso_rr_pattern off makes a path with * ? [ mean itself.

import Foundation

enum Xorriso {
    struct TocEntry: Equatable, Sendable {
        var number: Int
        var start: UInt32
        var blocks: UInt32
        var volumeID: String
    }

    struct Entry: Equatable, Sendable {
        /// Absolute, "/" for root, decoded (no quoting, no backslash codes).
        var path: String
        /// "-" file, "d" dir, "l" symlink, "p" fifo, "c"/"b" devices, "s" socket.
        var type: Character
        /// rwx bits including setuid/setgid/sticky, e.g. 0o644.
        var permissions: UInt32
        var uid: UInt32
        var gid: UInt32
        /// xorriso's size column; 0 for devices, where that column is "major,minor".
        var size: UInt64
        /// For symlinks.
        var linkTarget: String?
    }

    struct UnexpectedOutput: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `xorriso -indev stdio:IMAGE -toc` (sessions only).
    static func toc(image: String) throws -> [TocEntry] {
        let output = try query(image: image, ["-toc"])
        return try output.split(separator: "\n").filter { $0.hasPrefix("ISO session") }.map(tocEntry)
    }

    /// Every node of the newest session (or session N), keyed by path, as
    /// `xorriso -find / -exec lsdl` shows it.
    static func list(image: String, session: Int? = nil) throws -> [String: Entry] {
        let output = try query(image: image, session: session, ["-find", "/", "-exec", "lsdl", "--"])
        var entries: [String: Entry] = [:]
        for line in output.split(separator: "\n") {
            let entry = try lsdlEntry(line)
            guard entries.updateValue(entry, forKey: entry.path) == nil else {
                throw UnexpectedOutput(description: "xorriso listed \(entry.path) twice")
            }
        }
        return entries
    }

    /// `-check_md5_r sorry / --` with -md5 on: true only when xorriso exits 0 and says
    /// the contents match. An image without any MD5 also exits 0 (with "Not a single
    /// file with MD5 checksum was found."); that is false, as nothing was proven.
    static func checkMD5(image: String, session: Int? = nil) throws -> Bool {
        let result = try Shell.run(command(image: image, session: session, options: ["-md5", "on"],
                                           ["-check_md5_r", "sorry", "/", "--"]),
                                   environment: cLocale)
        let said = result.stdout + result.stderr
        return result.status == 0 && said.contains("checksums match") && !said.contains("MISMATCH")
    }

    /// Extracts one file of the newest session to a host path (`-osirrox on -extract`).
    static func extract(image: String, path: String, to hostPath: String) throws {
        try query(image: image, options: ["-osirrox", "on"], ["-extract", path, hostPath])
    }

    /// The value of a user xattr of a node in the newest session (`-getfattr`), nil if absent.
    /// The output is getfattr's text format: "# file: …" then `name="value"` lines, the
    /// value always in backslash codes.
    static func xattr(image: String, path: String, name: String) throws -> String? {
        // Without -xattr on, xorriso does not load xattrs at all.
        let output = try query(image: image, options: ["-xattr", "on"], ["-getfattr", path, "--"])
        for line in output.split(separator: "\n") where !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            if XorrisoText.unescape(line[..<equals]) == name {
                return XorrisoText.words(line[line.index(after: equals)...]).first ?? ""
            }
        }
        return nil
    }

    // MARK: Running

    static let cLocale = ["LANG": "C", "LC_ALL": "C"]

    /// Runs one query and returns its stdout (the result channel); throws on failure.
    @discardableResult
    static func query(image: String, session: Int? = nil, options: [String] = [], _ arguments: [String]) throws -> String {
        try Shell.check(command(image: image, session: session, options: options, arguments), environment: cLocale).stdout
    }

    /// The argument vector: settings first (some, like -xattr, must precede loading the
    /// tree), then the session to load, then the drive, then the command.
    static func command(image: String, session: Int?, options: [String], _ arguments: [String]) -> [String] {
        // -load before -indev sets what the acquisition loads, so only that tree is read.
        let load = session.map { ["-load", "session", String($0)] } ?? []
        return ["xorriso", "-no_rc", "-backslash_codes", "encode_output", "-iso_rr_pattern", "off"]
            + options + load + ["-indev", "stdio:" + image] + arguments
    }

    // MARK: Parsing

    /// "ISO session  :   1 ,        32 ,        36s , ONE" (the volume id is unquoted
    /// and may hold commas and spaces, so only the first three commas separate; blanks
    /// around it are dropped, as ISO pads volume ids with them).
    static func tocEntry(_ line: Substring) throws -> TocEntry {
        let fields = line.drop { $0 != ":" }.dropFirst().split(separator: ",", maxSplits: 3)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count == 4, let number = Int(fields[0]), let start = UInt32(fields[1]),
              fields[2].hasSuffix("s"), let blocks = UInt32(fields[2].dropLast()) else {
            throw UnexpectedOutput(description: "xorriso -toc line: \(line)")
        }
        return TocEntry(number: number, start: start, blocks: blocks, volumeID: XorrisoText.unescape(fields[3]))
    }

    /// "-rw-r--r--    1 0        0               3 Nov 22 05:44 '/a/b.txt'", with
    /// " -> 'target'" after a symlink. The columns before the first quote never hold a
    /// quote (uid and gid are numeric), so the path starts there whatever the date looks like.
    static func lsdlEntry(_ line: Substring) throws -> Entry {
        let quote = line.firstIndex { $0 == "'" || $0 == "\"" } ?? line.endIndex
        let columns = line[..<quote].split(separator: " ")
        let names = XorrisoText.words(line[quote...])
        guard columns.count >= 5, columns[0].count >= 10, let type = columns[0].first,
              let uid = UInt32(columns[2]), let gid = UInt32(columns[3]),
              names.count == 1 || (names.count == 3 && names[1] == "->") else {
            throw UnexpectedOutput(description: "xorriso lsdl line: \(line)")
        }
        return Entry(path: names[0], type: type, permissions: permissions(columns[0]), uid: uid, gid: gid,
                     size: UInt64(columns[4]) ?? 0, linkTarget: names.count == 3 ? names[2] : nil)
    }

    /// The mode bits of an ls mode string like "-rwsr-x--T": a letter other than "-"
    /// sets the bit, except S/T (setuid/setgid/sticky without execute); s/S/t/T also
    /// set the special bit of their triad.
    static func permissions(_ mode: Substring) -> UInt32 {
        let letters = Array(mode.dropFirst().prefix(9))
        var bits: UInt32 = 0
        for (index, letter) in letters.enumerated() where !"-ST".contains(letter) {
            bits |= 1 << UInt32(8 - index)
        }
        let special: [(index: Int, bit: UInt32)] = [(2, 0o4000), (5, 0o2000), (8, 0o1000)]
        for (index, bit) in special where "sStT".contains(letters[index]) {
            bits |= bit
        }
        return bits
    }
}

/// Undoes xorriso's quoting and `-backslash_codes` output encoding.
enum XorrisoText {
    /// Splits text into words as xorriso quotes them: words are separated by unquoted
    /// blanks and may join '…' and "…" parts (a quote in a name is printed as
    /// '"'"'); backslash codes are decoded everywhere, as xorriso encodes inside quotes.
    static func words(_ text: some StringProtocol) -> [String] {
        var words: [String] = []
        var word: [UInt8] = []
        var inWord = false            // also true for a word of just ''
        var quote: UInt8?             // the open quotation mark
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            if quote == nil && (byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) {
                if inWord { words.append(String(decoding: word, as: UTF8.self)) }
                word = []
                inWord = false
                continue
            }
            inWord = true
            if byte == quote {
                quote = nil
            } else if byte == UInt8(ascii: "\\") {
                word += decodeEscape(&bytes)
            } else if quote == nil && (byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"")) {
                quote = byte
            } else {
                word.append(byte)
            }
        }
        if inWord { words.append(String(decoding: word, as: UTF8.self)) }
        return words
    }

    /// Decodes the backslash codes of unquoted text (such as a volume id in -toc).
    static func unescape(_ text: some StringProtocol) -> String {
        var decoded: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            decoded += byte == UInt8(ascii: "\\") ? decodeEscape(&bytes) : [byte]
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// One code after its backslash, consumed from `bytes`: \a \b \e \f \n \r \t \v \\,
    /// \ooo octal, \xhh hex, \cC control-C (man xorriso, -backslash_codes). Anything
    /// else stays as it was printed.
    static func decodeEscape(_ bytes: inout ArraySlice<UInt8>) -> [UInt8] {
        guard let code = bytes.first else { return [UInt8(ascii: "\\")] }
        if let byte = letterCodes[code] {
            bytes.removeFirst()
            return [byte]
        }
        if let byte = number(bytes.prefix(3), radix: 8) {
            bytes.removeFirst(3)
            return [byte]
        }
        if code == UInt8(ascii: "x"), let byte = number(bytes.dropFirst().prefix(2), radix: 16) {
            bytes.removeFirst(3)
            return [byte]
        }
        if code == UInt8(ascii: "c"), let control = bytes.dropFirst().first {
            bytes.removeFirst(2)
            return [control & 0x1F]
        }
        return [UInt8(ascii: "\\")]
    }

    private static let letterCodes: [UInt8: UInt8] = [
        UInt8(ascii: "a"): 7, UInt8(ascii: "b"): 8, UInt8(ascii: "e"): 27, UInt8(ascii: "f"): 12, UInt8(ascii: "n"): 10,
        UInt8(ascii: "r"): 13, UInt8(ascii: "t"): 9, UInt8(ascii: "v"): 11, UInt8(ascii: "\\"): 92,
    ]

    /// The byte written by `digits` (3 octal or 2 hex digits), nil if they are fewer or
    /// not all digits of `radix` (UInt8(_:radix:) alone would also take a sign).
    private static func number(_ digits: ArraySlice<UInt8>, radix: Int) -> UInt8? {
        let text = String(decoding: digits, as: UTF8.self)
        guard text.count == (radix == 8 ? 3 : 2), text.allSatisfy({ $0.isHexDigit }) else { return nil }
        return UInt8(text, radix: radix)
    }
}
