// Applies a change set to a loaded libisofs image (under the library lock).
//
// libisofs rules kept here: delete with `iso_node_remove` (never
// `iso_node_remove_tree`, which crashes on non-directories in 1.5.4); set
// xattrs with the merge flag (without it the file's `isofs.cx` goes and with
// it the file's MD5); move as take, rename, add.

import CIsoburn
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct TreeEditor {
    let image: OpaquePointer

    func apply(_ changes: ChangeSet) throws(IsofuseError) {
        for operation in changes.operations {
            switch operation {
            case let .add(path, content, metadata): try add(path, content, metadata)
            case let .remove(path): iso_node_remove(try node(at: path, forRemoval: true))
            case let .rename(from, to): try rename(from, to)
            case let .update(path, change): try update(try node(at: path), change)
            }
        }
    }

    // MARK: Operations

    private func add(_ path: MediumPath, _ content: ChangeSet.Content, _ metadata: Metadata) throws(IsofuseError) {
        let (parent, name) = try parentAndName(of: path)
        if let existing = try child(name, of: parent) {
            if content == .directory && iso_node_get_type(existing) == LIBISO_DIR {
                try update(existing, MetadataChange(metadata))
                return
            }
            iso_node_remove(existing)
        }
        var node: OpaquePointer?
        let ret: Int32 = try withCString(name) { name throws(IsofuseError) in
            switch content {
            case .file(let hostPath): iso_tree_add_new_node(image, parent, name, hostPath.string, &node)
            case .directory: iso_image_add_new_dir(image, parent, name, &node)
            case .symlink(let target): try withCString(target) { iso_image_add_new_symlink(image, parent, name, $0, &node) }
            case .fifo: iso_image_add_new_special(image, parent, name, S_IFIFO | mode_t(metadata.permissions), 0, &node)
            }
        }
        guard ret >= 0, let node else {
            throw IsofuseError(content.isHostFile ? .hostIO : .library, "cannot add \(path): \(isoErrorText(ret))")
        }
        if case .file(let hostPath) = content, iso_node_get_type(node) != LIBISO_FILE {
            iso_node_remove(node)
            throw IsofuseError(.invalidArgument, "cannot add \(path): \(hostPath) is not a regular file")
        }
        try update(node, MetadataChange(metadata))
    }

    private func rename(_ from: MediumPath, _ to: MediumPath) throws(IsofuseError) {
        let node = try node(at: from, forRemoval: true)
        guard !to.components.starts(with: from.components) || to.components == from.components else {
            throw IsofuseError(.invalidArgument, "cannot move \(from) into itself (\(to))")
        }
        let (parent, name) = try parentAndName(of: to)
        if let existing = try child(name, of: parent) {
            if existing == node { return }
            iso_node_remove(existing)
        }
        // take: the parent's reference becomes ours; add: ours becomes the new parent's.
        var ret = iso_node_take(node)
        if ret >= 0 { ret = try withCString(name) { iso_image_set_node_name(image, node, $0, 0) } }
        if ret >= 0 { ret = iso_dir_add_node(parent, node, ISO_REPLACE_NEVER) }
        if ret < 0 {
            iso_node_unref(node)
            throw IsofuseError(.library, "cannot move \(from) to \(to): \(isoErrorText(ret))")
        }
    }

    private func update(_ node: OpaquePointer, _ change: MetadataChange) throws(IsofuseError) {
        if let permissions = change.permissions { iso_node_set_permissions(node, mode_t(permissions & 0o7777)) }
        if let uid = change.uid { iso_node_set_uid(node, uid_t(uid)) }
        if let gid = change.gid { iso_node_set_gid(node, gid_t(gid)) }
        if let t = change.accessTime { iso_node_set_atime(node, time_t(t.seconds)) }
        if let t = change.modificationTime { iso_node_set_mtime(node, time_t(t.seconds)) }
        if let t = change.changeTime { iso_node_set_ctime(node, time_t(t.seconds)) }
        // bit1 merge, bit3 any namespace (not only user.); bit2 deletes the named ones.
        try setAttributes(node, Array(change.setXattrs), flag: 2 | 8)
        try setAttributes(node, change.removeXattrs.map { ($0, []) }, flag: 2 | 4 | 8)
        if let acl = change.acl {
            let ret = withOptionalCString(acl?.access) { access in
                withOptionalCString(acl?.default) { iso_node_set_acl_text(node, access, $0, 0) }
            }
            guard ret > 0 else { throw IsofuseError(.invalidArgument, "cannot set ACL: \(isoErrorText(ret))") }
        }
    }

    private func setAttributes(_ node: OpaquePointer, _ attributes: [(key: String, value: [UInt8])], flag: Int32) throws(IsofuseError) {
        guard !attributes.isEmpty else { return }
        if let name = attributes.first(where: { $0.key.hasPrefix("isofs.") })?.key {
            throw IsofuseError(.invalidArgument, "xattr \(name) is reserved for libisofs")
        }
        let names = attributes.map { strdup($0.key) }
        let values = attributes.map { attribute -> UnsafeMutablePointer<CChar>? in
            let copy = malloc(max(1, attribute.value.count))!.assumingMemoryBound(to: CChar.self)
            attribute.value.withUnsafeBytes { UnsafeMutableRawPointer(copy).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(copy), byteCount: $0.count) }
            return copy
        }
        defer { (names + values).forEach { free($0) } }
        var namePointers = names, valuePointers = values
        var lengths = attributes.map { $0.value.count }
        let ret = iso_node_set_attrs(node, attributes.count, &namePointers, &lengths, &valuePointers, flag)
        guard ret > 0 else { throw IsofuseError(.invalidArgument, "cannot set xattrs: \(isoErrorText(ret))") }
    }

    // MARK: Paths

    private func node(at path: MediumPath, forRemoval: Bool = false) throws(IsofuseError) -> OpaquePointer {
        var node: OpaquePointer?
        guard try withCString(path.bytes, { iso_image_path_to_node(image, $0, &node) }) == 1, let node else {
            throw IsofuseError(.notFound, "\(path) does not exist in the newest session")
        }
        if forRemoval && node == iso_image_get_root(image) {
            throw IsofuseError(.invalidArgument, "the root directory cannot be removed or moved")
        }
        return node
    }

    private func child(_ name: ArraySlice<UInt8>, of dir: OpaquePointer) throws(IsofuseError) -> OpaquePointer? {
        var node: OpaquePointer?
        return try withCString(name) { iso_image_dir_get_node(image, dir, $0, &node, 0) } == 1 ? node : nil
    }

    /// The directory that holds `path`, and the last name (checked to be recordable).
    private func parentAndName(of path: MediumPath) throws(IsofuseError) -> (OpaquePointer, ArraySlice<UInt8>) {
        let components = path.components
        guard let name = components.last else {
            throw IsofuseError(.invalidArgument, "'\(path)' names the root directory")
        }
        try Self.checkName(name, in: path)
        let parent = try node(at: MediumPath(components: components.dropLast()))
        guard iso_node_get_type(parent) == LIBISO_DIR else {
            throw IsofuseError(.notFound, "the parent of \(path) is not a directory")
        }
        return (parent, name)
    }

    /// Rock Ridge records names of up to 255 bytes; longer ones libisofs would truncate.
    static func checkName(_ name: some Collection<UInt8>, in path: MediumPath) throws(IsofuseError) {
        guard !name.elementsEqual([0x2E]), !name.elementsEqual([0x2E, 0x2E]), !name.contains(0) else {
            throw IsofuseError(.invalidArgument, "'\(String(decoding: name, as: UTF8.self))' cannot be a name on the medium (\(path))")
        }
        guard name.count <= 255 else {
            throw IsofuseError(.invalidArgument, "the name in \(path) is \(name.count) bytes long; the medium takes 255")
        }
    }
}

extension MetadataChange {
    /// Sets everything `metadata` has.
    init(_ metadata: Metadata) {
        self.init(permissions: metadata.permissions, uid: metadata.uid, gid: metadata.gid,
                  accessTime: metadata.accessTime, modificationTime: metadata.modificationTime,
                  changeTime: metadata.changeTime, setXattrs: metadata.xattrs,
                  acl: metadata.acl.map { ACLText?.some($0) })   // no ACL: none to set
    }
}

extension ChangeSet.Content {
    var isHostFile: Bool {
        if case .file = self { return true }
        return false
    }
}

/// libisofs takes `char *` for ACL texts and nil to delete one.
private func withOptionalCString<R>(_ string: String?, _ body: (UnsafeMutablePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return withMutableCString(string) { body($0) }
}
