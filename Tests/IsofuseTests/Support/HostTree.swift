// A host directory tree as the judge sees an image: one EntryShape per node,
// keyed as xorriso keys its listing, so that the two compare with ==.

import Foundation

/// Every node below root, keyed by its path as in the image ("/a/b"). Symlinks are
/// not followed. Works on any directory: a source tree, a mount, a session view.
func hostTree(_ root: String) throws -> [String: EntryShape] {
    let manager = FileManager.default
    guard let enumerator = manager.enumerator(atPath: root) else {
        throw Shell.Failure(description: "hostTree: cannot list \(root)")
    }
    var tree: [String: EntryShape] = [:]
    for case let relative as String in enumerator {
        let path = root + "/" + relative
        let attributes = try manager.attributesOfItem(atPath: path)   // lstat: links are not followed
        let type: Character = switch attributes[.type] as? FileAttributeType {
        case .typeRegular?: "-"
        case .typeDirectory?: "d"
        case .typeSymbolicLink?: "l"
        case .typeSocket?: "s"
        case .typeCharacterSpecial?: "c"
        case .typeBlockSpecial?: "b"
        default: "p"   // Foundation has no name for a FIFO
        }
        tree["/" + relative] = EntryShape(
            type: type, permissions: UInt32(attributes[.posixPermissions] as! Int),
            uid: UInt32(attributes[.ownerAccountID] as! Int), gid: UInt32(attributes[.groupOwnerAccountID] as! Int),
            size: type == "-" ? UInt64(attributes[.size] as! Int) : nil,
            linkTarget: type == "l" ? try manager.destinationOfSymbolicLink(atPath: path) : nil)
    }
    return tree
}
