// Real ISO images for tests, made by xorriso and genisoimage from host trees.

import Foundation

/// A fresh temporary directory under /tmp/isofuse-tests/, removed by remove().
final class TemporaryDirectory: Sendable {
    static let base = "/tmp/isofuse-tests"
    let path: String

    init() throws {
        path = Self.base + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: Self.base, withIntermediateDirectories: true)
        // Not intermediate: should the name exist already, fail rather than share it.
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    /// path + "/" + relative
    func url(_ relative: String) -> String {
        path + "/" + relative
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

enum Fixtures {
    /// Writes `count` bytes of deterministic pseudo-random data (seeded) to path,
    /// making missing parent directories.
    static func writeRandomFile(_ path: String, count: Int, seed: UInt64, mode: Int = 0o644) throws {
        var generator = SeededGenerator(seed: seed)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            withUnsafeBytes(of: generator.next().littleEndian) { bytes += $0 }
        }
        try write(Data(bytes.prefix(count)), to: path, mode: mode)
    }

    struct ThreeSessions {
        var image: String
        /// Host directory whose content equals session 3 (path for path, byte for byte).
        var source: String
    }

    /// An image of 3 sessions by xorriso, volume ids "ONE", "TWO", "THREE".
    ///
    /// Session 1 maps the tree of `sessionOneTree`; session 2 adds /added/new.txt and
    /// /docs/added.bin, removes /docs/obsolete.txt and renames "/dir with spaces" to
    /// "/renamed dir"; session 3 gives /docs/changing.txt new content and mode 0640.
    /// Each change is made to the host tree and mirrored by an xorriso command, so that
    /// `source` always holds what the newest session holds.
    static func makeThreeSessionImage(in dir: TemporaryDirectory) throws -> ThreeSessions {
        let root = try newSubdirectory(in: dir, named: "three-sessions")
        let image = root + "/image.iso", source = root + "/source"

        try sessionOneTree(at: source)
        try commitSession(to: image, volumeID: "ONE", ["-map", source, "/"])

        try write("new in session two\n", to: source + "/added/new.txt")
        try writeRandomFile(source + "/docs/added.bin", count: 10_000, seed: 2)
        try FileManager.default.removeItem(atPath: source + "/docs/obsolete.txt")
        try FileManager.default.moveItem(atPath: source + "/dir with spaces", toPath: source + "/renamed dir")
        try commitSession(to: image, volumeID: "TWO", [
            "-map", source + "/added", "/added",
            "-map", source + "/docs/added.bin", "/docs/added.bin",
            // Commands taking a list of paths end it with "--"; else they would eat what follows.
            "-rm", "/docs/obsolete.txt", "--",
            "-mv", "/dir with spaces", "/renamed dir", "--",
        ])

        // -map replaces the existing node, taking content and mode from the host file.
        try write("version three, longer than version one\n", to: source + "/docs/changing.txt", mode: 0o640)
        try commitSession(to: image, volumeID: "THREE", ["-map", source + "/docs/changing.txt", "/docs/changing.txt"])

        return ThreeSessions(image: image, source: source)
    }

    /// A single-session image made by genisoimage -R (Rock Ridge, no MD5s) from a small tree.
    static func makeGenisoimageImage(in dir: TemporaryDirectory) throws -> String {
        let root = try newSubdirectory(in: dir, named: "genisoimage")
        let image = root + "/image.iso", source = root + "/source"
        try write("made by genisoimage\n", to: source + "/plain.txt")
        try writeRandomFile(source + "/sub/data.bin", count: 50_000, seed: 3)
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "plain.txt")
        try Shell.check(["genisoimage", "-quiet", "-R", "-V", "GENISO", "-o", image, source])
        return image
    }

    // MARK: Helpers

    /// The tree of session 1: nested and empty directories, an empty file, a symlink, a
    /// hard link pair, a FIFO, names with spaces and non-ASCII UTF-8, a 300 KiB random
    /// file (the largest), modes 0600/0755, another owner, and a user xattr.
    private static func sessionOneTree(at source: String) throws {
        try write("Hello from session one.\n", to: source + "/docs/readme.txt")
        // setfattr is in Debian's package "attr".
        try Shell.check(["setfattr", "-n", "user.note", "-v", "hello", source + "/docs/readme.txt"])
        try write("deep down\n", to: source + "/docs/nested/deeper/leaf.txt")
        try write("removed in session two\n", to: source + "/docs/obsolete.txt")
        try write("version one\n", to: source + "/docs/changing.txt")
        try write("one file, two names\n", to: source + "/hardlink-a.txt")
        try FileManager.default.linkItem(atPath: source + "/hardlink-a.txt", toPath: source + "/docs/hardlink-b.txt")
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "docs/readme.txt")
        try makeDirectory(source + "/empty dir")
        try write("", to: source + "/empty.txt")
        try Shell.check(["mkfifo", "-m", "0644", source + "/fifo"])
        try write("apples\n", to: source + "/dir with spaces/Äpfel € naïve.txt")
        try write("nihongo\n", to: source + "/日本語.txt")
        try writeRandomFile(source + "/random.bin", count: 300 * 1024, seed: 1)
        try write("secret\n", to: source + "/private.txt", mode: 0o600)
        try write("#!/bin/sh\necho hello\n", to: source + "/script.sh", mode: 0o755)
        try write("someone else's\n", to: source + "/owned.txt")
        try FileManager.default.setAttributes([.ownerAccountID: 1000, .groupOwnerAccountID: 100],
                                              ofItemAtPath: source + "/owned.txt")
    }

    /// Appends one session to `image` (made when absent). -md5 on -for_backup records
    /// MD5s of every file and of the session, hard links, xattrs and ACLs.
    private static func commitSession(to image: String, volumeID: String, _ commands: [String]) throws {
        try Shell.check(["xorriso", "-no_rc", "-iso_rr_pattern", "off", "-md5", "on", "-for_backup",
                         "-dev", "stdio:" + image, "-volid", volumeID] + commands + ["-commit"],
                        environment: Xorriso.cLocale)
    }

    /// dir/name, or dir/name-2, -3, ... when taken, so a fixture can be made twice in one directory.
    private static func newSubdirectory(in dir: TemporaryDirectory, named name: String) throws -> String {
        var path = dir.url(name)
        var number = 1
        while FileManager.default.fileExists(atPath: path) {
            number += 1
            path = dir.url("\(name)-\(number)")
        }
        try makeDirectory(path)
        return path
    }

    /// Modes are set explicitly so that the trees do not depend on the umask.
    static func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
    }

    static func write(_ text: String, to path: String, mode: Int = 0o644) throws {
        try write(Data(text.utf8), to: path, mode: mode)
    }

    static func write(_ data: Data, to path: String, mode: Int = 0o644) throws {
        try makeDirectory((path as NSString).deletingLastPathComponent)
        try data.write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}

/// SplitMix64: small, fast and fully determined by its seed, so failures repeat.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
