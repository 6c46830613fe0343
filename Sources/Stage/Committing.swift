// Commit and discard, and how a mount finds its staged changes again.
//
// A commit freezes the staged changes (a copy of the overlay; staged files it
// will read are copied before anyone writes them again), writes a marker with
// the journal's length, and burns on a thread of its own. Changes made
// meanwhile go on into the live overlay. When the session is written and
// checked, the live overlay is rebased onto it and the journal rewritten.
// If the daemon dies in between, the next mount finds the marker: a medium
// with that one more session finishes the rebase; a medium without it means
// the commit never landed, and everything is still staged.

import Dispatch
import SessionStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension MountedFileSystem {
    /// Starts burning the staged changes, unless a commit runs already.
    func startCommit(close: Bool) throws(Errno) {
        try checkCommittable()
        let close = close || options.closeOnCommit
        let changes = try core.withLock { core throws(Errno) -> (ChangeSet, MediumIdentity)? in
            guard core.commit.state != .running, let staging = core.staging else { return nil }
            try core.flushDirty()
            staging.sync()
            let plan = core.overlay.plannedCommit(dataPath: staging.dataPath)
            core.commit = StatusReport.Commit(state: .running, phase: "preparing", session: core.medium.sessions.count + 1,
                                              sequence: core.commit.sequence + 1)
            if plan.isEmpty && !close {
                core.commit.state = .succeeded
                core.commit.session = core.medium.sessions.count
                core.commit.message = "nothing was staged: no session written"
                return nil
            }
            core.collectGarbage()   // what was deleted since frees its room for the marker
            do throws(IsofuseError) {
                try staging.writeMarker(CommitMarker(journalOffset: try staging.journalSize(),
                                                     sessionStart: core.medium.nextWritableBlock))
            } catch {
                core.commit.state = .failed
                core.commit.message = error.message + "; nothing was written, everything is still staged"
                throw (error.cause as? Errno) ?? .ioError
            }
            core.frozen = FrozenChanges(overlay: core.overlay, data: core.overlay.state.dataFiles)
            return (plan.changes, core.medium.identity)
        }
        guard let (changes, medium) = changes else { return }
        runInBackground { self.commit(changes, onto: medium, close: close) }
    }

    /// The burn, on the background thread.
    private func commit(_ changes: ChangeSet, onto expected: MediumIdentity, close: Bool) {
        do throws(IsofuseError) {
            let options = AppendOptions(closeMedium: close, verify: options.verify, expectedMedium: expected)
            let medium = try drive.append(changes, options: options) { progress in
                core.withLock { core in
                    core.commit.phase = progress.phase.rawValue
                    core.commit.percent = progress.percent
                    core.commit.bytesPerSecond = progress.bytesPerSecond
                }
            }
            let tree = try drive.loadTree()
            // The first commit to a blank image file creates the file.
            let reader = core.withLock { $0.reader } is NoMedium ? try drive.makeReader() : nil
            let garbage = try core.withLock { core throws(IsofuseError) in
                let garbage = try core.switchBase(to: tree, medium: medium)
                if let reader { core.reader = reader }
                (core.reader as? ImageFileReader)?.acceptChanges()
                core.commit.state = .succeeded
                core.commit.phase = "done"
                core.commit.percent = 100
                core.commit.session = medium.sessions.count
                core.commit.message = "session \(medium.sessions.count) written"
                    + (options.verify ? " and checked" : "") + (close ? "; the medium is closed" : "")
                return garbage
            }
            // After the commit reported success, and outside the lock: the
            // staged copies of what the session now holds.
            StagingArea.remove(garbage)
        } catch {
            core.withLock { core in
                core.frozen = nil
                core.staging?.removeMarker()
                if error.code == .mediumChanged {
                    core.noteMediumChange(MediumChange(allowsReads: false, note: error.message))
                } else {
                    // What this mount wrote of the failed session is not a change of the medium.
                    (core.reader as? ImageFileReader)?.acceptChanges()
                    if let medium = try? drive.medium() { core.medium = medium }
                }
                core.commit.state = .failed
                core.commit.message = error.message + "; everything is still staged"
            }
        }
    }

    /// Drops every staged change and makes the kernel forget what it cached of them.
    func discard() throws(Errno) {
        guard isWritable else { throw .readOnlyFileSystem }
        let (forget, garbage) = try core.withLock { core throws(Errno) -> ([KernelCacheInvalidation], [FilePath]) in
            guard let staging = core.staging, let header = staging.header else { throw .readOnlyFileSystem }
            guard core.commit.state != .running else { throw .resourceBusy }
            let forget = core.stagedInvalidations()
            // Data ids go on from where they were: the old data files are
            // removed after this, and a new file must not get one's name.
            var empty = OverlayState()
            empty.nextDataID = core.overlay.state.nextDataID
            core.overlay = Overlay(base: core.overlay.base, state: empty)
            do {
                try staging.rewrite(core.overlay.state, header: header)
            } catch {
                throw .ioError
            }
            core.dirty = []
            core.closeRetired()
            core.stagedBytes = 0
            core.notes.append("staged changes discarded")
            return (forget, core.garbage())
        }
        let invalidate = invalidator.withLock { $0 }
        runInBackground {
            forget.forEach { invalidate?($0) }
            StagingArea.remove(garbage)
        }
    }

    /// Commits are refused (EROFS) on views, read-only mounts and media that take no more sessions.
    func checkCommittable() throws(Errno) {
        guard isWritable else { throw .readOnlyFileSystem }
        try core.withLock { core throws(Errno) in
            if let change = core.mediumChange, core.commit.state != .running {
                // Refused as a failed commit, so that `isofuse commit` and `status` say why.
                core.commit = StatusReport.Commit(state: .failed, session: core.medium.sessions.count + 1,
                                                  message: change.note, sequence: core.commit.sequence + 1)
                throw .readOnlyFileSystem
            }
            guard core.staging != nil, core.medium.status == .blank || core.medium.status == .appendable else {
                throw .readOnlyFileSystem
            }
        }
    }

    /// Runs work on the background queue (one at a time; shutdown waits for it).
    private func runInBackground(_ work: @escaping @Sendable () -> Void) {
        background.async(execute: work)
    }

    func statusReport() -> StatusReport {
        core.withLock { core in
            let space = core.space()
            let counts = core.stagedCounts()
            return StatusReport(
                pid: getpid(), drive: drive.address.description,
                view: options.session.map { "session \($0) (read-only)" } ?? "newest session",
                readOnly: !isWritable || core.staging == nil, staging: core.staging?.directory.string,
                medium: .init(status: core.medium.status.rawValue, profile: core.medium.profile.name,
                              sessions: core.medium.sessions.count, freeBytes: core.medium.freeBytes,
                              nextWritableBlock: core.medium.nextWritableBlock),
                staged: .init(added: counts.added, changed: counts.changed, removed: counts.removed,
                              bytes: core.stagedBytes, predictedSessionBytes: space.predicted,
                              freeBytesAfterCommit: space.available),
                commit: core.commit, notes: core.notes + [drive.lostMedium?.message].compactMap { $0 })
        }
    }
}

extension Core {
    /// After a commit: the written session becomes the base, the changes
    /// made meanwhile stay staged over it. Returns the data files left
    /// without use, for the caller to remove outside the lock.
    mutating func switchBase(to tree: Tree, medium newMedium: MediumInfo) throws(IsofuseError) -> [FilePath] {
        guard let frozen, let staging else { return [] }
        let (rebased, rebase) = try Rebase.rebase(live: overlay, frozen: frozen.overlay, onto: tree)
        let old = overlay
        overlay = rebased
        carryOver(rebase, from: old, session: medium.sessions.count)
        medium = newMedium
        try staging.rewrite(overlay.state, header: JournalHeader(medium: newMedium.identity.mediumKey,
                                                                  state: newMedium.identity.state,
                                                                  sessions: newMedium.sessions.count))
        staging.removeMarker()
        self.frozen = nil
        dirty = []   // the rewritten journal holds the unjournaled changes too
        closeRetired()
        recountStagedBytes()
        return garbage()
    }

    /// What the kernel may hold of staged nodes: their inodes, and the names in changed directories.
    func stagedInvalidations() -> [KernelCacheInvalidation] {
        var invalidations: [KernelCacheInvalidation] = [.inode(rootInode)]
        for number in inodes.allNumbers {
            guard let identity = inodes.identity(of: number), case .upper = overlay.resolve(identity) else { continue }
            invalidations.append(.inode(number))
            guard overlay.kind(identity) == .directory else { continue }
            var names = Set(overlay.listing(of: identity).map(\.name))
            if case .base(let origin) = identity {
                names.formUnion(overlay.base.children(of: origin).map { Array(overlay.base.nameBytes(of: $0)) })
            }
            invalidations += names.map { .entry(parent: number, name: $0) }
        }
        return invalidations
    }

    /// Finds the staged changes of this medium in `directory`: as they were,
    /// finishing a commit the daemon did not live to finish, or moved aside
    /// when they belong to an older state of the medium.
    mutating func openStaging(_ directory: FilePath, drive: Drive) throws(IsofuseError) {
        let staging = try StagingArea(directory: directory)
        let identity = medium.identity
        let current = JournalHeader(medium: identity.mediumKey, state: identity.state, sessions: medium.sessions.count)
        let (header, records) = try staging.read()
        if let header {
            guard header.medium == identity.mediumKey else {
                throw IsofuseError(.invalidArgument, "the staging directory \(directory) holds changes for another medium")
            }
            if header.state == identity.state {
                overlay = Overlay(base: overlay.base, state: Self.replay(records))
                staging.removeMarker()   // a commit that never landed
            } else if let marker = staging.readMarker(), medium.sessions.count == header.sessions + 1,
                      medium.sessions.last?.startBlock == marker.sessionStart {
                let old = try drive.loadTree(session: header.sessions)
                let frozenRecords = try staging.read(upTo: marker.journalOffset).records
                let (rebased, _) = try Rebase.rebase(live: Overlay(base: old, state: Self.replay(records)),
                                                     frozen: Overlay(base: old, state: Self.replay(frozenRecords)),
                                                     onto: overlay.base)
                overlay = rebased
                try staging.rewrite(overlay.state, header: current)
                staging.removeMarker()
                notes.append("finished switching to session \(medium.sessions.count), whose commit was interrupted")
            } else {
                let aside = try staging.moveAside()
                try staging.rewrite(OverlayState(), header: current)
                notes.append("changes staged on an earlier state of this medium were moved to \(aside.string); they are not applied")
            }
        } else {
            try staging.rewrite(OverlayState(), header: current)
        }
        self.staging = staging
        repairSizes()
        recountStagedBytes()
        collectGarbage()
    }

    private static func replay(_ records: [JournalRecord]) -> OverlayState {
        var state = OverlayState()
        for record in records { state.apply(record) }
        return state
    }

    /// Sizes of staged files are journaled when files are closed; after a
    /// crash the data files themselves tell.
    private mutating func repairSizes() {
        for (id, node) in overlay.state.nodes {
            guard case .staged(let data)? = node.content, let staging else { continue }
            var info = stat()
            guard stat(staging.dataPath(data).string, &info) == 0, UInt64(info.st_size) != node.size else { continue }
            overlay.update(.upper(id)) { $0.size = UInt64(info.st_size) }
        }
        try? journal()
    }
}
