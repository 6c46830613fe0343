// A few of scripts/crash-trials.sh's trials in every test run: the daemon
// killed with SIGKILL at a random moment of a commit, then xorriso's MD5
// check of every session, the same view after remounting, and a next commit
// whose session equals that view. (The note reports long runs of the script.)

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable, "needs /dev/fuse"))
struct CrashTrialTests {
    @Test func aDaemonKilledDuringACommitLosesNothing() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let trials = try Shell.run(["bash", root + "/scripts/crash-trials.sh", "4", IsofuseMount.isofuse],
                                   environment: IsofuseMount.cLocale)
        #expect(trials.status == 0, "\(trials.stdout)\(trials.stderr)")
        #expect(trials.stdout.contains("4 trials: 4 survived, 0 failed"), "\(trials.stdout)")
    }
}
