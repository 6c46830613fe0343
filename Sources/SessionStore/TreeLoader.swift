// Copies a libisofs tree into a `Tree`. Runs under the library lock; the
// libisofs image is dropped afterwards, so only the compact copy stays.

import CIsoburn
#if canImport(Glibc)
import Glibc
#endif

struct TreeLoader {
    let image: OpaquePointer
    let session: SessionInfo?
    let mediumByteCount: UInt64

    private var records: [Tree.Record] = []
    private var bytes: [UInt8] = []
    private var extents: [Extent] = []
    private var digests: [MD5Digest] = []
    private var attributes: [NodeAttributes] = []

    init(image: OpaquePointer, session: SessionInfo?, mediumByteCount: UInt64) {
        self.image = image
        self.session = session
        self.mediumByteCount = mediumByteCount
    }

    /// One child before it gets its place: the libisofs node, its name (owned
    /// by the node, which outlives the load) and its record.
    private struct Pending {
        var node: OpaquePointer
        var name: UnsafeRawBufferPointer
        var record: Tree.Record
    }

    consuming func load() -> Tree {
        let root = iso_image_get_root(image)!
        records.append(record(for: root, kind: .directory, parent: 0))
        // Breadth-first: each directory's children are appended together, so
        // they are consecutive records.
        var directories: [(node: OpaquePointer, index: Int)] = [(root, 0)]
        var next = 0
        while next < directories.count {
            let (dirNode, dirIndex) = directories[next]
            next += 1
            let children = uniquelyNamed(pendingChildren(of: dirNode, parent: UInt32(dirIndex)))
            records[dirIndex].payloadStart = UInt32(records.count)
            records[dirIndex].payloadCount = UInt32(children.count)
            for child in children {
                var record = child.record
                record.nameOffset = UInt32(bytes.count)
                record.nameLength = UInt16(child.name.count)
                bytes.append(contentsOf: child.name)
                if record.kind == .directory {
                    directories.append((child.node, records.count))
                } else if record.kind == .symlink {
                    let target = cBytes(iso_symlink_get_dest(child.node))
                    record.payloadStart = UInt32(bytes.count)
                    record.payloadCount = UInt32(target.count)
                    bytes.append(contentsOf: target)
                }
                records.append(record)
            }
        }
        let linkGroups = countLinks()
        return Tree(records: records, bytes: bytes, extents: extents, digests: digests,
                    attributes: attributes, linkGroups: linkGroups, session: session, mediumByteCount: mediumByteCount)
    }

    private mutating func pendingChildren(of dir: OpaquePointer, parent: UInt32) -> [Pending] {
        var iterator: OpaquePointer?
        guard iso_dir_get_children(dir, &iterator) == 1, let iterator else { return [] }
        defer { iso_dir_iter_free(iterator) }
        var children: [Pending] = []
        var child: OpaquePointer?
        while iso_dir_iter_next(iterator, &child) == 1, let node = child {
            guard let cName = iso_node_get_name(node) else { continue }
            let name = UnsafeRawBufferPointer(start: cName, count: strlen(cName))
            guard Self.isUsable(name), let kind = kind(of: node) else { continue }
            children.append(Pending(node: node, name: name, record: record(for: node, kind: kind, parent: parent)))
        }
        return children
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

    private func kind(of node: OpaquePointer) -> NodeKind? {
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

    private mutating func record(for node: OpaquePointer, kind: NodeKind, parent: UInt32) -> Tree.Record {
        var record = Tree.Record(
            parent: parent, payloadStart: 0, payloadCount: 0, nameOffset: 0, nameLength: 0,
            kind: kind, isFiltered: false, mode: UInt32(iso_node_get_mode(node)),
            uid: UInt32(iso_node_get_uid(node)), gid: UInt32(iso_node_get_gid(node)),
            inode: 0, nlink: 1, digestIndex: .max, attributesIndex: .max, size: 0,
            atime: Int64(iso_node_get_atime(node)), mtime: Int64(iso_node_get_mtime(node)),
            ctime: Int64(iso_node_get_ctime(node)))
        switch kind {
        case .regularFile: addFileContent(of: node, to: &record)
        case .characterDevice, .blockDevice:
            let device = UInt64(iso_special_get_dev(node))
            record.payloadStart = UInt32(truncatingIfNeeded: device)
            record.payloadCount = UInt32(truncatingIfNeeded: device >> 32)
        default: break
        }
        if let extra = loadAttributes(of: node) {
            record.attributesIndex = UInt32(attributes.count)
            attributes.append(extra)
        }
        return record
    }

    private mutating func addFileContent(of file: OpaquePointer, to record: inout Tree.Record) {
        record.size = UInt64(clamping: iso_file_get_size(file))
        var count: Int32 = 0
        var sections: UnsafeMutablePointer<iso_file_section>?
        if iso_file_get_old_image_sections(file, &count, &sections, 0) == 1, let sections {
            record.payloadStart = UInt32(extents.count)
            record.payloadCount = UInt32(clamping: count)
            for i in 0..<Int(record.payloadCount) {
                extents.append(Extent(block: sections[i].block, byteCount: sections[i].size))
            }
            free(sections)
        }
        var md5 = [CChar](repeating: 0, count: 16)
        if iso_file_get_md5(image, file, &md5, 0) == 1 {
            record.digestIndex = UInt32(digests.count)
            digests.append(MD5Digest(md5))
        }
        if let stream = iso_file_get_stream(file) {
            record.isFiltered = isofuse_stream_is_filtered(stream) != 0
            var fsID: UInt32 = 0, devID: dev_t = 0, inode: ino_t = 0
            iso_stream_get_id(stream, &fsID, &devID, &inode)
            record.inode = UInt32(truncatingIfNeeded: inode)
        }
    }

    /// xattrs other than libisofs' internal `isofs.*`, and ACLs; nil when there are none.
    private func loadAttributes(of node: OpaquePointer) -> NodeAttributes? {
        var result = NodeAttributes()
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
                let name = String(cString: cName)
                guard !name.hasPrefix("isofs.") else { continue }
                result.xattrs[name] = UnsafeRawBufferPointer(start: value, count: length).map { $0 }
            }
            iso_node_get_attrs(nil, &count, &names, &lengths, &values, 1 << 15)
        }
        var access: UnsafeMutablePointer<CChar>?, defaultACL: UnsafeMutablePointer<CChar>?
        // bit4: no access ACL gives nil instead of one made from the mode bits.
        if hasACL, iso_node_get_acl_text(node, &access, &defaultACL, 1 << 4) == 1 {
            let acl = ACLText(access: access.map { String(cString: $0) },
                              default: defaultACL.map { String(cString: $0) })
            if acl.access != nil || acl.default != nil { result.acl = acl }
            iso_node_get_acl_text(node, &access, &defaultACL, 1 << 15)
        }
        return result.xattrs.isEmpty && result.acl == nil ? nil : result
    }

    /// Hard-link counts: names sharing an inode are one file; a directory has
    /// its own entry, its "." and one ".." per subdirectory.
    /// Returns the names of each file that has several.
    private mutating func countLinks() -> [UInt32: [NodeID]] {
        // Counted first, so that only the inodes of hard links get a list of
        // names (a list for every file is an allocation for every file).
        var namesPerInode: [UInt32: UInt32] = [:]
        for r in records where r.kind != .directory && r.inode != 0 {
            namesPerInode[r.inode, default: 0] += 1
        }
        var names: [UInt32: [NodeID]] = [:]
        for i in records.indices {
            if records[i].kind == .directory {
                let start = Int(records[i].payloadStart)
                let subdirectories = records[start..<start + Int(records[i].payloadCount)]
                    .lazy.filter { $0.kind == .directory }.count
                records[i].nlink = 2 + UInt32(subdirectories)
            } else if records[i].inode != 0, let count = namesPerInode[records[i].inode] {
                records[i].nlink = count
                if count > 1 { names[records[i].inode, default: []].append(NodeID(rawValue: UInt32(i))) }
            }
        }
        return names
    }
}

/// The bytes of a C string (no terminator).
func cBytes(_ pointer: UnsafePointer<CChar>?) -> [UInt8] {
    guard let pointer else { return [] }
    return Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
}
