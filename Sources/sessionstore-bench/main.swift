// Measures SessionStore alone (no FUSE, no staging) on an image, for bench/run:
//   sessionstore-bench tree IMAGE             load the newest tree: time, nodes, bytes per node
//   sessionstore-bench append IMAGE HOSTDIR   append a session adding every file of HOSTDIR under /bench
// Prints one line of `key=value` pairs.

import Foundation
import SessionStore
import SystemPackage

func rssBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return (ContinuousClock.now - start) / .seconds(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: sessionstore-bench tree|append IMAGE [HOSTDIR]\n".utf8))
    exit(2)
}
let drive = try Drive(DriveAddress(parsing: arguments[2]))
switch arguments[1] {
case "tree":
    _ = try drive.medium()
    let before = rssBytes()
    var tree: Tree?
    let time = try seconds { tree = try drive.loadTree() }
    let loaded = tree!
    _ = try drive.medium()   // waits for libisofs' tree, freed in the background, to be gone
    let rss = rssBytes() - before
    print("nodes=\(loaded.nodeCount) load_s=\(time) footprint_bytes_per_node=\(loaded.memoryFootprint / loaded.nodeCount) rss_bytes_per_node=\(rss / loaded.nodeCount)")
case "append":
    let host = arguments[3]
    let now = Timestamp(seconds: Int64(Date().timeIntervalSince1970))
    var operations: [ChangeSet.Operation] = [.add(path: "/bench", content: .directory, metadata: Metadata(
        permissions: 0o755, uid: 0, gid: 0, accessTime: now, modificationTime: now, changeTime: now))]
    var bytes: UInt64 = 0
    let walker = FileManager.default.enumerator(atPath: host)!
    while let relative = walker.nextObject() as? String {
        let attributes = walker.fileAttributes!
        let content: ChangeSet.Content
        switch attributes[.type] as? FileAttributeType {
        case .typeDirectory: content = .directory
        case .typeSymbolicLink: content = .symlink(target: Array(try FileManager.default.destinationOfSymbolicLink(atPath: host + "/" + relative).utf8))
        default:
            content = .file(FilePath(host + "/" + relative))
            bytes += attributes[.size] as? UInt64 ?? 0
        }
        operations.append(.add(path: MediumPath("/bench/" + relative), content: content,
                               metadata: Metadata(permissions: 0o644, uid: 0, gid: 0, accessTime: now,
                                                  modificationTime: now, changeTime: now)))
    }
    // The read-back check of the new session's tags is timed apart: xorriso does none.
    let start = ContinuousClock.now
    var checkStart: ContinuousClock.Instant?
    try drive.append(ChangeSet(operations)) { progress in
        if progress.phase == .checking && checkStart == nil { checkStart = .now }
    }
    let write = ((checkStart ?? .now) - start) / .seconds(1)
    let check = (ContinuousClock.now - (checkStart ?? .now)) / .seconds(1)
    print("bytes=\(bytes) append_s=\(write) check_s=\(check) mb_per_s=\(Double(bytes) / write / 1e6)")
default:
    exit(2)
}
