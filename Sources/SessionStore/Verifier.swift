// `isofuse check`: re-reads files and compares them with their recorded MD5s,
// and re-reads sessions to check their checksum tags. A file that several
// sessions share (same extents, same MD5) is read once.

/// What a verification found.
public struct VerificationReport: Sendable {
    public struct Finding: Hashable, Sendable, CustomStringConvertible {
        public var session: Int
        /// The file's path, or nil for a finding about the session itself.
        public var path: String?
        public var detail: String
        public var description: String {
            path.map { "\(detail): \($0) (session \(session))" } ?? "session \(session): \(detail)"
        }
    }

    public enum Verdict: Sendable {
        /// Everything recorded matches.
        case match
        /// Some data does not match its checksum or cannot be read.
        case mismatch
        /// Nothing could be checked: the medium records no checksums.
        case couldNotCheck
    }

    public var sessionsChecked: [Int] = []
    public var sessionsWithTags = 0
    public var filesChecked = 0
    public var filesWithoutMD5 = 0
    public var bytesRead: UInt64 = 0
    /// Mismatching or unreadable files and sessions, in the order found.
    public var problems: [Finding] = []

    public var verdict: Verdict {
        if !problems.isEmpty { return .mismatch }
        return filesChecked == 0 && sessionsWithTags == 0 ? .couldNotCheck : .match
    }
}

public struct VerificationProgress: Sendable {
    public var bytesDone: UInt64
    public var bytesTotal: UInt64
}

extension Drive {
    /// Checks session `number`, or every session.
    public func verify(session number: Int? = nil,
                       progress: (VerificationProgress) -> Void = { _ in }) throws(IsofuseError) -> VerificationReport {
        let medium = try medium()
        guard !medium.sessions.isEmpty else {
            throw IsofuseError(.corruptMedium, "\(address) is blank: there is nothing to check")
        }
        var sessions = medium.sessions
        if let number {
            guard sessions.indices.contains(number - 1) else {
                throw IsofuseError(.notFound, "\(address) has no session \(number) (it has \(sessions.count))")
            }
            sessions = [sessions[number - 1]]
        }
        let reader = try makeReader()
        var report = VerificationReport()

        // The files to read, each once.
        struct FileToCheck { var session: Int; var path: String; var extents: [Extent]; var md5: MD5Digest }
        var files: [FileToCheck] = []
        // Keyed by the MD5 too: empty files have no extents, and one of them
        // with another MD5 recorded is still checked.
        struct Content: Hashable { var extents: [Extent]; var md5: MD5Digest }
        var seen = Set<Content>()
        for session in sessions {
            report.sessionsChecked.append(session.number)
            let tree: Tree
            do throws(IsofuseError) {
                tree = try loadTree(session: session.number, withChecksums: true)
            } catch where error.code == .corruptMedium {
                report.problems.append(.init(session: session.number, path: nil, detail: error.message))
                do throws(IsofuseError) {
                    tree = try loadTree(session: session.number, checkingTags: false, withChecksums: true)
                } catch where error.code == .corruptMedium {
                    continue   // reported; the session's tags are still checked
                }
            }
            for node in tree.walk() where tree.kind(of: node) == .regularFile {
                guard let md5 = tree.info(of: node).recordedMD5 else {
                    report.filesWithoutMD5 += 1
                    continue
                }
                let extents = Array(tree.extents(of: node))
                if seen.insert(Content(extents: extents, md5: md5)).inserted {
                    files.append(FileToCheck(session: session.number, path: tree.path(of: node), extents: extents, md5: md5))
                }
            }
        }

        let total = sessions.reduce(0) { $0 + $1.byteCount }
            + files.reduce(0) { $0 + $1.extents.reduce(0) { $0 + UInt64($1.byteCount) } }
        var done: UInt64 = 0
        let scanner = ChecksumTagScanner(reader: reader)
        for session in sessions {
            let base = done
            switch scanner.check(sessionStart: session.startBlock, blocks: session.blocks, progress: { blocks in
                progress(VerificationProgress(bytesDone: base + min(blocks * 2048, session.byteCount), bytesTotal: total))
            }) {
            case .match: report.sessionsWithTags += 1
            case .absent: break
            case .mismatch(let why): report.problems.append(.init(session: session.number, path: nil, detail: why))
            case .unreadable(let why): report.problems.append(.init(session: session.number, path: nil, detail: why))
            }
            done += session.byteCount
        }
        for file in files {
            let base = done
            let result = digest(of: file.extents, reader: reader) { bytes in
                progress(VerificationProgress(bytesDone: base + bytes, bytesTotal: total))
            }
            switch result {
            case .success(let md5) where md5 == file.md5:
                report.filesChecked += 1
            case .success:
                report.filesChecked += 1
                report.problems.append(.init(session: file.session, path: file.path, detail: "MD5 MISMATCH"))
            case .failure(let error):
                report.problems.append(.init(session: file.session, path: file.path, detail: "NOT READABLE (\(error.message))"))
            }
            done += file.extents.reduce(0) { $0 + UInt64($1.byteCount) }
        }
        report.bytesRead = done
        return report
    }

    /// The MD5 of the bytes stored in `extents`, as libisofs recorded it.
    private func digest(of extents: [Extent], reader: any MediumReader,
                        progress: (UInt64) -> Void) -> Result<MD5Digest, IsofuseError> {
        let md5 = MD5()
        let chunk = 1 << 20
        var done: UInt64 = 0
        return withScratchBuffer(byteCount: chunk) { buffer -> Result<MD5Digest, IsofuseError> in
            for extent in extents {
                var offset: UInt64 = 0
                while offset < UInt64(extent.byteCount) {
                    let want = Int(min(UInt64(chunk), UInt64(extent.byteCount) - offset))
                    let part = UnsafeMutableRawBufferPointer(rebasing: buffer[..<want])
                    do throws(IsofuseError) {
                        guard try reader.readFully(into: part, at: extent.byteOffset + offset) == want else {
                            return .failure(IsofuseError(.readError, "the medium ends inside the file"))
                        }
                    } catch {
                        return .failure(error)
                    }
                    md5.update(UnsafeRawBufferPointer(part))
                    offset += UInt64(want)
                    done += UInt64(want)
                    progress(done)
                }
            }
            return .success(md5.finish())
        }
    }
}
