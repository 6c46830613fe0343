// The medium of a stress run: an image of three sessions made by xorriso,
// with read-only "medium files" under /base (known bytes the readers check)
// and a starting subtree /wN for each writer, and the host tree it came from.

import Foundation

struct StressImage {
    let image: String
    /// The host tree equal to the newest session.
    let source: String

    /// Base files: their paths below /base and their bytes.
    let baseFiles: [String: [UInt8]]

    init(in dir: TemporaryDirectory, writers: Int) throws {
        let root = try IsofuseMount.newDirectory(in: dir, named: "stress-medium")
        let image = root + "/image.iso", source = root + "/source"
        var files: [String: [UInt8]] = [:]
        func base(_ name: String, size: Int, seed: UInt64) throws -> String {
            try Fixtures.writeRandomFile(source + "/base/" + name, count: size, seed: seed)
            files[name] = Array(try Data(contentsOf: URL(fileURLWithPath: source + "/base/" + name)))
            return source + "/base/" + name
        }
        // Session 1: half the base files and each writer's starting subtree.
        for index in 0..<4 { _ = try base("one/m\(index).bin", size: 200_000 + index * 300_000, seed: 100 + UInt64(index)) }
        for writer in 0..<writers {
            try Fixtures.writeRandomFile(source + "/w\(writer)/start.bin", count: 70_000, seed: 200 + UInt64(writer))
            try Fixtures.writeRandomFile(source + "/w\(writer)/d0/nested.bin", count: 5_000, seed: 300 + UInt64(writer))
        }
        try Self.commitSession(image, ["-map", source, "/"])
        // Session 2: more base files; session 3: a bigger one.
        var added: [String] = []
        for index in 0..<4 {
            added += ["-map", try base("two/m\(index).bin", size: 100_000 + index * 250_000, seed: 400 + UInt64(index)),
                      "/base/two/m\(index).bin"]
        }
        try Self.commitSession(image, added)
        try Self.commitSession(image, ["-map", try base("three/big.bin", size: 2_500_000, seed: 500), "/base/three/big.bin"])
        self.image = image
        self.source = source
        baseFiles = files
    }

    /// What writer `index`'s subtree holds on the medium.
    func startingModel(writer index: Int) throws -> SubtreeModel {
        let top = source + "/w\(index)"
        var model = SubtreeModel()
        for (path, type) in try PosixCalls.walk(top) {
            if type == "d" {
                model.directories.insert(path)
            } else {
                model.files[path] = .init(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: top + "/" + path))))
            }
        }
        return model
    }

    private static func commitSession(_ image: String, _ commands: [String]) throws {
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-for_backup", "-dev", "stdio:" + image] + commands + ["-commit"],
                        environment: Xorriso.cLocale)
    }
}
