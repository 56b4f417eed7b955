// A restricted unpickler: Python's pickle machine (protocols 2 to 5) for data only. It builds None, booleans,
// integers, floats, strings, bytes, tuples, lists and dicts; every global the pickle names must be on the caller's
// list, and every call (REDUCE, NEWOBJ) and persistent id goes to the caller, which builds what it understands and
// refuses the rest. Nothing is ever imported or executed, and nothing is allocated that the input's own bytes do not
// pay for: every length is checked against the bytes left before it is used.
import ClassicCNNEngine

/// A value built by `Unpickler`.
package indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for `Int` (LONG1 / LONG4), as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Items, and the depth of nesting below (0 for a tuple of scalars).
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    /// A global the caller allowed, not yet called.
    case global(module: String, name: String)
    /// What the caller built for a call or a persistent id.
    case object(AnyObject)

    package var int: Int? { if case .int(let value) = self { value } else { nil } }
    package var string: String? { if case .string(let value) = self { value } else { nil } }
    package var tuple: [PickleValue]? {
        switch self {
        case .tuple(let items, _): items
        case .list(let list): list.items
        default: nil
        }
    }

    /// How deep containers nest below this value (0 for a scalar or an empty container's contents).
    var depth: Int {
        switch self {
        case .tuple(let items, let depth): items.isEmpty ? 0 : depth
        case .list(let list): list.depth
        case .dict(let dict): dict.depth
        default: 0
        }
    }

    /// A short description for error messages.
    package var kind: String {
        switch self {
        case .none: "None"
        case .bool: "a boolean"
        case .int, .bigInt: "an integer"
        case .float: "a float"
        case .string: "a string"
        case .bytes: "bytes"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict: "a dict"
        case .global(let module, let name): "\(module).\(name)"
        case .object(let object): "a \(type(of: object))"
        }
    }
}

/// A list, shared by reference as Python's are (the memo and APPENDS see the same list).
package final class PickleList {
    package var items: [PickleValue] = []
    /// How deep containers nest below it, and whether it is inside another container (then it may not change).
    var depth = 0, isNested = false
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A dict (or OrderedDict), in insertion order; keys are compared as the unpickler's hashable keys.
package final class PickleDict {
    package private(set) var pairs: [(key: PickleValue, value: PickleValue)] = []
    private var index: [PickleKey: Int] = [:]
    var depth = 0, isNested = false

    package init() {}

    package func set(_ key: PickleValue, _ value: PickleValue) {
        let hashable = PickleKey(key)
        if let hashable, let at = index[hashable] { pairs[at].value = value; return }
        if let hashable { index[hashable] = pairs.count }
        pairs.append((key, value))
    }

    package subscript(key: String) -> PickleValue? { index[.string(key)].map { pairs[$0].value } }
}

/// The keys a dict can be looked up by.
private enum PickleKey: Hashable {
    case string(String), int(Int), bool(Bool), none
    init?(_ value: PickleValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .int(let number): self = .int(number)
        case .bool(let flag): self = .bool(flag)
        case .none: self = .none
        default: return nil
        }
    }
}

/// Reads one pickle from a byte buffer.
package struct Unpickler {
    /// Builds the object for a call of an allowed global with its arguments (REDUCE and NEWOBJ).
    package typealias Call = (_ module: String, _ name: String, _ arguments: [PickleValue]) throws -> PickleValue
    /// Builds the object a persistent id stands for.
    package typealias PersistentLoad = (_ id: PickleValue) throws -> PickleValue

    private let bytes: [UInt8]
    private let source: String
    private let allowedGlobals: Set<String>
    private let call: Call
    private let persistentLoad: PersistentLoad
    /// The deepest nesting of containers accepted (a state dict needs 4 or 5; a training checkpoint a few more).
    static let maximumDepth = 64
    /// Where the next opcode is read; after `load()`, just past the STOP.
    package private(set) var position: Int
    /// Whether `load()` failed because the buffer ended (a longer buffer may hold the whole pickle).
    package private(set) var ranOutOfBytes = false

    /// - Parameters:
    ///   - bytes: The buffer; the pickle starts at `start`.
    ///   - source: Names the file in errors.
    ///   - allowedGlobals: `module.name` of every global the pickle may name; any other is refused at once.
    package init(_ bytes: [UInt8], start: Int = 0, source: String, allowedGlobals: Set<String>,
                 call: @escaping Call, persistentLoad: @escaping PersistentLoad) {
        self.bytes = bytes
        self.source = source
        self.position = start
        self.allowedGlobals = allowedGlobals
        self.call = call
        self.persistentLoad = persistentLoad
    }

    private func fail(_ reason: String, at offset: Int) -> FileError {
        FileError(path: source, reason: "pickle byte \(offset): \(reason)")
    }

    private mutating func take(_ count: Int, for what: String) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - position else {
            ranOutOfBytes = true
            throw fail("truncated: \(what) needs \(count) bytes, \(bytes.count - position) are left", at: position)
        }
        defer { position += count }
        return bytes[position..<position + count]
    }

    private mutating func unsigned(_ count: Int, for what: String) throws -> Int {
        let slice = try take(count, for: what)
        var value: UInt64 = 0
        for (shift, byte) in slice.enumerated() { value |= UInt64(byte) << (8 * shift) }
        guard value <= UInt64(Int.max) else { throw fail("\(what) of \(value) is too large", at: position - count) }
        return Int(value)
    }

    private mutating func line(for what: String) throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0a) else {
            ranOutOfBytes = true
            throw fail("truncated: \(what) has no end of line", at: position)
        }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    /// Runs the pickle to its STOP and returns the value it built.
    package mutating func load() throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        func pop(_ opcode: String, at offset: Int) throws -> PickleValue {
            guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw fail("\(opcode) on an empty stack", at: offset) }
            return value
        }
        func popMark(_ opcode: String, at offset: Int) throws -> [PickleValue] {
            guard let mark = marks.popLast() else { throw fail("\(opcode) without a MARK", at: offset) }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }
        // Nesting is bounded (a chain of a million tuples would overflow the stack when freed), and a list or dict
        // may not change once it is inside another container (as pickle never does for data), so depths stay true
        // and nothing can contain itself.
        func nest(_ items: [PickleValue], into container: AnyObject?, at offset: Int) throws -> Int {
            var depth = 0
            for item in items {
                switch item {
                case .list(let list):
                    guard list !== container else { throw fail("a list that contains itself", at: offset) }
                    list.isNested = true
                case .dict(let dict):
                    guard dict !== container else { throw fail("a dict that contains itself", at: offset) }
                    dict.isNested = true
                default: break
                }
                depth = max(depth, item.depth + 1)
            }
            guard depth <= Self.maximumDepth else { throw fail("containers nested deeper than \(Self.maximumDepth)", at: offset) }
            return depth
        }
        func tuple(_ items: [PickleValue], at offset: Int) throws -> PickleValue {
            .tuple(items, depth: try nest(items, into: nil, at: offset))
        }
        func setItems(_ pairs: [PickleValue], into target: PickleValue, _ opcode: String, at offset: Int) throws {
            guard case .dict(let dict) = target else { throw fail("\(opcode) on \(target.kind), not a dict", at: offset) }
            guard pairs.count % 2 == 0 else { throw fail("\(opcode) with an odd number of items", at: offset) }
            guard !dict.isNested else { throw fail("\(opcode) on a dict already inside another container", at: offset) }
            dict.depth = max(dict.depth, try nest(pairs, into: dict, at: offset))
            for i in stride(from: 0, to: pairs.count, by: 2) { dict.set(pairs[i], pairs[i + 1]) }
        }
        func append(_ items: [PickleValue], to target: PickleValue, _ opcode: String, at offset: Int) throws {
            guard case .list(let list) = target else { throw fail("\(opcode) on \(target.kind), not a list", at: offset) }
            guard !list.isNested else { throw fail("\(opcode) on a list already inside another container", at: offset) }
            list.depth = max(list.depth, try nest(items, into: list, at: offset))
            list.items += items
        }
        func global(_ module: String, _ name: String, at offset: Int) throws -> PickleValue {
            guard allowedGlobals.contains("\(module).\(name)") else {
                throw fail("refused: the pickle asks for \(module).\(name), which a file of weights never needs (nothing was run)", at: offset)
            }
            return .global(module: module, name: name)
        }
        func callGlobal(_ callable: PickleValue, _ arguments: PickleValue, _ opcode: String, at offset: Int) throws -> PickleValue {
            guard case .global(let module, let name) = callable else { throw fail("\(opcode) of \(callable.kind), which cannot be called", at: offset) }
            guard case .tuple(let items, _) = arguments else { throw fail("\(opcode) of \(module).\(name) with \(arguments.kind) as its arguments", at: offset) }
            do { return try call(module, name, items) } catch let error as FileError { throw error } catch {
                throw fail("\(module).\(name): \(error)", at: offset)
            }
        }

        while true {
            let offset = position
            let opcode = try take(1, for: "an opcode").first!
            switch opcode {
            case 0x80: _ = try take(1, for: "PROTO")                              // PROTO
            case 0x95: _ = try take(8, for: "FRAME")                              // FRAME: a hint, the bytes follow inline
            case 0x2e:                                                            // STOP
                guard stack.count == 1, marks.isEmpty else { throw fail("STOP with \(stack.count) values on the stack", at: offset) }
                return stack[0]
            case 0x28: marks.append(stack.count)                                  // MARK
            case 0x29: stack.append(.tuple([], depth: 0))                         // EMPTY_TUPLE
            case 0x5d, 0x8f: stack.append(.list(PickleList()))                    // EMPTY_LIST, EMPTY_SET (kept as a list)
            case 0x7d: stack.append(.dict(PickleDict()))                          // EMPTY_DICT
            case 0x74: stack.append(try tuple(try popMark("TUPLE", at: offset), at: offset))   // TUPLE
            case 0x85, 0x86, 0x87:                                                // TUPLE1, TUPLE2, TUPLE3
                let count = Int(opcode - 0x84)
                guard stack.count - count >= (marks.last ?? 0) else { throw fail("TUPLE\(count) on a short stack", at: offset) }
                let items = Array(stack.suffix(count))
                stack.removeLast(count)
                stack.append(try tuple(items, at: offset))
            case 0x6c:                                                            // LIST
                let list = PickleValue.list(PickleList())
                try append(try popMark("LIST", at: offset), to: list, "LIST", at: offset)
                stack.append(list)
            case 0x64:                                                            // DICT
                let dict = PickleValue.dict(PickleDict())
                try setItems(try popMark("DICT", at: offset), into: dict, "DICT", at: offset)
                stack.append(dict)
            case 0x91:                                                            // FROZENSET
                let set = PickleValue.list(PickleList())
                try append(try popMark("FROZENSET", at: offset), to: set, "FROZENSET", at: offset)
                stack.append(set)
            case 0x4e: stack.append(.none)                                        // NONE
            case 0x88: stack.append(.bool(true))                                  // NEWTRUE
            case 0x89: stack.append(.bool(false))                                 // NEWFALSE
            case 0x4a:                                                            // BININT: signed 32-bit
                stack.append(.int(Int(Int32(truncatingIfNeeded: try unsigned(4, for: "BININT")))))
            case 0x4b: stack.append(.int(try unsigned(1, for: "BININT1")))        // BININT1
            case 0x4d: stack.append(.int(try unsigned(2, for: "BININT2")))        // BININT2
            case 0x8a, 0x8b:                                                      // LONG1, LONG4
                let count = try unsigned(opcode == 0x8a ? 1 : 4, for: "a LONG's length")
                let digits = Array(try take(count, for: "a LONG"))
                if digits.count <= 8 {
                    var value: UInt64 = 0
                    for (shift, byte) in digits.enumerated() { value |= UInt64(byte) << (8 * shift) }
                    // Sign-extend from the top byte.
                    if let last = digits.last, last & 0x80 != 0, digits.count < 8 { value |= ~0 << (8 * UInt64(digits.count)) }
                    stack.append(.int(Int(Int64(bitPattern: value))))
                } else {
                    stack.append(.bigInt(digits))
                }
            case 0x47:                                                            // BINFLOAT: big-endian double
                let slice = try take(8, for: "BINFLOAT")
                stack.append(.float(Double(bitPattern: slice.reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58, 0x8c, 0x8d:                                                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let count = try unsigned(opcode == 0x8c ? 1 : opcode == 0x58 ? 4 : 8, for: "a string's length")
                stack.append(.string(String(decoding: try take(count, for: "a string"), as: UTF8.self)))
            case 0x54, 0x55:                                                      // BINSTRING, SHORT_BINSTRING (Python 2 str)
                let count = try unsigned(opcode == 0x55 ? 1 : 4, for: "a string's length")
                stack.append(.string(String(decoding: try take(count, for: "a string"), as: UTF8.self)))
            case 0x42, 0x43, 0x8e:                                                // BINBYTES, SHORT_BINBYTES, BINBYTES8
                let count = try unsigned(opcode == 0x43 ? 1 : opcode == 0x42 ? 4 : 8, for: "bytes' length")
                stack.append(.bytes(Array(try take(count, for: "bytes"))))
            case 0x71, 0x72:                                                      // BINPUT, LONG_BINPUT
                let key = try unsigned(opcode == 0x71 ? 1 : 4, for: "a memo key")
                guard let top = stack.last else { throw fail("PUT on an empty stack", at: offset) }
                memo[key] = top
            case 0x94:                                                            // MEMOIZE
                guard let top = stack.last else { throw fail("MEMOIZE on an empty stack", at: offset) }
                memo[memo.count] = top
            case 0x68, 0x6a:                                                      // BINGET, LONG_BINGET
                let key = try unsigned(opcode == 0x68 ? 1 : 4, for: "a memo key")
                guard let value = memo[key] else { throw fail("GET of memo \(key), which was never put", at: offset) }
                stack.append(value)
            case 0x73:                                                            // SETITEM
                let value = try pop("SETITEM", at: offset), key = try pop("SETITEM", at: offset)
                guard let target = stack.last else { throw fail("SETITEM without a dict", at: offset) }
                try setItems([key, value], into: target, "SETITEM", at: offset)
            case 0x75:                                                            // SETITEMS
                let pairs = try popMark("SETITEMS", at: offset)
                guard let target = stack.last else { throw fail("SETITEMS without a dict", at: offset) }
                try setItems(pairs, into: target, "SETITEMS", at: offset)
            case 0x61:                                                            // APPEND
                let value = try pop("APPEND", at: offset)
                guard let target = stack.last else { throw fail("APPEND without a list", at: offset) }
                try append([value], to: target, "APPEND", at: offset)
            case 0x65, 0x90:                                                      // APPENDS, ADDITEMS
                let items = try popMark("APPENDS", at: offset)
                guard let target = stack.last else { throw fail("APPENDS without a list", at: offset) }
                try append(items, to: target, "APPENDS", at: offset)
            case 0x63:                                                            // GLOBAL: "module\nname\n"
                let module = try line(for: "GLOBAL's module"), name = try line(for: "GLOBAL's name")
                stack.append(try global(module, name, at: offset))
            case 0x93:                                                            // STACK_GLOBAL
                let name = try pop("STACK_GLOBAL", at: offset), module = try pop("STACK_GLOBAL", at: offset)
                guard let moduleName = module.string, let globalName = name.string else {
                    throw fail("STACK_GLOBAL of \(module.kind) and \(name.kind), not two strings", at: offset)
                }
                stack.append(try global(moduleName, globalName, at: offset))
            case 0x52, 0x81:                                                      // REDUCE, NEWOBJ
                let arguments = try pop("REDUCE", at: offset), callable = try pop("REDUCE", at: offset)
                stack.append(try callGlobal(callable, arguments, opcode == 0x52 ? "REDUCE" : "NEWOBJ", at: offset))
            case 0x62:                                                            // BUILD: the state of an object
                let state = try pop("BUILD", at: offset)
                guard let target = stack.last else { throw fail("BUILD without an object", at: offset) }
                switch target {
                case .dict, .object: break   // An OrderedDict's `_metadata`, a tensor's attributes: not needed.
                default: throw fail("BUILD of \(target.kind) with \(state.kind)", at: offset)
                }
            case 0x51:                                                            // BINPERSID
                let id = try pop("BINPERSID", at: offset)
                stack.append(try persistentLoad(id))
            case 0x50:                                                            // PERSID: a text id
                stack.append(try persistentLoad(.string(try line(for: "PERSID"))))
            case 0x30: _ = try pop("POP", at: offset)                              // POP
            case 0x31: _ = try popMark("POP_MARK", at: offset)                    // POP_MARK
            case 0x32:                                                            // DUP
                guard let top = stack.last else { throw fail("DUP on an empty stack", at: offset) }
                stack.append(top)
            default:
                throw fail("opcode 0x\(String(opcode, radix: 16)) is not one a file of weights uses (only protocols 2 to 5, data only, are read)", at: offset)
            }
        }
    }
}
