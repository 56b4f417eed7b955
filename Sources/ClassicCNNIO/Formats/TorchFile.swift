// PyTorch's `torch.save` files, read without Python: the zip archive of PyTorch 1.6 and later (`<name>/data.pkl`, one
// `<name>/data/<key>` entry per storage) and the legacy format in which most of torchvision's classic weights were
// saved (four pickles — a magic number, the protocol version, the system's sizes, the object — then the list of
// storage keys and each storage as an element count and its raw little-endian bytes).
//
// The object is read by the restricted unpickler (Pickle.swift) with the only globals `torch.save` writes for a state
// dict: OrderedDict, the tensor and parameter rebuilders, and the typed storages. Any other global is refused before
// anything is built. Storage sizes are checked against the file, and every tensor's view (offset, shape, strides)
// against its storage, before a value is allocated. Values are converted to float32.
import ClassicCNNEngine

/// Weights read from a file of another framework, under the names that file gives them.
public struct ForeignWeights: Sendable {
    /// The tensors, in the file's order, converted to float32.
    public var tensors: [NamedTensor]
    /// Each tensor's stored element type, as safetensors spells them (`"F32"`, `"F16"`, `"BF16"`, `"I64"`, ...).
    public var dtypes: [String: String]
    /// The file's format, in words (`"PyTorch zip archive"`, `"PyTorch legacy format"`, `"safetensors"`).
    public var format: String
}

/// A PyTorch `.pth` / `.pt` file opened for reading: its state dict's names, shapes and element types are known and
/// checked once it is open; each tensor's values are read when asked for, so that a large file never sits in memory
/// twice.
public final class TorchFile {
    /// The tensors' names, in the file's order (DataParallel's `module.` prefix removed).
    public let names: [String]
    /// The tensors' shapes, in the same order.
    public let shapes: [[Int]]
    /// Each tensor's stored element type, as safetensors spells them (`"F32"`, `"F16"`, `"BF16"`, `"I64"`, ...).
    public let dtypes: [String]
    /// `"PyTorch zip archive"` or `"PyTorch legacy format"`.
    public let format: String
    private let views: [TensorView]
    private let readStorage: (Storage, Int, UnsafeMutableRawBufferPointer) throws -> Void
    private let path: String

    private init(path: String, format: String, views: [(name: String, tensor: TensorView)],
                 readStorage: @escaping (Storage, Int, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        for (name, view) in views { try Self.check(view, name: name, path: path) }
        self.path = path
        self.format = format
        self.names = views.map(\.name)
        self.shapes = views.map(\.tensor.shape)
        self.dtypes = views.map(\.tensor.storage.root.dtype.rawValue)
        self.views = views.map(\.tensor)
        self.readStorage = readStorage
    }

    /// Whether the file starts as one of `torch.save`'s two formats does (a zip file, or the legacy magic number).
    public static func hasSignature(_ prefix: [UInt8]) -> Bool {
        ZipArchive.hasSignature(prefix) || isLegacy(prefix)
    }

    /// Opens the state dict in a `torch.save` file: the file's object itself when it is a dict of tensors, or the
    /// dict under `state_dict`, `model` or `model_state_dict` (a training checkpoint's layout). Entries that are not
    /// tensors are left out.
    /// - Throws: `FileError` naming the file and the problem: not a PyTorch file, a global other than a state dict's,
    ///   storage sizes the file cannot hold, a view outside its storage, a big-endian file, no tensors at all.
    public static func open(path: String) throws -> TorchFile {
        let file = try ReadableFile(path: path)
        let prefix = try file.bytes(at: 0, count: min(file.size, 16), what: "the header")
        if ZipArchive.hasSignature(prefix) { return try openZip(file) }
        guard isLegacy(prefix) else {
            throw FileError(path: path, reason: "not a PyTorch file: it starts neither as a zip archive nor with torch.save's legacy magic number")
        }
        return try openLegacy(file)
    }

    /// Every tensor of the file's state dict, converted to float32: `open(path:)`, then each tensor's values.
    public static func read(path: String) throws -> ForeignWeights {
        let file = try open(path: path)
        let tensors = try file.names.indices.map { NamedTensor(name: file.names[$0], shape: file.shapes[$0], values: try file.values(at: $0)) }
        return ForeignWeights(tensors: tensors, dtypes: Dictionary(zip(file.names, file.dtypes), uniquingKeysWith: { a, _ in a }), format: file.format)
    }

    // MARK: - The object

    /// torch.save's legacy magic number, 0x1950a86a20f9469cfc6c, as pickle's LONG1 stores it (little-endian).
    private static let magic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    private static func isLegacy(_ prefix: [UInt8]) -> Bool {
        prefix.count >= 14 && prefix[0] == 0x80 && prefix[2] == 0x8a && prefix[3] == 10 && Array(prefix[4..<14]) == magic
    }

    /// The storage classes a state dict names, with their element types.
    private static let storageTypes: [String: SafeTensors.DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8,
        "BoolStorage": .bool,
    ]

    private static let allowedGlobals: Set<String> = Set([
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    ] + storageTypes.keys.map { "torch.\($0)" })

    /// One storage the object refers to, by its key.
    private final class Storage {
        let key: String
        let dtype: SafeTensors.DType
        let count: Int
        init(key: String, dtype: SafeTensors.DType, count: Int) { (self.key, self.dtype, self.count) = (key, dtype, count) }
    }

    /// A storage, or a legacy view into one (elements `offset..<offset + count` of `root`).
    private final class StorageView {
        let root: Storage
        let offset: Int
        let count: Int
        init(root: Storage, offset: Int, count: Int) { (self.root, self.offset, self.count) = (root, offset, count) }
    }

    /// A tensor as the pickle describes it: a view of a storage.
    private final class TensorView {
        let storage: StorageView
        let offset: Int
        let shape: [Int]
        let strides: [Int]
        init(storage: StorageView, offset: Int, shape: [Int], strides: [Int]) {
            (self.storage, self.offset, self.shape, self.strides) = (storage, offset, shape, strides)
        }
    }

    /// Unpickles the object at `start` of `bytes`, registering the storages it refers to in `storages`.
    private static func unpickle(_ bytes: [UInt8], start: Int, path: String, storages: StorageTable) throws -> (PickleValue, end: Int, ranOut: Bool) {
        var unpickler = Unpickler(bytes, start: start, source: path, allowedGlobals: allowedGlobals, call: { module, name, arguments in
            try call(module, name, arguments)
        }, persistentLoad: { id in
            try storages.load(id)
        })
        do {
            let value = try unpickler.load()
            return (value, unpickler.position, false)
        } catch where unpickler.ranOutOfBytes {
            return (.none, unpickler.position, true)
        }
    }

    /// The calls a state dict's pickle makes.
    private static func call(_ module: String, _ name: String, _ arguments: [PickleValue]) throws -> PickleValue {
        switch "\(module).\(name)" {
        case "collections.OrderedDict":
            let dict = PickleDict()
            if let pairs = arguments.first?.tuple {
                for pair in pairs {
                    guard let items = pair.tuple, items.count == 2 else { throw ReadError("OrderedDict of something other than pairs") }
                    dict.set(items[0], items[1])
                }
            }
            return .dict(dict)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard arguments.count >= 4, case .object(let object) = arguments[0], let storage = object as? StorageView,
                  let offset = arguments[1].int, let shape = arguments[2].tuple?.compactMap(\.int),
                  let strides = arguments[3].tuple?.compactMap(\.int),
                  shape.count == arguments[2].tuple?.count, strides.count == arguments[3].tuple?.count else {
                throw ReadError("a tensor whose storage, offset, size or stride is malformed")
            }
            return .object(TensorView(storage: storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = arguments.first, case .object(let object) = data, object is TensorView else {
                throw ReadError("a parameter without a tensor")
            }
            return data
        default:
            throw ReadError("a file of weights never calls \(module).\(name)")
        }
    }

    private struct ReadError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The storages met while unpickling, by key.
    private final class StorageTable {
        let path: String
        var byKey: [String: Storage] = [:]
        init(path: String) { self.path = path }

        /// A persistent id: `('storage', torch.<Type>Storage, key, location, count)`, and in the legacy format a
        /// sixth item, nil or `(view key, offset, view count)`.
        func load(_ id: PickleValue) throws -> PickleValue {
            guard let items = id.tuple, items.count == 5 || items.count == 6, items[0].string == "storage",
                  case .global(_, let typeName) = items[1], let key = items[2].string, let count = items[4].int, count >= 0 else {
                throw FileError(path: path, reason: "a persistent id that is not a storage's: \(id.kind)")
            }
            guard let dtype = storageTypes[typeName] else { throw FileError(path: path, reason: "storage type \(typeName) is not supported") }
            if let known = byKey[key], known.dtype != dtype || known.count != count {
                throw FileError(path: path, reason: "storage \(key) is described twice, differently")
            }
            let root = byKey[key] ?? Storage(key: key, dtype: dtype, count: count)
            byKey[key] = root
            if items.count == 6, let view = items[5].tuple {
                guard view.count == 3, let offset = view[1].int, let viewCount = view[2].int, offset >= 0, viewCount >= 0,
                      offset <= count, viewCount <= count - offset else {
                    throw FileError(path: path, reason: "storage \(key) has a view outside it")
                }
                return .object(StorageView(root: root, offset: offset, count: viewCount))
            }
            return .object(StorageView(root: root, offset: 0, count: count))
        }
    }

    /// The state dict's tensors, by name: see `read(path:)`.
    private static func stateDict(_ object: PickleValue, path: String) throws -> [(name: String, tensor: TensorView)] {
        guard case .dict(var dict) = object else {
            throw FileError(path: path, reason: "holds \(object.kind), not a dict of tensors (a state dict)")
        }
        for key in ["state_dict", "model", "model_state_dict"] {
            if case .dict(let inner)? = dict[key] { dict = inner; break }
        }
        var tensors: [(String, TensorView)] = []
        for (key, value) in dict.pairs {
            guard case .object(let object) = value, let tensor = object as? TensorView, let name = key.string else { continue }
            tensors.append((name.hasPrefix("module.") ? String(name.dropFirst(7)) : name, tensor))
        }
        guard !tensors.isEmpty else {
            let keys = dict.pairs.prefix(8).map { $0.key.string ?? $0.key.kind }
            throw FileError(path: path, reason: "holds no tensors (its keys: \(keys.joined(separator: ", "))\(dict.pairs.count > 8 ? ", ..." : ""))")
        }
        return tensors
    }

    /// Checks a view against its storage before anything is allocated for it.
    private static func check(_ view: TensorView, name: String, path: String) throws {
        func fail(_ reason: String) -> FileError { FileError(path: path, reason: "tensor '\(name)': \(reason)") }
        guard view.shape.count == view.strides.count else { throw fail("\(view.shape.count) sizes but \(view.strides.count) strides") }
        guard view.shape.allSatisfy({ $0 >= 0 }), view.strides.allSatisfy({ $0 >= 0 }), view.offset >= 0 else {
            throw fail("a negative size, stride or offset")
        }
        var count = 1, last = view.offset
        for (size, stride) in zip(view.shape, view.strides) {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { throw fail("shape \(view.shape) overflows") }
            count = product
            if size > 0 {
                let (step, stepOverflow) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, sumOverflow) = last.addingReportingOverflow(step)
                guard !stepOverflow, !sumOverflow else { throw fail("strides \(view.strides) overflow") }
                last = sum
            }
        }
        guard count == 0 || last < view.storage.count else {
            throw fail("shape \(view.shape), strides \(view.strides) and offset \(view.offset) reach element \(last) of a storage of \(view.storage.count)")
        }
        guard count <= max(view.storage.count, 1) else { throw fail("\(count) elements overlap in a storage of \(view.storage.count)") }
    }

    /// The `index`th tensor's values, converted to float32 (read from the file now).
    public func values(at index: Int) throws -> [Float] {
        let view = views[index], storage = view.storage, dtype = storage.root.dtype
        let count = view.shape.reduce(1, *)
        guard count > 0 else { return [] }
        let last = view.offset + zip(view.shape, view.strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        let span = last - view.offset + 1
        // Row-major with no gaps (dimensions of size 1 may have any stride): the values are the span itself.
        var expected = 1, contiguous = true
        for (size, stride) in zip(view.shape, view.strides).reversed() where size != 1 {
            if stride != expected { contiguous = false }
            expected *= size
        }
        var values = [Float](repeating: 0, count: count)
        if contiguous && dtype == .f32 {
            // A contiguous float32 tensor (nearly all of them) goes straight from the file into its values.
            try values.withUnsafeMutableBytes { try readStorage(storage.root, storage.offset + view.offset, $0) }
            return values
        }
        // The elements the view spans, read once, then converted and gathered.
        let bytes = try [UInt8](unsafeUninitializedCapacity: span * dtype.size) { buffer, initialized in
            try readStorage(storage.root, storage.offset + view.offset, UnsafeMutableRawBufferPointer(buffer))
            initialized = buffer.count
        }
        if contiguous {
            values.withUnsafeMutableBufferPointer { out in bytes.withUnsafeBytes { SafeTensors.convert($0, dtype: dtype, into: out) } }
            return values
        }
        var all = [Float](repeating: 0, count: span)
        all.withUnsafeMutableBufferPointer { out in bytes.withUnsafeBytes { SafeTensors.convert($0, dtype: dtype, into: out) } }
        var position = [Int](repeating: 0, count: view.shape.count)
        for i in 0..<count {
            var at = 0
            for d in 0..<position.count { at += position[d] * view.strides[d] }
            values[i] = all[at]
            var d = position.count - 1
            while d >= 0 {
                position[d] += 1
                if position[d] < view.shape[d] { break }
                position[d] = 0
                d -= 1
            }
        }
        return values
    }

    // MARK: - The two formats

    private static func openZip(_ file: ReadableFile) throws -> TorchFile {
        let path = file.path
        let archive = try ZipArchive(file: file)
        let pickles = archive.entries.filter { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickle = pickles.first else {
            if archive.entry(named: "model.weights.h5") != nil {
                throw FileError(path: path, reason: "a Keras 3 .keras file, not a PyTorch one")
            }
            throw FileError(path: path, reason: "a zip archive without one <name>/data.pkl: not a file torch.save wrote")
        }
        let folder = String(pickle.name.dropLast("data.pkl".count))
        if let order = archive.entry(named: folder + "byteorder") {
            let text = String(decoding: try archive.contents(of: order, limit: 64), as: UTF8.self)
            guard text == "little" else { throw FileError(path: path, reason: "written on a \(text)-endian machine; only little-endian files are read") }
        }
        let storages = StorageTable(path: path)
        let bytes = try archive.contents(of: pickle)
        let (object, _, ranOut) = try unpickle(bytes, start: 0, path: "\(path) (\(pickle.name))", storages: storages)
        guard !ranOut else { throw FileError(path: path, reason: "\(pickle.name) is truncated") }
        let views = try stateDict(object, path: path)
        // Every storage's entry must hold what the pickle says it has, before anything is read.
        var entries: [String: ZipArchive.Entry] = [:]
        for (key, storage) in storages.byKey {
            guard let entry = archive.entry(named: folder + "data/" + key) else {
                throw FileError(path: path, reason: "storage \(key) has no entry \(folder)data/\(key)")
            }
            let (bytes, overflow) = storage.count.multipliedReportingOverflow(by: storage.dtype.size)
            guard !overflow, bytes <= entry.size else {
                throw FileError(path: path, reason: "storage \(key) claims \(storage.count) elements, its entry holds \(entry.size) bytes")
            }
            entries[key] = entry
        }
        // A deflated storage (PyTorch stores them uncompressed) is inflated once, not once per tensor viewing it.
        let inflated = InflatedEntries()
        return try TorchFile(path: path, format: "PyTorch zip archive", views: views) { storage, first, buffer in
            let entry = entries[storage.key]!, offset = first * storage.dtype.size
            guard entry.method != 0 else { return try archive.read(entry, into: buffer, at: offset) }
            if inflated.key != storage.key { (inflated.key, inflated.bytes) = (storage.key, try archive.contents(of: entry)) }
            inflated.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + buffer.count])) }
        }
    }

    /// The last deflated storage inflated, kept for the next tensor that views it.
    private final class InflatedEntries {
        var key: String?
        var bytes: [UInt8] = []
    }

    private static func openLegacy(_ file: ReadableFile) throws -> TorchFile {
        let path = file.path
        let storages = StorageTable(path: path)
        // The pickles come first; their length is known only by reading them: try a prefix, and a longer one if short.
        var length = min(file.size, 1 << 20)
        while true {
            let bytes = try file.bytes(at: 0, count: length, what: "the pickles")
            var position = 0
            var values: [PickleValue] = []
            var ranOut = false
            storages.byKey = [:]
            for _ in 0..<5 {
                let (value, end, short) = try unpickle(bytes, start: position, path: path, storages: storages)
                if short { ranOut = true; break }
                values.append(value)
                position = end
                if values.count == 1, case .bigInt(let digits) = value, digits == magic { continue }
                if values.count == 1 { throw FileError(path: path, reason: "not a PyTorch file: the magic number is wrong") }
                if values.count == 2 {
                    guard value.int == 1001 else { throw FileError(path: path, reason: "legacy format version \(value.int.map(String.init) ?? value.kind), not 1001") }
                }
                if values.count == 3, case .dict(let info) = value, case .bool(false)? = info["little_endian"] {
                    throw FileError(path: path, reason: "written on a big-endian machine; only little-endian files are read")
                }
            }
            if ranOut {
                guard length < file.size else { throw FileError(path: path, reason: "truncated: the file ends inside its pickles") }
                length = min(file.size, length * 4)
                continue
            }
            let views = try stateDict(values[3], path: path)
            guard let keys = values[4].tuple?.compactMap(\.string), keys.count == values[4].tuple?.count else {
                throw FileError(path: path, reason: "the list of storage keys is malformed")
            }
            // Each storage: its element count (int64), then its bytes, in the order of the keys.
            var offsets: [String: Int] = [:]
            for key in keys {
                guard let storage = storages.byKey[key] else { throw FileError(path: path, reason: "storage \(key) is stored but never used") }
                let header = try file.bytes(at: position, count: 8, what: "storage \(key)'s element count")
                let count = Int(Int64(bitPattern: header.u64(0)))
                guard count == storage.count else {
                    throw FileError(path: path, reason: "storage \(key) holds \(count) elements, the pickle says \(storage.count)")
                }
                let (bytes, overflow) = count.multipliedReportingOverflow(by: storage.dtype.size)
                guard !overflow, bytes <= file.size - position - 8 else {
                    throw FileError(path: path, reason: "truncated: storage \(key) needs \(bytes) bytes at \(position + 8), the file has \(file.size)")
                }
                offsets[key] = position + 8
                position += 8 + bytes
            }
            if let missing = storages.byKey.keys.sorted().first(where: { offsets[$0] == nil }) {
                throw FileError(path: path, reason: "storage \(missing) is used but not stored")
            }
            return try TorchFile(path: path, format: "PyTorch legacy format", views: views) { storage, first, buffer in
                try file.read(into: buffer, at: offsets[storage.key]! + first * storage.dtype.size, what: "storage \(storage.key)")
            }
        }
    }
}
