// The system calls the stress workers make on the mount, each throwing a
// StressFailure that names the call, the path and the errno.

import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct StressFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// "`call` `path`: strerror(errno)", with the errno number kept for callers that accept some.
    static func errno(_ call: String, _ path: String) -> StressFailure {
        StressFailure("\(call) \(path): \(String(cString: strerror(Glibc.errno))) (errno \(Glibc.errno))")
    }
}

enum PosixCalls {
    static func readFile(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StressFailure.errno("open", path) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 128 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count >= 0 else { throw StressFailure.errno("read", path) }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    /// `length` bytes from `offset` (fewer at the end of the file) by pread.
    static func readRange(_ path: String, offset: Int, length: Int) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StressFailure.errno("open", path) }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: length)
        var done = 0
        while done < length {
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, length - done, off_t(offset + done)) }
            guard count >= 0 else { throw StressFailure.errno("pread", path) }
            if count == 0 { break }
            done += count
        }
        return Array(bytes[..<done])
    }

    /// open(flags), pwrite of `bytes` at `offset` (ignored with O_APPEND), close.
    static func write(_ path: String, flags: Int32, offset: Int, _ bytes: [UInt8]) throws {
        let descriptor = open(path, flags | O_WRONLY | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StressFailure.errno("open", path) }
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                flags & O_APPEND != 0 ? Glibc.write(descriptor, buffer.baseAddress! + done, bytes.count - done)
                    : pwrite(descriptor, buffer.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            guard count > 0 else {
                let failure = StressFailure.errno("write", path)
                close(descriptor)
                throw failure
            }
            done += count
        }
        guard close(descriptor) == 0 else { throw StressFailure.errno("close", path) }
    }

    static func truncate(_ path: String, to size: Int) throws {
        guard Glibc.truncate(path, off_t(size)) == 0 else { throw StressFailure.errno("truncate", path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw StressFailure.errno("rename", "\(from) to \(to)") }
    }

    static func unlink(_ path: String) throws {
        guard Glibc.unlink(path) == 0 else { throw StressFailure.errno("unlink", path) }
    }

    static func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 else { throw StressFailure.errno("mkdir", path) }
    }

    static func removeDirectory(_ path: String) throws {
        guard rmdir(path) == 0 else { throw StressFailure.errno("rmdir", path) }
    }

    static func status(_ path: String) throws -> stat {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw StressFailure.errno("lstat", path) }
        return info
    }

    static func setAttribute(_ path: String, _ name: String, _ value: [UInt8]) throws {
        guard setxattr(path, name, value, value.count, 0) == 0 else { throw StressFailure.errno("setxattr \(name)", path) }
    }

    /// nil when the file has no such attribute.
    static func attribute(_ path: String, _ name: String) throws -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(path, name, &value, value.count)
        if count < 0 && Glibc.errno == ENODATA { return nil }
        guard count >= 0 else { throw StressFailure.errno("getxattr \(name)", path) }
        return Array(value[..<count])
    }

    /// The names in a directory, without "." and "..".
    static func names(in path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw StressFailure.errno("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Every node below `root` by readdir and lstat: relative path and type
    /// ("-", "d", "l", "?"), failing on the first error.
    static func walk(_ root: String) throws -> [String: Character] {
        var found: [String: Character] = [:]
        var pending = [""]
        while let relative = pending.popLast() {
            let path = relative.isEmpty ? root : root + "/" + relative
            for name in try names(in: path) {
                let child = relative.isEmpty ? name : relative + "/" + name
                let mode = try status(root + "/" + child).st_mode & S_IFMT
                let type: Character = switch mode {
                case S_IFREG: "-"
                case S_IFDIR: "d"
                case S_IFLNK: "l"
                default: "?"
                }
                found[child] = type
                if type == "d" { pending.append(child) }
            }
        }
        return found
    }
}
