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
// - A mount that takes no writes has one tree for its whole life: its nodes
//   are numbered by their place in it (16 + index), with no table at all.
//   (Filling the table was most of the daemon's time in a cold `find`.)

import SessionStore

struct InodeTable {
    private var identities: [InodeNumber: NodeRef] = [rootInode: .base(.root)]
    private var numbers: [NodeRef: InodeNumber] = [.base(.root): rootInode]
    private var lookups: [InodeNumber: UInt64] = [:]
    private var next: InodeNumber
    /// The nodes of the fixed tree, if any, numbered 17 ..< 16 + `fixedNodeCount`.
    private let fixedNodeCount: UInt64

    /// `fixedNodeCount`: the size of a base tree that stays the mount's for good.
    init(fixedNodeCount: Int = 0) {
        self.fixedNodeCount = UInt64(fixedNodeCount)
        next = 16 + UInt64(fixedNodeCount)
    }

    /// The number of the node with this identity, made if needed (with no lookups).
    mutating func number(for identity: NodeRef) -> InodeNumber {
        if fixedNodeCount > 0, case .base(let id) = identity, id != .root { return 16 + UInt64(id.rawValue) }
        if let number = numbers[identity] { return number }
        let number = next
        next += 1
        identities[number] = identity
        numbers[identity] = number
        return number
    }

    func identity(of number: InodeNumber) -> NodeRef? {
        if number > 16 && number < 16 + fixedNodeCount { return .base(NodeID(rawValue: UInt32(number - 16))) }
        return identities[number]
    }

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
