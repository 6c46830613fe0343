// A writer of the stress run: it owns one top directory of the mount and
// keeps a model of what that subtree must hold, byte for byte. Each step is
// one random change (create, append, overwrite, truncate, rename, unlink,
// mkdir, directory rename, rmdir, xattr) or a check of one file against the
// model, made with plain system calls on the mount.

import Foundation

/// What a writer's subtree must hold. Paths are relative to the subtree ("d3/f12").
struct SubtreeModel: Equatable {
    struct File: Equatable {
        var bytes: [UInt8]
        /// The value of user.stress, if set.
        var tag: [UInt8]?
    }

    var files: [String: File] = [:]
    /// Every directory below the subtree's top ("" is the top itself and not listed).
    var directories: Set<String> = []

    /// Directories a new entry may go into: the top and every directory.
    var parents: [String] {
        [""] + directories.sorted()
    }

    static func join(_ parent: String, _ name: String) -> String {
        parent.isEmpty ? name : parent + "/" + name
    }

    /// A directory and everything below it move to a new path.
    mutating func moveDirectory(_ from: String, to: String) {
        func moved(_ path: String) -> String? {
            if path == from { return to }
            return path.hasPrefix(from + "/") ? to + path.dropFirst(from.count) : nil
        }
        directories = Set(directories.map { moved($0) ?? $0 })
        files = Dictionary(uniqueKeysWithValues: files.map { (moved($0.key) ?? $0.key, $0.value) })
    }

    /// Whether `path` is `directory` or below it.
    static func isWithin(_ path: String, _ directory: String) -> Bool {
        path == directory || path.hasPrefix(directory + "/")
    }
}

/// Used by one thread at a time: its worker thread during a round, the run's
/// thread between rounds.
final class StressWriter: @unchecked Sendable {
    static let tagName = "user.stress"
    static let maxFiles = 40
    static let maxDirectories = 8
    static let maxFileSize = 192 * 1024

    /// The subtree's top, relative to the mount ("w0").
    let top: String
    private(set) var model: SubtreeModel
    private var random: SeededGenerator
    private var nextName = 0
    private(set) var counts: [String: Int] = [:]

    init(top: String, model: SubtreeModel, seed: UInt64) {
        self.top = top
        self.model = model
        random = SeededGenerator(seed: seed)
    }

    /// The last steps, for the report of a failure.
    private var history: [String] = []

    /// One random change or check on the mount at `mountpoint`; throws on any
    /// error or any difference from the model, with the steps that led to it.
    func step(_ mountpoint: String) throws {
        do {
            try randomStep(mountpoint)
        } catch {
            throw StressFailure("\(error)\n  after: " + history.suffix(12).joined(separator: "; "))
        }
    }

    private func randomStep(_ mountpoint: String) throws {
        let root = mountpoint + "/" + top
        func path(_ relative: String) -> String { root + "/" + relative }
        let files = model.files.keys.sorted()
        let file = files.randomElement(using: &random)
        // With no file yet, the only step is making one.
        let choice = file == nil ? 0 : Int.random(in: 0..<100, using: &random)

        switch choice {
        case 0..<14 where files.count < Self.maxFiles:
            let name = SubtreeModel.join(model.parents.randomElement(using: &random)!, fresh("f"))
            let bytes = randomBytes(Int.random(in: 0...Self.maxFileSize / 2, using: &random))
            try PosixCalls.write(path(name), flags: O_CREAT | O_EXCL, offset: 0, bytes)
            model.files[name] = .init(bytes: bytes)
            count("create", "\(name) \(bytes.count)")
        case 0..<14:
            try check(file!, path(file!))
        case 14..<26:
            let name = file!
            let bytes = randomBytes(Int.random(in: 1...16 * 1024, using: &random))
            guard model.files[name]!.bytes.count + bytes.count <= Self.maxFileSize else { return try check(name, path(name)) }
            try PosixCalls.write(path(name), flags: O_APPEND, offset: 0, bytes)
            model.files[name]!.bytes += bytes
            count("append", "\(name) +\(bytes.count)")
        case 26..<40:
            let name = file!
            let size = model.files[name]!.bytes.count
            let offset = Int.random(in: 0...size, using: &random)
            let bytes = randomBytes(Int.random(in: 1...32 * 1024, using: &random))
            guard offset + bytes.count <= Self.maxFileSize else { return try check(name, path(name)) }
            try PosixCalls.write(path(name), flags: 0, offset: offset, bytes)
            var content = model.files[name]!.bytes
            if content.count < offset + bytes.count { content += [UInt8](repeating: 0, count: offset + bytes.count - content.count) }
            content.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            model.files[name]!.bytes = content
            count("overwrite", "\(name) \(offset)+\(bytes.count)")
        case 40..<48:
            let name = file!
            let size = Int.random(in: 0...Self.maxFileSize / 2, using: &random)
            try PosixCalls.truncate(path(name), to: size)
            var content = model.files[name]!.bytes
            content = size <= content.count ? Array(content[..<size]) : content + [UInt8](repeating: 0, count: size - content.count)
            model.files[name]!.bytes = content
            count("truncate", "\(name) \(size)")
        case 48..<58:
            // Onto a new name, or over another file (which it replaces).
            let name = file!
            let target = Bool.random(using: &random) ? files.randomElement(using: &random)!
                : SubtreeModel.join(model.parents.randomElement(using: &random)!, fresh("f"))
            try PosixCalls.rename(path(name), path(target))
            if target != name {
                model.files[target] = model.files[name]
                model.files[name] = nil
            }
            count("rename", "\(name) \(target)")
        case 58..<64:
            try PosixCalls.unlink(path(file!))
            model.files[file!] = nil
            count("unlink", file!)
        case 64..<68 where model.directories.count < Self.maxDirectories:
            let name = SubtreeModel.join(model.parents.randomElement(using: &random)!, fresh("d"))
            try PosixCalls.makeDirectory(path(name))
            model.directories.insert(name)
            count("mkdir", name)
        case 64..<72:
            try renameDirectory(root)
        case 72..<75:
            // rmdir of a directory with nothing in it, if there is one.
            let empty = model.directories.sorted().filter { directory in
                !model.files.keys.contains { SubtreeModel.isWithin($0, directory) }
                    && !model.directories.contains { $0 != directory && SubtreeModel.isWithin($0, directory) }
            }
            guard let directory = empty.randomElement(using: &random) else { return }
            try PosixCalls.removeDirectory(path(directory))
            model.directories.remove(directory)
            count("rmdir", directory)
        case 75..<82:
            let name = file!
            let tag = Array("tag \(fresh("t"))".utf8)
            try PosixCalls.setAttribute(path(name), Self.tagName, tag)
            model.files[name]!.tag = tag
            guard try PosixCalls.attribute(path(name), Self.tagName) == tag else {
                throw StressFailure("\(top)/\(name): user.stress is not what was just set")
            }
            count("xattr", name)
        default:
            try check(file!, path(file!))
        }
    }

    /// Renames a directory to a new name in a directory not below it.
    private func renameDirectory(_ root: String) throws {
        guard let directory = model.directories.sorted().randomElement(using: &random) else { return }
        let parents = model.parents.filter { !SubtreeModel.isWithin($0, directory) }
        let target = SubtreeModel.join(parents.randomElement(using: &random)!, fresh("d"))
        try PosixCalls.rename(root + "/" + directory, root + "/" + target)
        model.moveDirectory(directory, to: target)
        count("rename dir", "\(directory) \(target)")
    }

    /// Reads a file back (whole, or one range) and compares it with the model; stat's size too.
    private func check(_ name: String, _ path: String) throws {
        let expected = model.files[name]!.bytes
        let size = Int(try PosixCalls.status(path).st_size)
        guard size == expected.count else {
            let read = (try? PosixCalls.readFile(path))?.count ?? -1
            Thread.sleep(forTimeInterval: 2)   // past the kernel's attribute cache
            let later = (try? PosixCalls.status(path)).map { Int($0.st_size) } ?? -1
            throw StressFailure("\(top)/\(name): stat says \(size) bytes, the model \(expected.count) (read gives \(read), "
                                + "stat 2 s later \(later)); its steps: "
                                + history.filter { $0.contains((name as NSString).lastPathComponent) }.suffix(8).joined(separator: "; "))
        }
        if Bool.random(using: &random) || expected.isEmpty {
            let bytes = try PosixCalls.readFile(path)
            guard bytes == expected else {
                throw StressFailure("\(top)/\(name): \(bytes.count) bytes read differ from the model's \(expected.count) "
                                    + "from byte \(zip(bytes, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(bytes.count, expected.count))")
            }
        } else {
            let offset = Int.random(in: 0..<expected.count, using: &random)
            let length = Int.random(in: 1...expected.count - offset, using: &random)
            guard try PosixCalls.readRange(path, offset: offset, length: length) == Array(expected[offset..<offset + length]) else {
                throw StressFailure("\(top)/\(name): bytes \(offset)..<\(offset + length) differ from the model")
            }
        }
        count("check", name)
    }

    private func fresh(_ prefix: String) -> String {
        nextName += 1
        return "\(prefix)\(nextName)"
    }

    private func randomBytes(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            withUnsafeBytes(of: random.next()) { bytes += $0 }
        }
        return Array(bytes.prefix(count))
    }

    private func count(_ operation: String, _ detail: String) {
        counts[operation, default: 0] += 1
        history.append(operation + " " + detail)
        if history.count > 100 { history.removeFirst(50) }
    }
}
