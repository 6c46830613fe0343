// FUSE inode numbers for the nodes of the merged view.
//
// Rules (the FUSE low-level protocol's, and ours):
// - 1 is the root; 2..15 are the control directory's nodes (`ControlNode`);
//   numbers with the top bit set are nodes of read-only session views
//   (`SessionViewInode`); merged-view nodes get numbers from 16 up, never reused
//   while the mount lives.
// - A number names a node's *identity*: a base node keeps its number when it
//   is staged (shadowed), and after a commit a node keeps its number although
//   it is then a node of the new session (`translate`).
// - Each lookup the kernel is told about counts one; `forget` takes counts
//   back; at zero the number is dropped (the root never is).

import SessionStore

struct InodeTable {
    private var identities: [InodeNumber: NodeRef] = [rootInode: .base(.root)]
    private var numbers: [NodeRef: InodeNumber] = [.base(.root): rootInode]
    private var lookups: [InodeNumber: UInt64] = [:]
    private var next: InodeNumber = 16

    /// The number of the node with this identity, made if needed (with no lookups).
    mutating func number(for identity: NodeRef) -> InodeNumber {
        if let number = numbers[identity] { return number }
        let number = next
        next += 1
        identities[number] = identity
        numbers[identity] = number
        return number
    }

    func identity(of number: InodeNumber) -> NodeRef? { identities[number] }

    mutating func retain(_ number: InodeNumber, count: UInt64 = 1) {
        guard identities[number] != nil else { return }
        lookups[number, default: 0] += count
    }

    mutating func forget(_ number: InodeNumber, count: UInt64) {
        guard number != rootInode, let held = lookups[number] else { return }
        if held > count {
            lookups[number] = held - count
        } else {
            lookups[number] = nil
            if let identity = identities.removeValue(forKey: number) { numbers[identity] = nil }
        }
    }

    /// Restates identities after a commit (`translate` must map distinct identities to distinct ones).
    mutating func translate(_ translate: [NodeRef: NodeRef]) {
        var newNumbers: [NodeRef: InodeNumber] = [:]
        for (number, identity) in identities {
            let new = translate[identity] ?? identity
            identities[number] = new
            newNumbers[new] = number
        }
        numbers = newNumbers
    }

    /// Every number in use, for cache invalidation.
    var allNumbers: [InodeNumber] { Array(identities.keys) }

    /// Every identity that has a number.
    var allIdentities: [NodeRef] { Array(identities.values) }
}
