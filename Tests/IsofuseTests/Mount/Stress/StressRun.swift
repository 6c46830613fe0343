// A stress run on a real mount: rounds of readers, writers, listers, a
// prober and a committer working at once, watched for hangs. Between rounds
// everything stops, a last commit burns what is staged, the mount is
// unmounted, xorriso checks every MD5, and both the remounted tree and the
// image's newest session must equal what the readers and writers expect.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct StressConfiguration {
    var seconds: Double
    var roundSeconds: Double
    var readers = 3
    var writers = 3
    var listers = 1
    /// Seconds between the commits fired during a round.
    var commitInterval = 4.0
    /// A worker without progress this long is hung.
    var hangSeconds = 60.0
    var seed: UInt64 = 1
}

struct StressReport: CustomStringConvertible {
    var seconds: Double = 0
    var rounds = 0
    var counts: [String: Int] = [:]
    var failures: [String] = []

    var operations: Int { counts.filter { $0.key != "commits" }.values.reduce(0, +) }

    var description: String {
        let kinds = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return String(format: "%.0f s, %d rounds, %d operations, %d commits (%@), %d failures",
                      seconds, rounds, operations, counts["commits"] ?? 0, kinds, failures.count)
    }
}

final class StressRun {
    let configuration: StressConfiguration
    private let dir: TemporaryDirectory
    private let medium: StressImage
    private var mount: IsofuseMount
    private let writers: [StressWriter]
    private let counts = StressCounts()
    private let failures = StressFailures()

    init(_ configuration: StressConfiguration, in dir: TemporaryDirectory) throws {
        self.configuration = configuration
        self.dir = dir
        let medium = try StressImage(in: dir, writers: configuration.writers)
        self.medium = medium
        writers = try (0..<configuration.writers).map { index in
            StressWriter(top: "w\(index)", model: try medium.startingModel(writer: index), seed: configuration.seed &* 1000 &+ UInt64(index))
        }
        mount = try IsofuseMount(medium.image, in: dir)
    }

    /// Runs rounds until the time is up or something fails; always unmounts.
    func run() -> StressReport {
        let start = Date()
        var report = StressReport()
        defer { mount.cleanUp() }
        while Date().timeIntervalSince(start) < configuration.seconds && failures.all.isEmpty {
            let left = configuration.seconds - Date().timeIntervalSince(start)
            round(seconds: min(configuration.roundSeconds, max(left, 5)))
            report.rounds += 1
            guard failures.all.isEmpty else { break }
            do {
                try settle()
            } catch {
                failures.record("after round \(report.rounds): \(error)")
            }
        }
        report.seconds = Date().timeIntervalSince(start)
        report.counts = counts.all
        for writer in writers {
            for (kind, count) in writer.counts { report.counts[kind, default: 0] += count }
        }
        report.failures = failures.all
        return report
    }

    // MARK: A round

    private func round(seconds: Double) {
        let stop = StressSignal()
        let mountpoint = mount.mountpoint
        let steps = StressSteps(mountpoint: mountpoint, medium: medium, counts: counts)
        let seed = configuration.seed &+ UInt64(counts.all["commits"] ?? 0) &* 7919
        var workers: [StressWorker] = []
        for index in 0..<configuration.readers {
            let random = RandomBox(seed: seed &+ UInt64(index))
            workers.append(StressWorker("reader \(index)") { try steps.read(&random.generator) })
        }
        for writer in writers {
            workers.append(StressWorker("writer \(writer.top)") { try writer.step(mountpoint) })
        }
        for index in 0..<configuration.listers {
            let random = RandomBox(seed: seed &+ 100 &+ UInt64(index))
            workers.append(StressWorker("lister \(index)") { try steps.list(&random.generator) })
        }
        let probeRandom = RandomBox(seed: seed &+ 200)
        workers.append(StressWorker("prober") { try steps.probe(&probeRandom.generator) })
        let counts = counts, interval = configuration.commitInterval, hang = configuration.hangSeconds
        workers.append(StressWorker("committer") {
            Self.sleep(interval, unless: stop)
            guard !stop.isRaised else { return }
            try Self.commit(mountpoint, timeout: hang * 2)
            counts.add("commits")
        })

        for worker in workers { worker.start(stop: stop, failures: failures) }
        watch(workers, until: Date(timeIntervalSinceNow: seconds), stop: stop)
        stop.raise()
        watch(workers, until: .distantFuture, stop: stop)
    }

    /// Polls the workers until `deadline` (or, once `stop` is raised, until all
    /// are done). A worker without progress for `hangSeconds` is hung: its
    /// stacks are kept and the daemon is killed so that every worker returns.
    private func watch(_ workers: [StressWorker], until deadline: Date, stop: StressSignal) {
        var seen = workers.map { ($0.steps, Date()) }
        while Date() < deadline {
            if stop.isRaised && workers.allSatisfy({ $0.isDone }) { return }
            Thread.sleep(forTimeInterval: 0.25)
            for (index, worker) in workers.enumerated() where !worker.isDone {
                let progress = worker.steps
                if progress != seen[index].0 {
                    seen[index] = (progress, Date())
                } else if Date().timeIntervalSince(seen[index].1) > configuration.hangSeconds {
                    let stacks = StressHang.capture(daemon: mount.daemon)
                    failures.record("\(worker.name) made no progress for \(Int(configuration.hangSeconds)) s; stacks in \(stacks)")
                    stop.raise()
                    // Every request still waiting fails now (ENOTCONN), so every worker returns.
                    try? mount.killDaemon()
                    seen = workers.map { ($0.steps, Date()) }
                }
            }
        }
    }

    // MARK: Between rounds

    /// A last commit, unmount, xorriso's MD5 check, remount; the tree on the
    /// mount and in the image must be what the workers expect.
    private func settle() throws {
        try Self.commit(mount.mountpoint, timeout: configuration.hangSeconds)
        counts.add("commits")
        let status = try mount.status()
        guard status.added + status.changed + status.removed == 0 else {
            throw StressFailure("still staged after the last commit: \(status)")
        }
        let unmount = try mount.unmount()
        guard unmount.status == 0 else { throw StressFailure("isofuse unmount: \(unmount.stderr)") }
        guard try Xorriso.checkMD5(image: medium.image) else { throw StressFailure("xorriso -check_md5_r found a mismatch") }

        let extracted = try IsofuseMount.newDirectory(in: dir, named: "extracted")
        defer { try? FileManager.default.removeItem(atPath: extracted) }
        try Xorriso.query(image: medium.image, options: ["-osirrox", "on"], ["-extract", "/", extracted + "/image"])
        try compare(extracted + "/image", "the image's newest session", tags: false)

        mount = try mount.remount()
        try compare(mount.mountpoint, "the remounted tree", tags: true)
    }

    /// The whole tree at `root` against the medium files and the writers' models, byte for byte.
    private func compare(_ root: String, _ what: String, tags: Bool) throws {
        var expected: [String: Character] = ["base": "d"]
        for name in medium.baseFiles.keys {
            expected[(("base/" + name) as NSString).deletingLastPathComponent] = "d"
            expected["base/" + name] = "-"
        }
        for writer in writers {
            expected[writer.top] = "d"
            for directory in writer.model.directories { expected[writer.top + "/" + directory] = "d" }
            for file in writer.model.files.keys { expected[writer.top + "/" + file] = "-" }
        }
        let found = try PosixCalls.walk(root)
        guard found == expected else {
            let missing = Set(expected.keys).subtracting(found.keys).sorted().prefix(10)
            let extra = Set(found.keys).subtracting(expected.keys).sorted().prefix(10)
            throw StressFailure("\(what) differs from the model: missing \(missing), extra \(extra), types differ "
                                + "\(expected.keys.filter { found[$0] != nil && found[$0] != expected[$0] }.prefix(10))")
        }
        for (name, bytes) in medium.baseFiles where try PosixCalls.readFile(root + "/base/" + name) != bytes {
            throw StressFailure("\(what): base/\(name) has wrong bytes")
        }
        for writer in writers {
            for (name, file) in writer.model.files {
                let path = root + "/" + writer.top + "/" + name
                guard try PosixCalls.readFile(path) == file.bytes else { throw StressFailure("\(what): \(writer.top)/\(name) has wrong bytes") }
                if tags, try PosixCalls.attribute(path, StressWriter.tagName) != file.tag {
                    throw StressFailure("\(what): \(writer.top)/\(name) has the wrong \(StressWriter.tagName)")
                }
            }
        }
    }

    // MARK: Helpers

    /// touch .isofuse/commit, then waits for that commit to end; it must succeed.
    private static func commit(_ mountpoint: String, timeout: Double) throws {
        let before = try IsofuseMount.status(of: mountpoint).commitSequence
        let touch = try Shell.run(["touch", mountpoint + "/.isofuse/commit"], environment: IsofuseMount.cLocale)
        guard touch.status == 0 else { throw StressFailure("touch .isofuse/commit: \(touch.stderr)") }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let status = try IsofuseMount.status(of: mountpoint)
            if status.commitSequence > before && status.commitState != "running" {
                guard status.commitState == "succeeded" else {
                    throw StressFailure("commit \(status.commitSequence) \(status.commitState): \(status.commitMessage)")
                }
                return
            }
            guard Date() < deadline else { throw StressFailure("the commit did not end in \(Int(timeout)) s: \(status)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private static func sleep(_ seconds: Double, unless stop: StressSignal) {
        let end = Date(timeIntervalSinceNow: seconds)
        while Date() < end && !stop.isRaised { Thread.sleep(forTimeInterval: 0.05) }
    }
}

/// A generator for one worker thread's closure.
private final class RandomBox: @unchecked Sendable {
    var generator: SeededGenerator
    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }
}

/// What a hung run leaves for diagnosis: every thread's stack in the daemon
/// (gdb) and the kernel stacks of the daemon's and the test's threads.
enum StressHang {
    /// Writes the stacks to a file that outlives the test and returns its path.
    static func capture(daemon: Int32) -> String {
        var text = "== gdb -p \(daemon): thread apply all bt\n"
        if let gdb = try? Shell.run(["timeout", "120", "gdb", "-p", String(daemon), "-batch", "-ex", "thread apply all bt"]) {
            text += gdb.stdout + gdb.stderr
        } else {
            text += "(gdb did not run)\n"
        }
        for (who, pid) in [("daemon", daemon), ("test process", getpid())] {
            text += "\n== kernel stacks of the \(who) (\(pid))\n"
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            for task in tasks.sorted() {
                let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? "?\n"
                let stack = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stack", encoding: .utf8)) ?? ""
                text += "-- \(task) \(name)\(stack)"
            }
        }
        let path = "/tmp/isofuse-stress-hang-\(daemon)-\(Int(Date().timeIntervalSince1970)).txt"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
