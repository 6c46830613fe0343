// Everything isofuse does with an image it is given, on any bytes at all: the
// medium, the tree of every session, lookups and paths of every node, a few
// bytes of every file, and `verify`. Shared by the hostile-image tests and the
// fuzzer (fuzz/Sources/isofuse-fuzz links this file), so that both drive the
// same loading path. Uses SessionStore only.

import SessionStore

struct ImageWorkout {
    /// What was loaded, for tests to assert on.
    var medium: MediumInfo?
    var trees: [Tree] = []
    /// The first refusal of each step that refused (medium, a tree, a read, verify).
    var errors: [IsofuseError] = []
    var verification: VerificationReport?
    /// Broken promises of a `Tree`: a name that is empty, `.`, `..`, holds `/`
    /// or NUL, or that its directory does not find.
    var violations: [String] = []

    /// Runs the workout on the image file at `path`.
    init(image path: String) {
        let drive: Drive
        do throws(IsofuseError) {
            drive = try Drive(DriveAddress(parsing: "stdio:" + path))
        } catch {
            errors.append(error)
            return
        }
        defer { drive.release(eject: false) }
        do throws(IsofuseError) {
            let medium = try drive.medium()
            self.medium = medium
            let reader = try drive.makeReader()
            for session in medium.sessions {
                for checkingTags in [true, false] {
                    do throws(IsofuseError) {
                        let tree = try drive.loadTree(session: session.number, checkingTags: checkingTags)
                        inspect(tree, reader: reader)
                        trees.append(tree)
                        break
                    } catch {
                        errors.append(error)
                    }
                }
            }
            verification = try drive.verify()
        } catch {
            errors.append(error)
        }
    }

    private mutating func inspect(_ tree: Tree, reader: any MediumReader) {
        for node in tree.walk() {
            let name = tree.nameBytes(of: node)
            if node != .root {
                if name.isEmpty || name.elementsEqual(".".utf8) || name.elementsEqual("..".utf8)
                    || name.contains(UInt8(ascii: "/")) || name.contains(0) {
                    violations.append("a node named \(Array(name)) in \(tree.path(of: tree.parent(of: node)))")
                }
                if tree.lookup(name, in: tree.parent(of: node)) != node {
                    violations.append("\(tree.path(of: node)) is not found by its name")
                }
            }
            _ = tree.attributes(of: node)
            _ = tree.hardLinks(of: node)
            _ = tree.symlinkTarget(of: node)
            let info = tree.info(of: node)
            guard info.kind == .regularFile, !info.isFiltered else { continue }
            // The head, the tail and a read across the end of the file.
            withScratchBuffer(byteCount: 4096) { buffer in
                for offset in [0, info.size / 2, info.size &- 100, info.size] {
                    do throws(IsofuseError) {
                        _ = try reader.read(node, of: tree, at: offset, into: buffer)
                    } catch {
                        errors.append(error)
                    }
                }
            }
        }
    }
}
