// Journal records as JSON, written by hand: the same JSON that JSONEncoder
// writes for their Codable conformances (JSONDecoder reads the journal back),
// without its generic machinery. `cp -a` of a tree into the mount writes
// about eight records a file, and JSONEncoder took 30% of the daemon's time.
//
// The shapes, as Swift's synthesized Codable has them: an enum case with
// associated values is {"case":{"_0":…,"_1":…}}, a nil optional is left
// out, a dictionary whose keys are not strings is an array of key, value,
// key, value. JSON strings escape quotes, backslashes and control
// characters, so a record never holds a newline (the journal's separator).

import SessionStore

enum JournalEncoding {
    /// `record` as one line of JSON, with its newline.
    static func line(_ record: JournalRecord) -> [UInt8] {
        var json = JSONWriter()
        json.out.reserveCapacity(512)
        json.object { json in
            switch record {
            case let .node(id, node):
                json.key("node") { json in
                    json.object { json in
                        json.key("_0") { $0.number(id) }
                        json.key("_1") { $0.upperNode(node) }
                    }
                }
            case let .drop(id):
                json.key("drop") { json in json.object { json in json.key("_0") { $0.number(id) } } }
            case let .listing(id, entries):
                json.key("listing") { json in
                    json.object { json in
                        json.key("_0") { $0.number(id) }
                        json.key("_1") { json in
                            json.array(entries.flatMap { [JSONValue.name($0.key), .ref($0.value)] }) { json, value in
                                switch value {
                                case .name(let name): json.bytes(name)
                                case .ref(let ref): json.nodeRef(ref)
                                }
                            }
                        }
                    }
                }
            case let .entry(id, name, ref):
                json.key("entry") { json in
                    json.object { json in
                        json.key("_0") { $0.number(id) }
                        json.key("_1") { $0.bytes(name) }
                        if let ref { json.key("_2") { $0.nodeRef(ref) } }
                    }
                }
            case let .shadow(base, upper):
                json.key("shadow") { json in
                    json.object { json in
                        json.key("_0") { $0.nodeID(base) }
                        if let upper { json.key("_1") { $0.number(upper) } }
                    }
                }
            }
        }
        json.out.append(UInt8(ascii: "\n"))
        return json.out
    }

    private enum JSONValue {
        case name(Name)
        case ref(NodeRef)
    }
}

/// Writes JSON into a byte array: values, and objects and arrays whose
/// members are separated by commas as they come.
private struct JSONWriter {
    var out: [UInt8] = []
    /// Whether the innermost object or array has a member yet.
    private var hasMember: [Bool] = []

    mutating func object(_ members: (inout JSONWriter) -> Void) {
        open(UInt8(ascii: "{"))
        members(&self)
        close(UInt8(ascii: "}"))
    }

    mutating func array<Element>(_ elements: [Element], _ write: (inout JSONWriter, Element) -> Void) {
        open(UInt8(ascii: "["))
        for element in elements {
            separate()
            write(&self, element)
        }
        close(UInt8(ascii: "]"))
    }

    mutating func key(_ name: String, _ value: (inout JSONWriter) -> Void) {
        separate()
        string(name)
        out.append(UInt8(ascii: ":"))
        value(&self)
    }

    mutating func number(_ value: some BinaryInteger) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        // Digit by digit: String(value) allocated a string a number.
        let magnitude = UInt64(value.magnitude)
        var power: UInt64 = 1
        while magnitude / power >= 10 { power *= 10 }
        while power > 0 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude / power % 10))
            power /= 10
        }
    }

    mutating func bytes(_ bytes: [UInt8]) {
        array(bytes) { $0.number($1) }
    }

    mutating func string(_ text: String) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xf)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func nodeID(_ id: NodeID) {
        object { json in json.key("rawValue") { $0.number(id.rawValue) } }
    }

    mutating func nodeRef(_ ref: NodeRef) {
        object { json in
            switch ref {
            case .base(let id): json.key("base") { json in json.object { json in json.key("_0") { $0.nodeID(id) } } }
            case .upper(let id): json.key("upper") { json in json.object { json in json.key("_0") { $0.number(id) } } }
            }
        }
    }

    mutating func timestamp(_ time: Timestamp) {
        object { json in
            json.key("seconds") { $0.number(time.seconds) }
            json.key("nanoseconds") { $0.number(time.nanoseconds) }
        }
    }

    mutating func upperNode(_ node: UpperNode) {
        object { json in
            json.key("kind") { $0.number(node.kind.rawValue) }
            json.key("metadata") { $0.metadata(node.metadata) }
            if let origin = node.origin { json.key("origin") { $0.nodeID(origin) } }
            if let content = node.content {
                json.key("content") { json in
                    json.object { json in
                        switch content {
                        case .base(let id): json.key("base") { json in json.object { json in json.key("_0") { $0.nodeID(id) } } }
                        case .staged(let id): json.key("staged") { json in json.object { json in json.key("_0") { $0.number(id) } } }
                        }
                    }
                }
            }
            json.key("size") { $0.number(node.size) }
            if let target = node.target { json.key("target") { $0.bytes(target) } }
            json.key("rdev") { $0.number(node.rdev) }
            json.key("nlink") { $0.number(node.nlink) }
        }
    }

    mutating func metadata(_ metadata: Metadata) {
        object { json in
            json.key("permissions") { $0.number(metadata.permissions) }
            json.key("uid") { $0.number(metadata.uid) }
            json.key("gid") { $0.number(metadata.gid) }
            json.key("accessTime") { $0.timestamp(metadata.accessTime) }
            json.key("modificationTime") { $0.timestamp(metadata.modificationTime) }
            json.key("changeTime") { $0.timestamp(metadata.changeTime) }
            json.key("xattrs") { json in
                json.object { json in
                    for (name, value) in metadata.xattrs { json.key(name) { $0.bytes(value) } }
                }
            }
            if let acl = metadata.acl {
                json.key("acl") { json in
                    json.object { json in
                        if let access = acl.access { json.key("access") { $0.string(access) } }
                        if let defaults = acl.default { json.key("default") { $0.string(defaults) } }
                    }
                }
            }
        }
    }

    private mutating func open(_ bracket: UInt8) {
        out.append(bracket)
        hasMember.append(false)
    }

    private mutating func close(_ bracket: UInt8) {
        hasMember.removeLast()
        out.append(bracket)
    }

    private mutating func separate() {
        if hasMember.last == true { out.append(UInt8(ascii: ",")) }
        if !hasMember.isEmpty { hasMember[hasMember.count - 1] = true }
    }
}
