// Copies a libisofs tree into a `Tree`. Runs under the library lock; the
// libisofs image is dropped afterwards, so only the compact copy stays.
//
// In three steps, because the copy of a 1,000,000-file tree took as long as
// libisofs' own import: the tree's shape is walked in one thread (cheap
// accessors), each node's details (attributes, extents, xattrs, MD5 where
// asked, which decode the node's AAIP) are read in chunks on every core, and the chunks
// are joined. ACL texts, rare, are read afterwards in one thread: libisofs
// may look user names up for them.

import CIsoburn
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

struct TreeLoader {
    let image: OpaquePointer
    let session: SessionInfo?
    let mediumByteCount: UInt64
    /// Whether files' recorded MD5s are read: only a check needs them, and
    /// libisofs decodes a file's AAIP once more for its MD5 (0.5-0.9 s of a
    /// million files' 1.1-1.6 s of details).
    let readsChecksums: Bool
    /// The fewest nodes a thread of the load takes: a small tree is not worth a thread.
    let minimumChunk: Int

    init(image: OpaquePointer, session: SessionInfo?, mediumByteCount: UInt64, readsChecksums: Bool,
         minimumChunk: Int = 50_000) {
        self.image = image
        self.session = session
        self.mediumByteCount = mediumByteCount
        self.readsChecksums = readsChecksums
        self.minimumChunk = minimumChunk
    }

    /// One child before it gets its place: the libisofs node, its name (owned
    /// by the node, which outlives the load) and its kind.
    private struct Pending {
        var node: OpaquePointer
        var name: UnsafeRawBufferPointer
        var kind: NodeKind
    }

    /// The side arrays of a run of records, with indices into them that the
    /// join makes indices into the tree's.
    private struct Details {
        var extents: [Extent] = []
        var digests: [MD5Digest] = []
        /// By index into the tree's records.
        var attributes: [(Int, NodeAttributes)] = []
        /// Indices (into the tree's records) of the nodes whose AAIP holds an ACL.
        var withACL: [Int] = []
    }

    /// Nodes handed to the threads of a load. Each thread reads only its own
    /// run of nodes, through accessors that change nothing shared (they
    /// allocate, and glibc's malloc is thread-safe), and writes only its own
    /// run of records and its own slot.
    private struct Batch: @unchecked Sendable {
        let nodes: UnsafeBufferPointer<OpaquePointer>
        let records: UnsafeMutableBufferPointer<Tree.Record>
        let image: OpaquePointer
        let readsChecksums: Bool
        let results: UnsafeMutableBufferPointer<Details>
    }

    /// The records are completed where they are: the libisofs tree is still
    /// in memory meanwhile (about 620 bytes a node), and each copy of the
    /// records would add 72 bytes a node to the mount's peak.
    func load() -> Tree {
        var (nodes, records, bytes) = shape()
        let count = records.count
        let chunks = max(1, min(sysconf(Int32(_SC_NPROCESSORS_ONLN)), count / minimumChunk))
        let size = (count + chunks - 1) / chunks
        @Sendable func run(_ chunk: Int) -> Range<Int> { min(chunk * size, count)..<min((chunk + 1) * size, count) }
        var results = [Details](repeating: Details(), count: chunks)
        nodes.withUnsafeBufferPointer { nodes in
            records.withUnsafeMutableBufferPointer { records in
                results.withUnsafeMutableBufferPointer { slots in
                    let batch = Batch(nodes: nodes, records: records, image: image, readsChecksums: readsChecksums, results: slots)
                    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                        batch.results[chunk] = Self.details(of: run(chunk), batch)
                    }
                }
            }
        }
        // Joined into arrays allocated at their full size, each part let go
        // as soon as it is in: growing them, or copying the parts whole,
        // would hold the side arrays twice.
        var extents: [Extent] = [], digests: [MD5Digest] = [], withACL: [Int] = []
        var attributes: [NodeID: NodeAttributes] = [:]
        extents.reserveCapacity(results.reduce(0) { $0 + $1.extents.count })
        digests.reserveCapacity(results.reduce(0) { $0 + $1.digests.count })
        attributes.reserveCapacity(results.reduce(0) { $0 + $1.attributes.count })
        for chunk in results.indices {
            var part = Details()
            swap(&part, &results[chunk])
            if chunk > 0 {
                for index in run(chunk) {
                    if records[index].kind == .regularFile { records[index].payloadStart += UInt32(extents.count) }
                    if records[index].digestIndex != .max { records[index].digestIndex += UInt32(digests.count) }
                }
            }
            extents += part.extents
            digests += part.digests
            for (index, value) in part.attributes { attributes[NodeID(rawValue: UInt32(index))] = value }
            withACL += part.withACL
        }
        for index in withACL {
            guard let acl = Self.acl(of: nodes[index]) else { continue }
            attributes[NodeID(rawValue: UInt32(index)), default: NodeAttributes()].acl = acl
        }
        nodes = []
        let linkGroups = Self.countLinks(&records)
        return Tree(records: records, bytes: bytes, extents: extents, digests: digests,
                    attributes: attributes, linkGroups: linkGroups, session: session, mediumByteCount: mediumByteCount)
    }

    /// How many nodes and name and target bytes the tree has at most (all
    /// its children counted, usable or not), so that `shape()` allocates its
    /// arrays once: grown by doubling, they left 20 MB of freed buffers in
    /// the heap for a million nodes, while libisofs' tree was in memory too.
    private func census() -> (nodes: Int, bytes: Int) {
        var nodes = 1, bytes = 0
        var directories = [iso_image_get_root(image)!]
        while let dir = directories.popLast() {
            Self.forEachChild(of: dir) { node in
                nodes += 1
                bytes += iso_node_get_name(node).map { strlen($0) } ?? 0
                switch iso_node_get_type(node) {
                case LIBISO_DIR: directories.append(node)
                case LIBISO_SYMLINK: bytes += iso_symlink_get_dest(node).map { strlen($0) } ?? 0
                default: break
                }
            }
        }
        return (nodes, bytes)
    }

    /// The nodes in record order, breadth-first: each directory's children are
    /// appended together, so they are consecutive records. Names and symlink
    /// targets go to `bytes`.
    private func shape() -> (nodes: [OpaquePointer], records: [Tree.Record], bytes: [UInt8]) {
        let most = census()
        var nodes: [OpaquePointer] = [], records: [Tree.Record] = [], bytes: [UInt8] = []
        nodes.reserveCapacity(most.nodes)
        records.reserveCapacity(most.nodes)
        bytes.reserveCapacity(most.bytes)
        nodes.append(iso_image_get_root(image)!)
        records.append(Self.emptyRecord(kind: .directory, parent: 0))
        var next = 0
        while next < records.count {
            let dirIndex = next
            next += 1
            guard records[dirIndex].kind == .directory else { continue }
            let children = uniquelyNamed(pendingChildren(of: nodes[dirIndex]))
            records[dirIndex].payloadStart = UInt32(records.count)
            records[dirIndex].payloadCount = UInt32(children.count)
            for child in children {
                var record = Self.emptyRecord(kind: child.kind, parent: UInt32(dirIndex))
                record.nameOffset = UInt32(bytes.count)
                record.nameLength = UInt16(child.name.count)
                bytes.append(contentsOf: child.name)
                if child.kind == .symlink {
                    let target = cBytes(iso_symlink_get_dest(child.node))
                    record.payloadStart = UInt32(bytes.count)
                    record.payloadCount = UInt32(target.count)
                    bytes.append(contentsOf: target)
                }
                nodes.append(child.node)
                records.append(record)
            }
        }
        return (nodes, records, bytes)
    }

    private func pendingChildren(of dir: OpaquePointer) -> [Pending] {
        var children: [Pending] = []
        Self.forEachChild(of: dir) { node in
            guard let cName = iso_node_get_name(node) else { return }
            let name = UnsafeRawBufferPointer(start: cName, count: strlen(cName))
            guard Self.isUsable(name), let kind = Self.kind(of: node) else { return }
            children.append(Pending(node: node, name: name, kind: kind))
        }
        return children
    }

    private static func forEachChild(of dir: OpaquePointer, _ body: (OpaquePointer) -> Void) {
        var iterator: OpaquePointer?
        guard iso_dir_get_children(dir, &iterator) == 1, let iterator else { return }
        defer { iso_dir_iter_free(iterator) }
        var child: OpaquePointer?
        while iso_dir_iter_next(iterator, &child) == 1, let node = child { body(node) }
    }

    /// Sorted by name, one child per name: libisofs renames colliding names as
    /// it loads, but should two still be equal, the first stays.
    private func uniquelyNamed(_ children: [Pending]) -> [Pending] {
        var unique: [Pending] = []
        for child in children.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) })
        where unique.last.map({ !$0.name.elementsEqual(child.name) }) ?? true {
            unique.append(child)
        }
        return unique
    }

    /// Whether a name can be shown as a directory entry. libisofs loads Rock
    /// Ridge names as recorded, but no honest tool records an empty name,
    /// `.`, `..`, a name with `/` or one longer than a host name may be (NAME_MAX):
    /// such an entry could not be looked up, or would lead elsewhere, so it is left out.
    static func isUsable(_ name: some Collection<UInt8>) -> Bool {
        !name.isEmpty && name.count <= 255 && !name.elementsEqual([0x2E]) && !name.elementsEqual([0x2E, 0x2E])
            && !name.contains(0x2F)
    }

    private static func kind(of node: OpaquePointer) -> NodeKind? {
        let type = iso_node_get_type(node)
        if type == LIBISO_DIR { return .directory }
        if type == LIBISO_FILE { return .regularFile }
        if type == LIBISO_SYMLINK { return .symlink }
        if type == LIBISO_SPECIAL {
            switch iso_node_get_mode(node) & S_IFMT {
            case S_IFIFO: return .fifo
            case S_IFCHR: return .characterDevice
            case S_IFBLK: return .blockDevice
            case S_IFSOCK: return .socket
            default: return nil
            }
        }
        // The El Torito boot catalog is made by libisofs, not by a user.
        return nil
    }

    private static func emptyRecord(kind: NodeKind, parent: UInt32) -> Tree.Record {
        Tree.Record(parent: parent, payloadStart: 0, payloadCount: 0, nameOffset: 0, nameLength: 0, mode: 0, kind: kind,
                    isFiltered: false, uid: 0, gid: 0, links: 0, digestIndex: .max, size: 0, atime: 0, mtime: 0, ctime: 0)
    }

    /// The records of a run completed from their nodes (run on any thread: see `Batch`).
    private static func details(of run: Range<Int>, _ batch: Batch) -> Details {
        var details = Details()
        for index in run {
            let node = batch.nodes[index]
            var record = batch.records[index]
            record.mode = UInt16(truncatingIfNeeded: iso_node_get_mode(node))
            record.uid = UInt32(iso_node_get_uid(node))
            record.gid = UInt32(iso_node_get_gid(node))
            record.atime = Int64(iso_node_get_atime(node))
            record.mtime = Int64(iso_node_get_mtime(node))
            record.ctime = Int64(iso_node_get_ctime(node))
            switch record.kind {
            case .regularFile: addFileContent(of: node, image: batch.readsChecksums ? batch.image : nil, to: &record, &details)
            case .characterDevice, .blockDevice:
                let device = UInt64(iso_special_get_dev(node))
                record.payloadStart = UInt32(truncatingIfNeeded: device)
                record.payloadCount = UInt32(truncatingIfNeeded: device >> 32)
            default: break
            }
            let (xattrs, hasACL) = extendedAttributes(of: node)
            if !xattrs.isEmpty { details.attributes.append((index, NodeAttributes(xattrs: xattrs))) }
            if hasACL { details.withACL.append(index) }
            batch.records[index] = record
        }
        return details
    }

    /// With `image`, the file's MD5 too.
    private static func addFileContent(of file: OpaquePointer, image: OpaquePointer?, to record: inout Tree.Record,
                                       _ details: inout Details) {
        record.size = UInt64(clamping: iso_file_get_size(file))
        var count: Int32 = 0
        var sections: UnsafeMutablePointer<iso_file_section>?
        if iso_file_get_old_image_sections(file, &count, &sections, 0) == 1, let sections {
            record.payloadStart = UInt32(details.extents.count)
            // An empty file's one section holds nothing to read.
            for i in 0..<Int(count) where sections[i].size > 0 {
                details.extents.append(Extent(block: sections[i].block, byteCount: sections[i].size))
            }
            record.payloadCount = UInt32(details.extents.count) - record.payloadStart
            free(sections)
        }
        // On the stack: an array would be an allocation for every file.
        let digest = image.flatMap { image in
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: 16) { md5 -> MD5Digest? in
                iso_file_get_md5(image, file, md5.baseAddress, 0) == 1 ? MD5Digest(bytes: UnsafeRawBufferPointer(md5)) : nil
            }
        }
        if let digest {
            record.digestIndex = UInt32(details.digests.count)
            details.digests.append(digest)
        }
        if let stream = iso_file_get_stream(file) {
            record.isFiltered = isofuse_stream_is_filtered(stream) != 0
            var fsID: UInt32 = 0, devID: dev_t = 0, inode: ino_t = 0
            iso_stream_get_id(stream, &fsID, &devID, &inode)
            // Until `countLinks`, the hard-link identity (the Rock Ridge inode number).
            record.links = UInt32(truncatingIfNeeded: inode)
        }
    }

    /// xattrs other than libisofs' internal `isofs.*`, and whether the node has an ACL.
    private static func extendedAttributes(of node: OpaquePointer) -> (xattrs: [String: [UInt8]], hasACL: Bool) {
        var xattrs: [String: [UInt8]] = [:]
        var count = 0
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var lengths: UnsafeMutablePointer<Int>?
        var values: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var hasACL = false
        // bit0: the ACLs come along as a pair with an empty name, so that the
        // ACL text is asked for (a second decoding of the node's AAIP) only
        // where there is one.
        if iso_node_get_attrs(node, &count, &names, &lengths, &values, 1 << 0) == 1 {
            for i in 0..<count {
                guard let cName = names?[i], let value = values?[i], let length = lengths?[i] else { continue }
                if cName.pointee == 0 {
                    hasACL = true
                    continue
                }
                // Checked before a String is made: every file of an image with MD5s has "isofs.cx".
                guard strncmp(cName, "isofs.", 6) != 0 else { continue }
                xattrs[String(cString: cName)] = UnsafeRawBufferPointer(start: value, count: length).map { $0 }
            }
            iso_node_get_attrs(nil, &count, &names, &lengths, &values, 1 << 15)
        }
        return (xattrs, hasACL)
    }

    /// A node's ACLs; nil when it has neither an access nor a default ACL.
    private static func acl(of node: OpaquePointer) -> ACLText? {
        var access: UnsafeMutablePointer<CChar>?, defaultACL: UnsafeMutablePointer<CChar>?
        // bit4: no access ACL gives nil instead of one made from the mode bits.
        guard iso_node_get_acl_text(node, &access, &defaultACL, 1 << 4) == 1 else { return nil }
        defer { iso_node_get_acl_text(node, &access, &defaultACL, 1 << 15) }
        let acl = ACLText(access: access.map { String(cString: $0) }, default: defaultACL.map { String(cString: $0) })
        return acl.access != nil || acl.default != nil ? acl : nil
    }

    /// Link counts and hard-link groups: names sharing an inode number (in
    /// `links` while loading; 0 for none) are one file; a directory has its
    /// own entry, its "." and one ".." per subdirectory.
    private static func countLinks(_ records: inout [Tree.Record]) -> [[NodeID]] {
        // The files' (inode, index) pairs, sorted, put the names of an inode
        // side by side: a dictionary of every inode cost 0.2 s for a million
        // files, where the sort, of numbers mostly in order already, is cheap.
        var byInode: [UInt64] = []
        byInode.reserveCapacity(records.count)
        for i in records.indices {
            if records[i].kind == .directory {
                let start = Int(records[i].payloadStart)
                let subdirectories = records[start..<start + Int(records[i].payloadCount)]
                    .lazy.filter { $0.kind == .directory }.count
                records[i].links = 2 + UInt32(subdirectories)
            } else {
                if records[i].links != 0 { byInode.append(UInt64(records[i].links) << 32 | UInt64(i)) }
                records[i].links = .max
            }
        }
        byInode.sort()
        var groups: [[NodeID]] = []
        var start = 0
        while start < byInode.count {
            let inode = byInode[start] >> 32
            var end = start + 1
            while end < byInode.count, byInode[end] >> 32 == inode { end += 1 }
            if end - start > 1 {
                let group = byInode[start..<end].map { NodeID(rawValue: UInt32(truncatingIfNeeded: $0)) }
                for id in group { records[id.index].links = UInt32(groups.count) }
                groups.append(group)
            }
            start = end
        }
        return groups
    }
}

/// The bytes of a C string (no terminator).
func cBytes(_ pointer: UnsafePointer<CChar>?) -> [UInt8] {
    guard let pointer else { return [] }
    return Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
}

