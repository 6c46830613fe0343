// After a commit: the changes frozen for it are now the medium's newest
// session, so the live changes are restated over that session. What was
// committed and not touched since becomes base; what changed after the
// freeze stays staged, now pointing at the new session's nodes.
//
// The new session holds exactly the frozen merged view, so walking the two
// side by side pairs every frozen node with its new base node; a difference
// means the written session is not what was staged, and nothing is changed.

import SessionStore

/// Maps references of the old overlay to the rebased one.
public struct Rebase: Sendable {
    /// Old base nodes (by index) → new base nodes.
    private var baseMap: [UInt32?]
    /// Upper nodes of the frozen view → their new base nodes.
    private var upperMap: [UpperID: NodeID] = [:]
    /// Upper nodes that became base.
    private var committed: Set<UpperID> = []

    /// Where a node of the old overlay is now (nil: it was not in the frozen view).
    public func translate(_ ref: NodeRef) -> NodeRef? {
        switch ref {
        case .base(let id):
            guard Int(id.rawValue) < baseMap.count, let new = baseMap[Int(id.rawValue)] else { return nil }
            return .base(NodeID(rawValue: new))
        case .upper(let id):
            if committed.contains(id) { return upperMap[id].map { .base($0) } }
            return ref
        }
    }

    /// `live` (changes over `frozen.base` that include the frozen ones) over `newBase`.
    public static func rebase(live: Overlay, frozen: Overlay, onto newBase: Tree) throws(IsofuseError) -> (Overlay, Rebase) {
        var rebase = Rebase(baseMap: Array(repeating: nil, count: frozen.base.nodeCount))
        try rebase.pair(frozen: frozen, newBase: newBase)

        let old = live.state
        var state = OverlayState()
        state.nextUpperID = old.nextUpperID
        state.nextDataID = old.nextDataID
        for (id, node) in old.nodes {
            let frozenNode = frozen.state.nodes[id]
            let inFrozenView = rebase.upperMap[id] != nil
            if inFrozenView, frozenNode == node, frozen.state.listings[id] == old.listings[id] {
                rebase.committed.insert(id)
            }
        }
        for (id, node) in old.nodes where !rebase.committed.contains(id) {
            var node = node
            if let newBaseNode = rebase.upperMap[id] {
                // Committed, then changed again: it now shadows its committed self.
                if node.content != nil, node.content == frozen.state.nodes[id]?.content { node.content = .base(newBaseNode) }
                node.origin = newBaseNode
            } else {
                node.origin = node.origin.flatMap { rebase.translateBase($0) }
                if case .base(let content)? = node.content {
                    guard let moved = rebase.translateBase(content) else { continue }
                    node.content = .base(moved)
                }
            }
            state.nodes[id] = node
            if let origin = node.origin { state.shadows[origin] = id }
            if let listing = old.listings[id] {
                state.listings[id] = listing.compactMapValues { rebase.translate($0) }
            }
        }
        return (Overlay(base: newBase, state: state), rebase)
    }

    private func translateBase(_ id: NodeID) -> NodeID? {
        if case .base(let new)? = translate(.base(id)) { return new }
        return nil
    }

    /// Walks the frozen merged view and the new tree together.
    private mutating func pair(frozen: Overlay, newBase: Tree) throws(IsofuseError) {
        var pending: [(ref: NodeRef, node: NodeID, path: String)] = [(.base(.root), .root, "")]
        while let (ref, node, path) = pending.popLast() {
            note(ref, frozen.resolve(ref), frozen, node)
            guard frozen.kind(ref) == .directory else { continue }
            guard newBase.kind(of: node) == .directory else {
                throw IsofuseError(.verifyFailed, "the new session does not hold the staged directory \(path)")
            }
            let entries = frozen.listing(of: ref)
            guard entries.count == newBase.children(of: node).count else {
                throw IsofuseError(.verifyFailed, "the new session's \(path)/ does not list what was staged")
            }
            for entry in entries {
                let childPath = path + "/" + String(decoding: entry.name, as: UTF8.self)
                guard let child = newBase.lookup(entry.name, in: node), newBase.kind(of: child) == frozen.kind(entry.ref) else {
                    throw IsofuseError(.verifyFailed, "the new session does not hold the staged \(childPath)")
                }
                pending.append((entry.ref, child, childPath))
            }
        }
    }

    private mutating func note(_ raw: NodeRef, _ resolved: NodeRef, _ frozen: Overlay, _ node: NodeID) {
        for ref in [raw, resolved, frozen.origin(resolved)] {
            switch ref {
            case .base(let id): baseMap[Int(id.rawValue)] = node.rawValue
            case .upper(let id): upperMap[id] = node
            }
        }
    }
}
