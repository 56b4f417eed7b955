// SafeTensors.swift
//
// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON header padded with spaces, then one
// byte buffer holding every tensor, each located by `data_offsets` relative to the buffer start.
//
// Writing is atomic (a temp file in the same folder, fsync, rename). Reading checks every header
// value before it is used to seek or to allocate, so a hostile or damaged file fails with a
// `SafeTensorsError` that names the file and the problem instead of crashing or exhausting memory.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A named tensor of `Float` values in row-major order.
public struct NamedTensor: Equatable, Sendable {
    /// The tensor's key in the file, e.g. `"conv1.weight"`.
    public var name: String
    /// The dimensions, outermost first; `[]` is a scalar holding one value.
    public var shape: [Int]
    /// The values in row-major order; `values.count` is the product of `shape`.
    public var values: [Float]

    /// Creates a tensor. `values.count` should equal the product of `shape`; `SafeTensors.write` checks it.
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Reads and writes safetensors files.
///
/// Files written here hold `F32` tensors only. Reading also accepts `F64`, `F16`, `BF16`, `I64`, `I32`, `I16`, `I8`,
/// `U8` and `BOOL` tensors, converting their values to `Float` and reporting each tensor's stored dtype.
public enum SafeTensors {
    /// The largest JSON header accepted when reading, in bytes (the limit of the reference implementation).
    public static let maxHeaderLength = 100_000_000

    /// The dtypes `read(path:)` understands, as spelled in the header.
    public static let supportedDTypes = DType.allCases.map(\.rawValue)

    /// The reserved header key holding the string-to-string metadata.
    static let metadataKey = "__metadata__"

    // MARK: - Writing

    /// Writes `tensors` and `metadata` to `path` as a safetensors file, atomically.
    ///
    /// The file is first written to `"<path>.tmp-<pid>"` in the same folder, flushed to disk with
    /// `fsync`, then renamed over `path`. On any failure the temp file is removed and whatever was
    /// at `path` before is left untouched. Tensors are stored in the given order as little-endian
    /// `F32`, bit for bit (NaN payloads, `-0.0` and subnormals included). An empty `metadata` writes
    /// no `__metadata__` entry.
    ///
    /// - Parameters:
    ///   - tensors: The tensors to store; names must be unique and not `"__metadata__"`, shapes
    ///     non-negative, and each `values.count` equal to the product of its shape.
    ///   - metadata: Free-form string pairs stored under `__metadata__`.
    ///   - path: The destination file.
    /// - Throws: `SafeTensorsError` naming `path`, if a tensor is malformed or the file cannot be
    ///   created, written, flushed or renamed (missing or read-only folder, full disk, ...).
    public static func write(_ tensors: [NamedTensor], metadata: [String: String], to path: String) throws {
        for tensor in tensors {
            guard let count = elementCount(tensor.shape), count == tensor.values.count else {
                throw SafeTensorsError(path: path, reason: "tensor '\(tensor.name)': shape \(tensor.shape) does not hold the \(tensor.values.count) values given")
            }
        }
        try write(names: tensors.map(\.name), shapes: tensors.map(\.shape), metadata: metadata, to: path) { tensors[$0].values }
    }

    /// Writes tensors one at a time, as `write(_:metadata:to:)` does: `values(i)` is asked for the `i`th tensor's
    /// values in order, once, so that only one tensor need be in memory (converting a 548 MB file does not hold it
    /// twice).
    /// - Throws: `SafeTensorsError` as `write(_:metadata:to:)` does, and if `values(i)` does not fill its shape or
    ///   throws (the temporary file is removed; nothing is left at `path`).
    public static func write(names: [String], shapes: [[Int]], metadata: [String: String], to path: String,
                             values: (Int) throws -> [Float]) throws {
        let header = try makeHeader(names: names, shapes: shapes, metadata: metadata, path: path)
        var prefix = [UInt8]()
        prefix.reserveCapacity(8 + header.count)
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { prefix.append(contentsOf: $0) }
        prefix.append(contentsOf: header)

        let tempPath = temporaryPath(for: path)
        let fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError(path: path, reason: "cannot create temp file \(tempPath): \(errnoDescription())")
        }
        var isOpen = true
        do {
            try prefix.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            for (index, shape) in shapes.enumerated() {
                let tensor = try values(index)
                guard tensor.count == elementCount(shape) else {
                    throw SafeTensorsError(path: path, reason: "tensor '\(names[index])': shape \(shape) does not hold the \(tensor.count) values given")
                }
                try writeFloats(fd, tensor, path: path)
            }
            guard fsync(fd) == 0 else {
                throw SafeTensorsError(path: path, reason: "cannot flush \(tempPath) to disk: \(errnoDescription())")
            }
            isOpen = false
            guard close(fd) == 0 else {
                throw SafeTensorsError(path: path, reason: "cannot close \(tempPath): \(errnoDescription())")
            }
            guard rename(tempPath, path) == 0 else {
                throw SafeTensorsError(path: path, reason: "cannot rename \(tempPath) to \(path): \(errnoDescription())")
            }
        } catch {
            if isOpen { close(fd) }
            unlink(tempPath)
            throw error
        }
        syncFolder(of: path)
    }

    /// Where `write` puts the file before renaming it over `path`: `"<path>.tmp-<pid>"`.
    public static func temporaryPath(for path: String, processID: Int32 = getpid()) -> String { "\(path).tmp-\(processID)" }

    /// Builds the space-padded JSON header for `write`, validating the tensors.
    static func makeHeader(names: [String], shapes: [[Int]], metadata: [String: String], path: String) throws -> [UInt8] {
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonString($0.value) }
            entries.append(jsonString(metadataKey) + ":{" + pairs.joined(separator: ",") + "}")
        }
        var seen = Set<String>()
        var offset = 0
        for (name, shape) in zip(names, shapes) {
            func fail(_ reason: String) -> SafeTensorsError {
                SafeTensorsError(path: path, reason: "tensor '\(name)': \(reason)")
            }
            guard name != metadataKey else { throw fail("the name \(metadataKey) is reserved") }
            guard seen.insert(name).inserted else { throw fail("the name is used twice") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("shape \(shape) has a negative dimension") }
            guard let count = elementCount(shape) else { throw fail("shape \(shape) overflows") }
            let end = offset + count * MemoryLayout<Float>.size
            let dimensions = shape.map(String.init).joined(separator: ",")
            entries.append(jsonString(name) + ":{\"dtype\":\"F32\",\"shape\":[\(dimensions)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var bytes = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// Writes the values as little-endian `F32` bytes.
    private static func writeFloats(_ fd: Int32, _ values: [Float], path: String) throws {
        guard !values.isEmpty else { return }
        #if _endian(little)
        try values.withUnsafeBytes { try writeAll(fd, $0, path: path) }
        #else
        let chunk = 1 << 16
        var start = 0
        while start < values.count {
            let end = min(start + chunk, values.count)
            let words = values[start..<end].map { $0.bitPattern.littleEndian }
            try words.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            start = end
        }
        #endif
    }

    /// Writes all of `buffer`, retrying short writes and `EINTR`; any other failure throws.
    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var pointer = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let written = posixWrite(fd, pointer, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(path: path, reason: "write failed: \(errnoDescription())")
            }
            guard written > 0 else { throw SafeTensorsError(path: path, reason: "write failed: no bytes written") }
            pointer += written
            remaining -= written
        }
    }

    /// Flushes the folder holding `path` so the rename itself survives a crash. Best effort.
    private static func syncFolder(of path: String) {
        let folder = (path as NSString).deletingLastPathComponent
        let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    // MARK: - Reading

    /// Reads and validates the safetensors file at `path`.
    ///
    /// Every header value is checked before use: the header length must fit the file and be at
    /// most `maxHeaderLength`; the header must be a JSON object; every tensor entry needs a known
    /// `dtype`, a `shape` of non-negative integers whose element count does not overflow, and
    /// `data_offsets` inside the data buffer spanning exactly `product(shape) * size(dtype)` bytes;
    /// no two tensors may overlap; metadata values must be strings.
    ///
    /// - Parameter path: The file to read.
    /// - Returns: The tensors ordered by their position in the file (the order `write` stored them
    ///   in), with values converted to `Float`; each tensor's stored dtype by name (`"F32"`, `"F64"`,
    ///   `"F16"`, `"BF16"`, `"I64"`, `"I32"`, `"I16"`, `"I8"`, `"U8"` or `"BOOL"`); and the `__metadata__` pairs (empty if absent).
    /// - Throws: `SafeTensorsError` naming `path` and the problem, e.g. `"truncated: header claims
    ///   1099511627776 bytes but the file has 1234"`.
    public static func read(path: String) throws -> (tensors: [NamedTensor], dtypes: [String: String], metadata: [String: String]) {
        try withHeader(path: path) { fd, parsed, dataStart in
            var tensors: [NamedTensor] = []
            tensors.reserveCapacity(parsed.entries.count)
            var dtypes: [String: String] = [:]
            for entry in parsed.entries {
                let values = try readValues(fd, entry, at: dataStart + entry.begin, path: path)
                tensors.append(NamedTensor(name: entry.name, shape: entry.shape, values: values))
                dtypes[entry.name] = entry.dtype.rawValue
            }
            return (tensors, dtypes, parsed.metadata)
        }
    }

    /// The `__metadata__` pairs of a safetensors file, its header checked as `read` checks it, without reading
    /// a tensor.
    ///
    /// - Throws: `SafeTensorsError` naming `path` and the problem.
    public static func readMetadata(path: String) throws -> [String: String] {
        try withHeader(path: path) { _, parsed, _ in parsed.metadata }
    }

    /// Opens `path`, checks and parses its header, and calls `body` with the open file, the header and where the
    /// data starts.
    private static func withHeader<Result>(
        path: String, _ body: (Int32, (entries: [Entry], metadata: [String: String]), Int) throws -> Result
    ) throws -> Result {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }

        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open: \(errnoDescription())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail("cannot stat: \(errnoDescription())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw fail("not a regular file, not a safetensors file") }
        let fileSize = Int(info.st_size)
        guard fileSize > 0 else { throw fail("empty file: not a safetensors file") }
        guard fileSize >= 8 else {
            throw fail("not a safetensors file: \(fileSize) bytes is too short for the 8-byte header length")
        }

        var rawLength: UInt64 = 0
        try withUnsafeMutableBytes(of: &rawLength) { try readAll(fd, $0, at: 0, path: path) }
        let claimed = UInt64(littleEndian: rawLength)
        guard claimed <= UInt64(fileSize - 8) else {
            throw fail("truncated: header claims \(claimed) bytes but the file has \(fileSize)")
        }
        guard claimed <= UInt64(maxHeaderLength) else {
            throw fail("header of \(claimed) bytes exceeds the \(maxHeaderLength / 1_000_000) MB limit")
        }
        let headerLength = Int(claimed)
        guard headerLength >= 2 else {
            throw fail("not a safetensors file: a header of \(headerLength) bytes cannot hold a JSON object")
        }
        let header = try [UInt8](unsafeUninitializedCapacity: headerLength) { buffer, initialized in
            try readAll(fd, UnsafeMutableRawBufferPointer(buffer), at: 8, path: path)
            initialized = headerLength
        }
        let parsed = try parseHeader(header, bufferSize: fileSize - 8 - headerLength, path: path)
        return try body(fd, (parsed.entries, parsed.metadata), 8 + headerLength)
    }

    /// The element types `read` understands, as spelled in the header (PyTorch's files use the same set).
    package enum DType: String, CaseIterable, Sendable {
        case f32 = "F32", f64 = "F64", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8"
        case bool = "BOOL"

        /// Bytes per element.
        package var size: Int {
            switch self {
            case .i8, .u8, .bool: return 1
            case .f16, .bf16, .i16: return 2
            case .f32, .i32: return 4
            case .f64, .i64: return 8
            }
        }
    }

    /// One validated tensor entry of a header.
    struct Entry {
        var name: String
        var dtype: DType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// Parses and validates a header; `bufferSize` is the number of bytes after it.
    /// Entries come back sorted by position in the buffer.
    static func parseHeader(_ header: [UInt8], bufferSize: Int, path: String) throws -> (entries: [Entry], metadata: [String: String]) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }

        guard header.first == UInt8(ascii: "{") else {
            throw fail("not a safetensors file: the header does not start with '{'")
        }
        var end = header.count
        while end > 0 && header[end - 1] == 0x20 { end -= 1 }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header[..<end]), options: [])
        } catch {
            throw fail("not a safetensors file: the header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw fail("not a safetensors file: the header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        if let raw = object[metadataKey], !(raw is NSNull) {
            guard let pairs = raw as? [String: Any] else { throw fail("\(metadataKey) is not a JSON object") }
            for (key, value) in pairs {
                guard let string = value as? String else {
                    throw fail("\(metadataKey) value for '\(key)' is not a string")
                }
                metadata[key] = string
            }
        }

        var entries: [Entry] = []
        for (name, value) in object where name != metadataKey {
            func fail(_ reason: String) -> SafeTensorsError {
                SafeTensorsError(path: path, reason: "tensor '\(name)': \(reason)")
            }
            guard let fields = value as? [String: Any] else { throw fail("the entry is not a JSON object") }
            guard let dtypeName = fields["dtype"] as? String else { throw fail("missing or non-string dtype") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("unsupported dtype '\(dtypeName)' (supported: \(supportedDTypes.joined(separator: ", ")))")
            }
            guard let rawShape = fields["shape"] as? [Any],
                  let shape = nonNegativeIntegers(rawShape) else {
                throw fail("shape must be a list of non-negative integers")
            }
            guard let count = elementCount(shape) else { throw fail("shape \(shape) has too many elements") }
            guard let rawOffsets = fields["data_offsets"] as? [Any],
                  let offsets = nonNegativeIntegers(rawOffsets), offsets.count == 2 else {
                throw fail("data_offsets must be two non-negative integers")
            }
            let (begin, stop) = (offsets[0], offsets[1])
            guard begin <= stop else { throw fail("data_offsets [\(begin), \(stop)] end before they begin") }
            guard stop <= bufferSize else {
                throw fail("data_offsets [\(begin), \(stop)] run past the data buffer of \(bufferSize) bytes (truncated file?)")
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, stop - begin == byteCount else {
                let expected = overflow ? "too many bytes" : "\(byteCount) bytes"
                throw fail("data_offsets [\(begin), \(stop)] do not match shape \(shape) of \(dtype.rawValue) (\(expected))")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: stop))
        }

        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previous: Entry?
        for entry in entries where entry.end > entry.begin {
            if let previous, entry.begin < previous.end {
                throw fail("tensors '\(previous.name)' and '\(entry.name)' overlap: data_offsets "
                    + "[\(previous.begin), \(previous.end)] and [\(entry.begin), \(entry.end)]")
            }
            previous = entry
        }
        return (entries, metadata)
    }

    /// Reads one tensor's bytes at absolute file offset `offset` and converts them to `Float`.
    private static func readValues(_ fd: Int32, _ entry: Entry, at offset: Int, path: String) throws -> [Float] {
        let byteCount = entry.end - entry.begin
        let count = byteCount / entry.dtype.size
        guard count > 0 else { return [] }
        #if _endian(little)
        if entry.dtype == .f32 {
            return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                try readAll(fd, UnsafeMutableRawBufferPointer(buffer), at: offset, path: path)
                initialized = count
            }
        }
        #endif
        let bytes = try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            try readAll(fd, UnsafeMutableRawBufferPointer(buffer), at: offset, path: path)
            initialized = byteCount
        }
        return bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { out, initialized in
                convert(raw, dtype: entry.dtype, into: out)
                initialized = count
            }
        }
    }

    /// Converts little-endian elements of `dtype` in `raw` to `Float`, filling `out`.
    package static func convert(_ raw: UnsafeRawBufferPointer, dtype: DType, into out: UnsafeMutableBufferPointer<Float>) {
        switch dtype {
        case .f32:
            for i in 0..<out.count {
                out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        case .f64:
            for i in 0..<out.count {
                out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
            }
        case .f16:
            for i in 0..<out.count {
                out[i] = floatFromHalf(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<out.count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                out[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .i64:
            for i in 0..<out.count {
                out[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
            }
        case .i32:
            for i in 0..<out.count {
                out[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
            }
        case .i16:
            for i in 0..<out.count {
                out[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
            }
        case .i8:
            for i in 0..<out.count { out[i] = Float(raw.load(fromByteOffset: i, as: Int8.self)) }
        case .u8:
            for i in 0..<out.count { out[i] = Float(raw.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool:
            for i in 0..<out.count { out[i] = raw.load(fromByteOffset: i, as: UInt8.self) == 0 ? 0 : 1 }
        }
    }

    /// Converts IEEE 754 half-precision bits to `Float` exactly (NaN payloads kept).
    package static func floatFromHalf(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1f
        let mantissa = UInt32(half & 0x3ff)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa * 2^-24, exact in Float.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 31:
            return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }

    /// Fills `buffer` from absolute file offset `offset`; a short file throws.
    private static func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws {
        guard var pointer = buffer.baseAddress else { return }
        var remaining = buffer.count
        var position = offset
        while remaining > 0 {
            let got = pread(fd, pointer, min(remaining, 1 << 30), off_t(position))
            if got < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(path: path, reason: "read failed: \(errnoDescription())")
            }
            guard got > 0 else {
                throw SafeTensorsError(path: path, reason: "truncated: the file ended early at byte \(position)")
            }
            pointer += got
            remaining -= got
            position += got
        }
    }

    // MARK: - Helpers

    /// The product of `shape`, or nil if it overflows `Int` or a dimension is negative.
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The values as non-negative `Int`s, or nil if any is not a non-negative integer
    /// (booleans, fractions, strings and numbers beyond `Int` are rejected).
    static func nonNegativeIntegers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            // JSON booleans arrive as NSNumber with type code "c"; `as? Int` would accept them.
            guard let number = value as? NSNumber, number.objCType.pointee != CChar(UInt8(ascii: "c")),
                  let int = value as? Int, int >= 0 else { return nil }
            result.append(int)
        }
        return result
    }

    /// `value` as a JSON string literal, quotes included.
    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// The current `errno`, in words.
    static func errnoDescription() -> String {
        String(cString: strerror(errno))
    }
}

/// `write(2)`, named apart from `SafeTensors.write`.
@inline(__always)
package func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
