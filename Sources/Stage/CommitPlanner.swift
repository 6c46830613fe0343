// Turns the merged view into the `ChangeSet` that makes the base session's
// tree into it, for `Drive.append`.
//
// Base nodes that stay in the new session are *reused*: moved, never
// re-added, so their data is referenced where it lies and never re-read from
// the medium during the write. The change set works on paths, so moves go
// through a limbo directory to be order-independent:
//  1. every reused node that changes place moves into limbo, deepest first
//     (so the original paths of the others still hold);
//  2. base nodes that are gone are removed;
//  3. the merged view is walked top-down: nodes come back from limbo to their
//     new place, staged metadata is set, new nodes are added;
//  4. limbo is removed (it is empty by then).

import SessionStore
import SystemPackage

/// A change set and what it amounts to, for `status`.
public struct CommitPlan: Sendable {
    public var changes: ChangeSet
    /// New entries.
    public var added = 0
    /// Entries with new content or metadata, or moved.
    public var changed = 0
    /// Entries removed (a removed directory counts once).
    public var removed = 0
    /// Bytes of staged content the session will hold.
    public var bytes: UInt64 = 0

    public var isEmpty: Bool { changes.operations.isEmpty }
}

struct CommitPlanner {
    let overlay: Overlay
    let dataPath: (DataID) -> FilePath

    private var base: Tree { overlay.base }
    private var state: OverlayState { overlay.state }

    /// A node of the merged view, in walk order, with its new path.
    private struct Visit {
        var path: MediumPath
        var ref: NodeRef            // resolved
        var reused: NodeID?         // the base node it keeps, if any
        var moved: Bool
    }

    func plan() -> CommitPlan {
        var plan = CommitPlan(changes: ChangeSet())
        let visits = walk()
        let moved = visits.filter(\.moved).compactMap(\.reused)
        let reused = Set(visits.compactMap(\.reused))
        var operations: [ChangeSet.Operation] = []

        // 1. Into limbo, deepest first.
        let limbo = limboPath()
        var limboNames: [NodeID: MediumPath] = [:]
        if !moved.isEmpty {
            operations.append(.add(path: limbo, content: .directory, metadata: overlay.view(.base(.root)).metadata))
            for (index, node) in moved.sorted(by: { depth(of: $0) > depth(of: $1) }).enumerated() {
                limboNames[node] = limbo.appending(String(index).utf8)
                operations.append(.rename(from: base.mediumPath(of: node), to: limboNames[node]!))
            }
        }
        func currentPath(_ node: NodeID) -> MediumPath {
            if let inLimbo = limboNames[node] { return inLimbo }
            if node == .root { return .root }
            return currentPath(base.parent(of: node)).appending(base.nameBytes(of: node))
        }

        // 2. What is gone: children of materialized directories' base nodes that
        //    are no longer anywhere, or whose content is new (moved ones are safe
        //    in limbo). A file with new content in a directory that was not
        //    materialized keeps its name: step 3 replaces it in place.
        for visit in visits {
            guard case .upper(let id) = visit.ref, state.listings[id] != nil, let origin = state.nodes[id]?.origin else { continue }
            for child in base.children(of: origin) where !reused.contains(child) {
                operations.append(.remove(path: currentPath(child)))
                plan.removed += 1
            }
        }

        // 3. Top-down: back from limbo, staged metadata, new nodes.
        for visit in visits {
            if let node = visit.reused, let from = limboNames[node] {
                operations.append(.rename(from: from, to: visit.path))
                plan.changed += 1
            }
            guard case .upper(let id) = visit.ref, let node = state.nodes[id] else { continue }
            if visit.reused != nil {
                operations.append(.update(path: visit.path, change: change(from: node)))
                if !visit.moved { plan.changed += 1 }
            } else {
                operations.append(.add(path: visit.path, content: content(of: node), metadata: node.metadata))
                if case .staged? = node.content { plan.bytes += node.size }
                if node.origin != nil { plan.changed += 1 } else { plan.added += 1 }
            }
        }
        if !moved.isEmpty { operations.append(.remove(path: limbo)) }
        plan.changes = ChangeSet(operations)
        return plan
    }

    // MARK: Walking the merged view

    /// The merged view's nodes that differ from the base or lie on the way to
    /// such a node, parents first. Unchanged base subtrees are not entered.
    private func walk() -> [Visit] {
        // Base directories holding a shadowed node somewhere below.
        var holdsChanges = Set<NodeID>()
        for shadowed in state.shadows.keys {
            var node = shadowed
            while holdsChanges.insert(node).inserted && node != .root { node = base.parent(of: node) }
        }
        var visits: [Visit] = []
        func visit(_ raw: NodeRef, path: MediumPath, parentOrigin: NodeID?, name: Name) {
            let ref = overlay.resolve(raw)
            let reused = reusedBaseNode(ref)
            var moved = false
            if let reused, reused != .root {
                moved = parentOrigin != base.parent(of: reused) || Array(base.nameBytes(of: reused)) != name
            }
            if ref != .base(.root) { visits.append(Visit(path: path, ref: ref, reused: reused, moved: moved)) }
            guard overlay.kind(ref) == .directory else { return }
            if case .base(let id) = ref, !holdsChanges.contains(id) { return }
            for entry in overlay.listing(of: ref) {
                visit(entry.ref, path: path.appending(entry.name), parentOrigin: reused, name: entry.name)
            }
        }
        visit(.base(.root), path: .root, parentOrigin: nil, name: [])
        return visits
    }

    /// The base node a merged node keeps in the new session: an unchanged
    /// base node, or the origin of a staged one whose content is not new.
    private func reusedBaseNode(_ ref: NodeRef) -> NodeID? {
        switch ref {
        case .base(let id):
            return id
        case .upper(let id):
            guard let node = state.nodes[id], let origin = node.origin else { return nil }
            if node.kind == .regularFile, node.content != .base(origin) { return nil }
            return origin
        }
    }

    private func depth(of node: NodeID) -> Int {
        var depth = 0, current = node
        while current != .root {
            current = base.parent(of: current)
            depth += 1
        }
        return depth
    }

    /// A name for limbo that the base tree does not use.
    private func limboPath() -> MediumPath {
        var name = ".isofuse-limbo"
        while base.lookup(name, in: .root) != nil { name += "_" }
        return MediumPath.root.appending(name.utf8)
    }

    // MARK: Content and metadata

    private func content(of node: UpperNode) -> ChangeSet.Content {
        switch node.kind {
        case .directory: return .directory
        case .symlink: return .symlink(target: node.target ?? [])
        case .fifo: return .fifo
        default:
            // Files that are not reused have staged content (see `reusedBaseNode`).
            guard case .staged(let data)? = node.content else { preconditionFailure("a new file without staged content") }
            return .file(dataPath(data))
        }
    }

    /// A reused node's staged metadata, over its base node's.
    private func change(from node: UpperNode) -> MetadataChange {
        let old = node.origin.map { base.attributes(of: $0) } ?? NodeAttributes()
        return MetadataChange(permissions: node.metadata.permissions, uid: node.metadata.uid, gid: node.metadata.gid,
                              accessTime: node.metadata.accessTime, modificationTime: node.metadata.modificationTime,
                              changeTime: node.metadata.changeTime, setXattrs: node.metadata.xattrs,
                              removeXattrs: old.xattrs.keys.filter { node.metadata.xattrs[$0] == nil }.sorted(),
                              acl: node.metadata.acl == old.acl ? nil : .some(node.metadata.acl))
    }
}

extension Overlay {
    /// The change set that writes this merged view as the next session.
    public func plannedCommit(dataPath: (DataID) -> FilePath) -> CommitPlan {
        withoutActuallyEscaping(dataPath) { CommitPlanner(overlay: self, dataPath: $0).plan() }
    }
}
