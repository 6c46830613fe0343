// The threads of a stress round and what each does in a loop: read medium
// files, write (StressWriter), list the tree, stat and read xattrs and
// session views, commit. A watchdog sees each one's progress.

import Foundation
import Synchronization

/// One thread of a round: runs `step` until told to stop or until a step throws.
final class StressWorker: Sendable {
    let name: String
    private let progress = Atomic<Int>(0)
    private let done = Atomic<Bool>(false)
    private let step: @Sendable () throws -> Void

    init(_ name: String, step: @escaping @Sendable () throws -> Void) {
        self.name = name
        self.step = step
    }

    /// Steps done so far (the watchdog's sign of life).
    var steps: Int { progress.load(ordering: .relaxed) }
    var isDone: Bool { done.load(ordering: .acquiring) }

    func start(stop: StressSignal, failures: StressFailures) {
        let thread = Thread { [self] in
            defer { done.store(true, ordering: .releasing) }
            while !stop.isRaised {
                do {
                    try step()
                } catch {
                    failures.record("\(name): \(error)")
                    stop.raise()
                    return
                }
                progress.add(1, ordering: .relaxed)
            }
        }
        thread.name = name
        thread.start()
    }
}

final class StressSignal: Sendable {
    private let raised = Atomic<Bool>(false)
    var isRaised: Bool { raised.load(ordering: .acquiring) }
    func raise() { raised.store(true, ordering: .releasing) }
}

final class StressFailures: Sendable {
    private let list = Mutex<[String]>([])
    var all: [String] { list.withLock { $0 } }
    func record(_ failure: String) { list.withLock { $0.append(failure) } }
}

/// Counts by kind of operation, from every thread.
final class StressCounts: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    var all: [String: Int] { counts.withLock { $0 } }
    func add(_ kind: String, _ count: Int = 1) { counts.withLock { $0[kind, default: 0] += count } }
}

/// The steps of the workers that do not write.
struct StressSteps: Sendable {
    let mountpoint: String
    let medium: StressImage
    let counts: StressCounts

    /// Reads a medium file, whole or a range, and compares it with its known bytes.
    func read(_ random: inout SeededGenerator) throws {
        let (name, expected) = medium.baseFiles.randomElement(using: &random)!
        let path = mountpoint + "/base/" + name
        if Bool.random(using: &random) {
            guard try PosixCalls.readFile(path) == expected else { throw StressFailure("\(path): wrong bytes read") }
        } else {
            let offset = Int.random(in: 0..<expected.count, using: &random)
            let length = Int.random(in: 1...min(1 << 20, expected.count - offset), using: &random)
            guard try PosixCalls.readRange(path, offset: offset, length: length) == Array(expected[offset..<offset + length]) else {
                throw StressFailure("\(path): bytes \(offset)..<\(offset + length) are wrong")
            }
        }
        counts.add("medium reads")
    }

    /// `ls -lR` or `find` of the whole mount: every medium file listed, and no
    /// error but those of a tree changing under it: entries vanishing, and a
    /// directory met inside itself (a writer moved the directory being read
    /// out of its parent, then the parent into it; ext4 gives the same).
    func list(_ random: inout SeededGenerator) throws {
        let command = Bool.random(using: &random) ? ["ls", "-lR", mountpoint] : ["find", mountpoint, "-printf", "%p %s %m\n"]
        let result = try Shell.run(command, environment: IsofuseMount.cLocale)
        let races = ["No such file or directory", "File system loop detected", "not listing already-listed directory"]
        let unexpected = result.stderr.split(separator: "\n").filter { line in !races.contains { line.contains($0) } }
        guard result.status <= 1, unexpected.isEmpty else {
            throw StressFailure("\(command.joined(separator: " ")) exited \(result.status): \(unexpected.prefix(5).joined(separator: "\n"))")
        }
        for name in medium.baseFiles.keys where !result.stdout.contains((name as NSString).lastPathComponent) {
            throw StressFailure("\(command.joined(separator: " ")) did not list \(name)")
        }
        counts.add("listings")
    }

    /// stat of a medium file, the status xattr (JSON), a session view's listing and a read from it.
    func probe(_ random: inout SeededGenerator) throws {
        let (name, expected) = medium.baseFiles.randomElement(using: &random)!
        let size = Int(try PosixCalls.status(mountpoint + "/base/" + name).st_size)
        guard size == expected.count else { throw StressFailure("stat of base/\(name) says \(size) bytes, not \(expected.count)") }

        let status = mountpoint + "/.isofuse/status"
        guard let json = try PosixCalls.attribute(status, "user.isofuse.status"),
              (try? JSONSerialization.jsonObject(with: Data(json))) is [String: Any] else {
            throw StressFailure("\(status): the xattr user.isofuse.status is no JSON object")
        }
        let sessions = try PosixCalls.names(in: mountpoint + "/.isofuse/sessions")
        guard sessions.contains("1") && sessions.contains("3") && sessions.contains("latest") else {
            throw StressFailure(".isofuse/sessions lists \(sessions.sorted())")
        }
        // Session 1 has the files of base/one, unchanged since.
        let one = medium.baseFiles.filter { $0.key.hasPrefix("one/") }.randomElement(using: &random)!
        guard try PosixCalls.readFile(mountpoint + "/.isofuse/sessions/1/base/" + one.key) == one.value else {
            throw StressFailure(".isofuse/sessions/1/base/\(one.key): wrong bytes read")
        }
        counts.add("probes")
    }
}
