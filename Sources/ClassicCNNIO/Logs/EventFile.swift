// TensorBoard event files: TFRecord framing around `Event` protocol buffers, encoded by hand. Only the fields a
// scalar log needs are written (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto):
//
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//
// A TFRecord is: length (UInt64), masked CRC-32C of those 8 bytes, the data, masked CRC-32C of the data; all
// little-endian.
import Foundation
import ClassicCNNEngine

/// The few protocol buffer encodings an `Event` needs: varints, fixed64, fixed32 and length-delimited fields.
package struct ProtobufWriter {
    package private(set) var bytes: [UInt8] = []
    package init() {}

    private mutating func key(_ field: Int, wireType: UInt64) { appendVarint(UInt64(field) << 3 | wireType) }

    package mutating func appendVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// An int64 field (wire type 0; negative numbers take ten bytes, as protobuf has it).
    mutating func int64(_ field: Int, _ value: Int64) {
        key(field, wireType: 0)
        appendVarint(UInt64(bitPattern: value))
    }

    /// A double field (wire type 1, fixed64).
    mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        appendLittleEndian(value.bitPattern)
    }

    /// A float field (wire type 5, fixed32).
    mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        appendLittleEndian(value.bitPattern)
    }

    /// A bytes, string or embedded message field (wire type 2).
    mutating func lengthDelimited(_ field: Int, _ data: [UInt8]) {
        key(field, wireType: 2)
        appendVarint(UInt64(data.count))
        bytes += data
    }

    mutating func string(_ field: Int, _ text: String) { lengthDelimited(field, Array(text.utf8)) }

    private mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// Writes scalars to a new TensorBoard event file, `events.out.tfevents.<seconds>.<host>`, in a directory.
public final class EventFileWriter {
    /// The file written.
    public let path: String
    private var file: UnsafeMutablePointer<FILE>?

    /// Creates the event file (never replacing one: a name already taken gets a suffix) and writes its first record,
    /// the file version "brain.Event:2".
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        let base = "\(directory)/events.out.tfevents.\(Int(wallTime)).\(EventFileWriter.hostName())"
        var candidate = base, attempt = 0
        while true {
            // "x": create, fail if it exists (C11, glibc and Darwin).
            if let opened = fopen(candidate, "wbx") {
                file = opened
                break
            }
            guard errno == EEXIST, attempt < 100 else {
                throw LogError(path: candidate, reason: "cannot create the event file: \(String(cString: strerror(errno)))")
            }
            attempt += 1
            candidate = "\(base).\(attempt)"
        }
        path = candidate
        try write(EventFileWriter.event(wallTime: wallTime, step: 0, fileVersion: "brain.Event:2"))
        try flush()
    }

    deinit { if let file { fclose(file) } }

    /// Appends one event holding `scalars` (tag, value) at `step`. Buffered: written at the latest by ``flush()``.
    public func add(scalars: [(tag: String, value: Double)], step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        try write(EventFileWriter.event(wallTime: wallTime, step: Int64(step), scalars: scalars))
    }

    /// Pushes everything written so far to the file.
    public func flush() throws {
        guard let file else { throw LogError(path: path, reason: "the event file is closed") }
        if fflush(file) != 0 { throw LogError(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
    }

    /// Flushes and closes the file.
    public func close() throws {
        guard let file else { return }
        self.file = nil
        let failed = fflush(file) != 0 ? String(cString: strerror(errno)) : nil
        let closeFailed = fclose(file) != 0 ? String(cString: strerror(errno)) : nil
        if let reason = failed ?? closeFailed { throw LogError(path: path, reason: "cannot write: \(reason)") }
    }

    private func write(_ data: [UInt8]) throws {
        guard let file else { throw LogError(path: path, reason: "the event file is closed") }
        let record = EventFileWriter.record(data)
        let written = record.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        if written != record.count { throw LogError(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
    }

    /// `data` in TFRecord framing.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(UInt64(data.count))
        append(CRC32C.masked(CRC32C.checksum(out)))
        out += data
        append(CRC32C.masked(CRC32C.checksum(data)))
        return out
    }

    /// An encoded `Event`: a file version, or a `Summary` of simple (float) values.
    public static func event(wallTime: Double, step: Int64, fileVersion: String? = nil,
                             scalars: [(tag: String, value: Double)] = []) -> [UInt8] {
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.int64(2, step)
        if let fileVersion { event.string(3, fileVersion) }
        if !scalars.isEmpty {
            var summary = ProtobufWriter()
            for (tag, value) in scalars {
                var entry = ProtobufWriter()
                entry.string(1, tag)
                entry.float(2, Float(value))
                summary.lengthDelimited(1, entry.bytes)
            }
            event.lengthDelimited(5, summary.bytes)
        }
        return event.bytes
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: "/", with: "_")
    }
}
