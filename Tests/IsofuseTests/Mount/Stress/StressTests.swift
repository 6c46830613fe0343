// The stress run in `make test`: a short one (ISOFUSE_STRESS_SECONDS, 40 s by
// default); scripts/stress.sh runs it for minutes.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable, "needs /dev/fuse"))
struct StressTests {
    @Test func readersWritersListingsAndCommitsAtOnceNeitherHangNorLoseBytes() throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = environment["ISOFUSE_STRESS_SECONDS"].flatMap(Double.init) ?? 40
        let seed = environment["ISOFUSE_STRESS_SEED"].flatMap(UInt64.init) ?? 1
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var configuration = StressConfiguration(seconds: seconds, roundSeconds: seconds < 120 ? seconds / 2 : 60, seed: seed)
        func number(_ name: String) -> Int? { environment["ISOFUSE_STRESS_" + name].flatMap(Int.init) }
        configuration.readers = number("READERS") ?? configuration.readers
        configuration.writers = number("WRITERS") ?? configuration.writers
        configuration.listers = number("LISTERS") ?? configuration.listers
        let run = try StressRun(configuration, in: dir)
        let report = run.run()
        print("stress (seed \(seed)): \(report)")
        #expect(report.failures.isEmpty, "\(report.failures.joined(separator: "\n"))")
        #expect(report.counts["commits", default: 0] >= 2 && report.counts["medium reads", default: 0] > 0
                && report.counts["check", default: 0] > 0)
    }
}
