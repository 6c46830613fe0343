// Who may do what on a mount: with -o allow_other another user meets the
// permissions of a normal filesystem (the kernel checks them, as isofuse
// always mounts with default_permissions), may read the status but neither
// commit nor discard, and cannot look into the staging directory. The other
// user is `nobody`, entered with setpriv.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: IsofuseMount.fuseAvailable && getuid() == 0, "needs /dev/fuse and root"))
struct AccessTests {
    static let nobody: UInt32 = 65534

    /// Runs a command as `nobody` (no supplementary groups).
    static func asNobody(_ arguments: [String]) throws -> Shell.Result {
        try Shell.run(["setpriv", "--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", "--"] + arguments,
                      environment: IsofuseMount.cLocale)
    }

    /// An image with a root-only file, a root-owned 0755 directory and a 0777 one.
    static func makeImage(in dir: TemporaryDirectory) throws -> String {
        let source = dir.url("source"), image = dir.url("access.iso")
        try Fixtures.write("for root only\n", to: source + "/secret.txt", mode: 0o600)
        try Fixtures.write("for everyone\n", to: source + "/public/hello.txt", mode: 0o644)
        try Fixtures.makeDirectory(source + "/shared")
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: source + "/shared")
        try Shell.check(["xorriso", "-no_rc", "-md5", "on", "-for_backup", "-dev", "stdio:" + image, "-map", source, "/", "-commit"],
                        environment: Xorriso.cLocale)
        return image
    }

    @Test func anotherUserMeetsTheFilesPermissionsAndCannotCommitOrDiscard() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let mount = try IsofuseMount(try Self.makeImage(in: dir), in: dir, options: ["-o", "allow_other"])
        defer { mount.cleanUp() }
        func denied(_ arguments: [String], _ error: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try Self.asNobody(arguments)
            #expect(result.status != 0 && result.stderr.contains(error), "\(arguments): \(result.stderr)",
                    sourceLocation: sourceLocation)
        }

        #expect(try Self.asNobody(["cat", mount.path("public/hello.txt")]).stdout == "for everyone\n")
        try denied(["cat", mount.path("secret.txt")], "Permission denied")
        try denied(["touch", mount.path("public/new.txt")], "Permission denied")
        try denied(["rm", "-f", mount.path("public/hello.txt")], "Permission denied")
        try denied(["chmod", "0644", mount.path("secret.txt")], "Operation not permitted")
        try denied(["setfattr", "-n", "user.x", "-v", "1", mount.path("public/hello.txt")], "Permission denied")
        // A directory open to all takes the other user's files, owned by that user.
        #expect(try Self.asNobody(["mkdir", mount.path("shared/mine")]).status == 0)
        let mine = try FileManager.default.attributesOfItem(atPath: mount.path("shared/mine"))
        #expect(mine[.ownerAccountID] as? Int == Int(Self.nobody))

        // The control files: the status is for everyone, commit and discard for the owner.
        try denied(["touch", mount.path(".isofuse/commit")], "Permission denied")
        try denied(["sh", "-c", "echo close > " + mount.path(".isofuse/commit")], "Permission denied")
        try denied(["touch", mount.path(".isofuse/discard")], "Permission denied")
        let commit = try Self.asNobody([IsofuseMount.isofuse, "commit", mount.mountpoint])
        #expect(commit.status == 1 && commit.stderr.contains("Permission denied"), "\(commit.stderr)")
        #expect(commit.stderr.split(separator: "\n").count == 1)
        #expect(try Self.asNobody(["cat", mount.path(".isofuse/status")]).stdout.contains("1 added"))
        #expect(try Self.asNobody(["getfattr", "-n", "user.isofuse.status", mount.path(".isofuse/status")]).status == 0)
        #expect(try Self.asNobody([IsofuseMount.isofuse, "status", mount.mountpoint]).status == 0)
        try denied(["cat", mount.path(".isofuse/sessions/1/secret.txt")], "Permission denied")
        let status = try mount.status()
        #expect(status.sessions == 1 && status.commitSequence == 0 && status.added == 1)

        // Nor can the other user see what is staged.
        let staging = try #require(mount.staging)
        try denied(["ls", staging], "Permission denied")
        try denied(["ls", staging + "/data"], "Permission denied")

        // The owner can.
        #expect(try mount.commit().status == 0)
        #expect(try mount.status().sessions == 2)
    }

    /// POSIX ACLs mean on the mount what they mean on ext4: the kernel checks
    /// them, chmod moves their mask, a directory's default ACL goes to what is
    /// made in it (the umask does not apply then), and xorriso finds them on
    /// the medium; libisofs gives a known user's id as a name, which reads back
    /// as the id.
    @Test func aclsAreCheckedFollowChmodAreInheritedAndReachTheMedium() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Self.makeImage(in: dir)
        let mount = try IsofuseMount(image, in: dir, options: ["-o", "allow_other"])
        defer { mount.cleanUp() }
        let secret = mount.path("secret.txt")
        #expect(try Self.asNobody(["cat", secret]).status != 0)
        try Shell.check(["setfacl", "-m", "u:\(Self.nobody):r", secret])
        #expect(try Self.asNobody(["cat", secret]).stdout == "for root only\n")
        let mode = try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int
        #expect(mode == 0o640, "the mask is the group's bits: \(String(mode ?? 0, radix: 8))")
        try Shell.check(["chmod", "0600", secret])
        #expect(try Shell.check(["getfacl", "-n", secret]).stdout.contains("mask::---"))
        #expect(try Self.asNobody(["cat", secret]).status != 0)
        try Shell.check(["chmod", "0640", secret])

        try Fixtures.makeDirectory(mount.path("inherits"))
        try Shell.check(["setfacl", "-d", "-m", "u:\(Self.nobody):rwx", mount.path("inherits")])
        try Shell.check(["sh", "-c", "cd \"$1\" && umask 077 && echo new > inherits/new.txt && mkdir inherits/sub",
                         "sh", mount.mountpoint])
        let newFile = try Shell.check(["getfacl", "-n", mount.path("inherits/new.txt")]).stdout
        #expect(newFile.contains("user:\(Self.nobody):rwx") && newFile.contains("mask::rw-"), "\(newFile)")
        #expect(try Self.asNobody(["cat", mount.path("inherits/new.txt")]).stdout == "new\n")
        #expect(try Shell.check(["getfacl", "-n", mount.path("inherits/sub")]).stdout.contains("default:user:\(Self.nobody):rwx"))

        #expect(try mount.commit().status == 0)
        let onMedium = try Xorriso.query(image: image, options: ["-acl", "on"], ["-getfacl_r", "/"])
        #expect(onMedium.contains("user:nobody:r--"), "\(onMedium)")
        #expect(onMedium.contains("default:user:nobody:rwx"), "\(onMedium)")
        #expect(try mount.unmount().status == 0)
        let again = try mount.remount()
        defer { again.cleanUp() }
        #expect(try Self.asNobody(["cat", again.path("secret.txt")]).stdout == "for root only\n")
        #expect(try Shell.check(["getfacl", "-n", again.path("inherits/new.txt")]).stdout.contains("user:\(Self.nobody):rwx"))
        #expect(try again.unmount().status == 0)

        // A mount that takes no writes checks ACLs where its session has them...
        let readOnly = try IsofuseMount(image, in: dir, options: ["--read-only", "-o", "allow_other"])
        defer { readOnly.cleanUp() }
        #expect(try Self.asNobody(["cat", readOnly.path("secret.txt")]).stdout == "for root only\n")
        #expect(try Self.asNobody(["cat", readOnly.path("public/../secret.txt")]).status == 0)
        #expect(try Shell.check(["getfacl", "-n", readOnly.path("secret.txt")]).stdout.contains("user:\(Self.nobody):r--"))
        #expect(try readOnly.unmount().status == 0)
        // ...and says "not supported" where it has none (session 1, before the commit), so `ls -l` stops asking.
        let sessionOne = try IsofuseMount(image, in: dir, options: ["--session", "1", "-o", "allow_other"])
        defer { sessionOne.cleanUp() }
        #expect(try Self.asNobody(["cat", sessionOne.path("secret.txt")]).status != 0)
        let acl = try Shell.run(["getfattr", "-n", "system.posix_acl_access", sessionOne.path("secret.txt")],
                                environment: IsofuseMount.cLocale)
        #expect(acl.status != 0 && acl.stderr.contains("Operation not supported"), "\(acl.stderr)")
    }

    /// SELinux labels are the host's, not the archive's: "not supported",
    /// which also makes `ls -l` stop asking for them on the mount.
    @Test func selinuxLabelsAreNotSupported() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let mount = try IsofuseMount(try Self.makeImage(in: dir), in: dir)
        defer { mount.cleanUp() }
        let set = try Shell.run(["setfattr", "-n", "security.selinux", "-v", "x", mount.path("public/hello.txt")],
                                environment: IsofuseMount.cLocale)
        #expect(set.status != 0 && set.stderr.contains("Operation not supported"), "\(set.stderr)")
        let get = try Shell.run(["getfattr", "-n", "security.selinux", mount.path("public/hello.txt")],
                                environment: IsofuseMount.cLocale)
        #expect(get.status != 0 && get.stderr.contains("Operation not supported"), "\(get.stderr)")
    }

    @Test func withoutAllowOtherNoOtherUserSeesTheMount() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let mount = try IsofuseMount(try Self.makeImage(in: dir), in: dir)
        defer { mount.cleanUp() }
        let listing = try Self.asNobody(["ls", mount.mountpoint])
        #expect(listing.status != 0 && listing.stderr.contains("Permission denied"), "\(listing.stderr)")
    }

    /// Staged files are copies of what users wrote, whatever the modes on the
    /// mount: the staging directory, and every directory isofuse makes on the
    /// way to it, are the mounting user's alone.
    @Test(arguments: [false, true])
    func theStagingDirectoryAndTheParentsIsofuseMakesAreForTheOwnerOnly(givenStaging: Bool) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = try Self.makeImage(in: dir)
        let state = dir.url("state")
        let made: [String]
        let mount: IsofuseMount
        if givenStaging {
            // Given and already there, open to all: isofuse closes it; parents it makes are closed too.
            try FileManager.default.createDirectory(atPath: dir.url("open"), withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o777])
            mount = try IsofuseMount(image, in: dir, staging: .at(dir.url("open/new/staging")))
            made = [dir.url("open/new"), dir.url("open/new/staging")]
        } else {
            mount = try IsofuseMount(image, in: dir, staging: .defaultLocation, environment: ["XDG_STATE_HOME": state])
            let key = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/isofuse").first)
            made = [state, state + "/isofuse", state + "/isofuse/" + key]
        }
        defer { mount.cleanUp() }
        try Fixtures.write("staged\n", to: mount.path("staged.txt"))
        for directory in made {
            let mode = try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int
            #expect(mode == 0o700, "\(directory): \(String(mode ?? 0, radix: 8))")
        }
        let listing = try Self.asNobody(["ls", "-R", made.last!])
        #expect(listing.status != 0 && listing.stderr.contains("Permission denied"), "\(listing.stdout)")
    }

    /// A user mounting an image of their own goes through fusermount3. Only
    /// where that user may open /dev/fuse (0666 on a usual Debian).
    @Test(.enabled(if: (try? AccessTests.asNobody(["test", "-r", "/dev/fuse", "-a", "-w", "/dev/fuse"]).status) == 0,
                   "nobody cannot open /dev/fuse here"))
    func aUserMountsCommitsAndUnmountsTheirOwnImage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let home = dir.url("home")
        try Fixtures.write("mine\n", to: home + "/source/mine.txt")
        try Fixtures.makeDirectory(home + "/mnt")
        try Shell.check(["chown", "-R", "\(Self.nobody):\(Self.nobody)", dir.path, home])
        try Shell.check(["chmod", "0755", dir.path])
        let image = home + "/own.iso"
        let made = try Self.asNobody(["xorriso", "-no_rc", "-md5", "on", "-dev", "stdio:" + image, "-map", home + "/source", "/", "-commit"])
        try #require(made.status == 0, "\(made.stderr)")
        let run = { (arguments: [String]) throws -> Shell.Result in
            try Self.asNobody(["env", "HOME=" + home, IsofuseMount.isofuse] + arguments)
        }
        let mounted = try run(["mount", image, home + "/mnt"])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { IsofuseMount.detach(home + "/mnt") }
        #expect(try Self.asNobody(["sh", "-c", "echo added > " + home + "/mnt/added.txt"]).status == 0)
        let committed = try run(["commit", home + "/mnt"])
        #expect(committed.status == 0, "\(committed.stderr)")
        #expect(try run(["unmount", home + "/mnt"]).status == 0)
        #expect(try Xorriso.toc(image: image).count == 2)
        #expect(try Xorriso.checkMD5(image: image))
    }
}
