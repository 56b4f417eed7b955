// The training log: CRC-32C against published vectors, the TFRecord framing and Event encoding read back by an
// independent reader here (every CRC checked), metrics.csv written, appended and read, a write failure that stops
// the log but not the run.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

/// A fresh empty directory for one test.
private func logDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "cnn-log-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A reader of TFRecord files and of the `Event` fields we write, written from the format's description and
/// sharing no code with the writer: every length and data CRC is checked.
struct EventFileReader {
    struct Event {
        var wallTime = 0.0, step: Int64 = 0, fileVersion: String?
        var scalars: [(tag: String, value: Float)] = []
    }
    struct Malformed: Error, CustomStringConvertible { let description: String }

    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        func u32(_ at: Int) -> UInt32 { (0 ..< 4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { (0 ..< 8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
        func mask(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }
        var records: [[UInt8]] = [], offset = 0
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { throw Malformed(description: "truncated header at \(offset)") }
            let length = Int(u64(offset))
            guard u32(offset + 8) == mask(CRC32C.checksum(bytes[offset ..< offset + 8])) else {
                throw Malformed(description: "bad length CRC at \(offset)")
            }
            let start = offset + 12, end = start + length
            guard end + 4 <= bytes.count else { throw Malformed(description: "truncated record at \(offset)") }
            guard u32(end) == mask(CRC32C.checksum(bytes[start ..< end])) else { throw Malformed(description: "bad data CRC at \(offset)") }
            records.append(Array(bytes[start ..< end]))
            offset = end + 4
        }
        return records
    }

    /// The fields of a message: (field number, wire type, varint value or the raw bytes).
    static func fields(_ bytes: [UInt8]) throws -> [(field: Int, varint: UInt64, raw: [UInt8])] {
        var out: [(Int, UInt64, [UInt8])] = [], i = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.count else { throw Malformed(description: "truncated varint") }
                let byte = bytes[i]; i += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }
        while i < bytes.count {
            let key = try varint()
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, try varint(), []))
            case 1: out.append((field, 0, Array(bytes[i ..< i + 8]))); i += 8
            case 5: out.append((field, 0, Array(bytes[i ..< i + 4]))); i += 4
            case 2:
                let length = Int(try varint())
                out.append((field, 0, Array(bytes[i ..< i + length]))); i += length
            default: throw Malformed(description: "wire type \(key & 7)")
            }
        }
        return out
    }

    static func events(path: String) throws -> [Event] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try records(bytes).map { record in
            var event = Event()
            for (field, varint, raw) in try fields(record) {
                switch field {
                case 1: event.wallTime = Double(bitPattern: raw.reversed().reduce(0) { $0 << 8 | UInt64($1) })
                case 2: event.step = Int64(bitPattern: varint)
                case 3: event.fileVersion = String(decoding: raw, as: UTF8.self)
                case 5:
                    for value in try fields(raw) where value.field == 1 {
                        var tag = "", number: Float = .nan
                        for (f, _, r) in try fields(value.raw) {
                            if f == 1 { tag = String(decoding: r, as: UTF8.self) }
                            if f == 2 { number = Float(bitPattern: r.reversed().reduce(0) { $0 << 8 | UInt32($1) }) }
                        }
                        event.scalars.append((tag, number))
                    }
                default: break
                }
            }
            return event
        }
    }
}

@Suite("Training logs")
struct TrainingLogTests {
    /// RFC 3720 (iSCSI) appendix B.4 and the usual check value.
    @Test func crc32cMatchesPublishedVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0 ..< 32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0 ..< 32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        // The mask: rotate right by 15, add 0xa282ead8 (wrapping).
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        #expect(CRC32C.masked(0xE306_9283) == ((0xE306_9283 >> 15 | 0xE306_9283 << 17) &+ 0xA282_EAD8) as UInt32)
    }

    @Test func protobufEncodingsAreTheWireFormat() {
        var writer = ProtobufWriter()
        writer.appendVarint(300)
        #expect(writer.bytes == [0xAC, 0x02])
        // Event{wall_time: 1.5, step: 1}: key 0x09 + fixed64, key 0x10 + varint.
        #expect(EventFileWriter.event(wallTime: 1.5, step: 1) == [0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x01])
        // Summary{value{tag: "a", simple_value: 1}} in field 5.
        let event = EventFileWriter.event(wallTime: 0, step: 0, scalars: [("a", 1)])
        #expect(Array(event.suffix(12)) == [0x2A, 10, 0x0A, 8, 0x0A, 1, 0x61, 0x15, 0, 0, 0x80, 0x3F])
    }

    @Test func eventFileReadsBackWithEveryCRC() throws {
        let directory = logDirectory("events")
        let writer = try EventFileWriter(directory: directory, wallTime: 1_700_000_000.25)
        #expect(writer.path.hasPrefix(directory + "/events.out.tfevents.1700000000."))
        try writer.add(scalars: [("epoch/loss", 0.5), ("epoch/accuracy", 0.875)], step: 3, wallTime: 1_700_000_001)
        try writer.add(scalars: [("step/loss", 2.25)], step: 40, wallTime: 1_700_000_002)
        try writer.close()
        let events = try EventFileReader.events(path: writer.path)
        #expect(events.count == 3)
        #expect(events[0].fileVersion == "brain.Event:2" && events[0].wallTime == 1_700_000_000.25 && events[0].scalars.isEmpty)
        #expect(events[1].step == 3 && events[1].scalars.map(\.tag) == ["epoch/loss", "epoch/accuracy"])
        #expect(events[1].scalars.map(\.value) == [0.5, 0.875])
        #expect(events[2].step == 40 && events[2].wallTime == 1_700_000_002 && events[2].scalars.first?.value == 2.25)
        // A second writer in the same second never replaces the first file.
        let second = try EventFileWriter(directory: directory, wallTime: 1_700_000_000.5)
        #expect(second.path != writer.path)
        // A flipped byte is caught by the data CRC.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        bytes[bytes.count - 6] ^= 1
        #expect(throws: EventFileReader.Malformed.self) { try EventFileReader.records(bytes) }
    }

    private func epoch(_ n: Int, loss: Double, validation: Bool = true) -> EpochResult {
        EpochResult(epoch: n, loss: loss, accuracy: 1 - loss / 4, validationLoss: validation ? loss * 1.1 : nil,
                    validationAccuracy: validation ? 0.9 - loss / 5 : nil, seconds: 2, imagesPerSecond: 1000, steps: 40)
    }

    /// Two epochs of 40 steps: step scalars every 20 global steps, epoch scalars at steps 1 and 2, a CSV row per epoch;
    /// a resumed run appends to the CSV and writes a second event file.
    @Test func logsStepsEpochsAndAppendsOnResume() throws {
        let directory = logDirectory("observer")
        let log = try TrainingLog(directory: directory, batchSize: 8, stepInterval: 20) { 0.001 }
        for n in 1 ... 2 {
            log.epochStarted(n, of: 3, steps: 40)
            for step in 1 ... 40 { log.stepFinished(step: step, of: 40, loss: 1, accuracy: 0.5, elapsed: Double(step) * 0.01) }
            log.epochFinished(epoch(n, loss: 1 / Double(n)))
        }
        try log.close()
        let events = try EventFileReader.events(path: log.eventFile)
        let steps = events.filter { $0.scalars.first?.tag == "step/loss" }
        #expect(steps.map(\.step) == [20, 40, 60, 80])
        #expect(steps[0].scalars.map(\.tag) == ["step/loss", "step/accuracy", "step/learning_rate", "step/images_per_second"])
        // 20 steps of 8 images in 0.19 s (the window starts when the first step starts, 0.01 s before it ends).
        #expect(abs(Double(steps[0].scalars[3].value) - 160 / 0.2) < 1e-2)
        #expect(abs(Double(steps[1].scalars[3].value) - 160 / 0.2) < 1e-2)
        let epochs = events.filter { $0.scalars.first?.tag == "epoch/loss" }
        #expect(epochs.map(\.step) == [1, 2])
        #expect(epochs[1].scalars.map(\.tag) == ["epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy",
                                                 "epoch/learning_rate", "epoch/images_per_second"])
        #expect(epochs[1].scalars.first?.value == 0.5)

        // Resumed: a new event file, the CSV appended (one header).
        let resumed = try TrainingLog(directory: directory, batchSize: 8) { 0.001 }
        #expect(resumed.eventFile != log.eventFile)
        resumed.epochStarted(3, of: 3, steps: 40)
        resumed.epochFinished(epoch(3, loss: 0.25, validation: false))
        try resumed.close()
        let text = try String(contentsOfFile: directory + "/metrics.csv", encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 4 && lines[0] == "epoch,step,wall_time,loss,accuracy,val_loss,val_accuracy,lr,images_per_second")
        #expect(lines[3].hasPrefix("3,120,") && lines[3].contains(",0.25,0.9375,,,0.001,1000.0"))
        let rows = try MetricsCSV.read(path: directory + "/metrics.csv")
        #expect(rows.map(\.epoch) == [1, 2, 3] && rows.map(\.step) == [40, 80, 120])
        #expect(rows[1].loss == 0.5 && rows[1].validationLoss == 0.55 && rows[2].validationLoss == nil && rows[0].learningRate == 0.001)
    }

    /// A write that fails (here: metrics.csv is /dev/full) stops the log, names the file once, and is kept for the end.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full, whose writes fail with ENOSPC")) func aFailedWriteStopsTheLogAndNamesTheFile() throws {
        let directory = logDirectory("full")
        try FileManager.default.createSymbolicLink(atPath: directory + "/metrics.csv", withDestinationPath: "/dev/full")
        let log = try TrainingLog(directory: directory, batchSize: 8) { 0.1 }
        var reports: [LogError] = []
        log.onFailure = { reports.append($0) }
        for n in 1 ... 2 {
            log.epochStarted(n, of: 2, steps: 10)
            log.epochFinished(epoch(n, loss: 1))
        }
        #expect(reports.count == 1)
        #expect(reports.first?.path == directory + "/metrics.csv")
        #expect(reports.first?.reason.contains("No space left on device") == true)
        #expect(throws: LogError.self) { try log.close() }
        // A folder that cannot be a folder is refused at once, by name.
        #expect { try TrainingLog(directory: "/dev/null/log", batchSize: 8) { 0.1 } } throws: { error in
            (error as? LogError)?.path == "/dev/null/log"
        }
    }

    @Test func metricsCSVErrorsNameTheFile() throws {
        let directory = logDirectory("csv")
        #expect { try MetricsCSV.read(path: directory + "/metrics.csv") } throws: { "\($0)".contains(directory + "/metrics.csv") }
        try "epoch,loss,accuracy\n".write(toFile: directory + "/metrics.csv", atomically: true, encoding: .utf8)
        #expect { try MetricsCSV.read(path: directory + "/metrics.csv") } throws: { "\($0)".contains("no epochs") }
        try "a,b\n1,2\n".write(toFile: directory + "/metrics.csv", atomically: true, encoding: .utf8)
        #expect { try MetricsCSV.read(path: directory + "/metrics.csv") } throws: { "\($0)".contains("'epoch'") }
        // A repeated epoch (a run resumed from an older checkpoint): the later row wins.
        try "epoch,loss,accuracy\n1,2,0.1\n2,1,0.5\n2,0.5,0.75\n".write(toFile: directory + "/metrics.csv", atomically: true, encoding: .utf8)
        let rows = try MetricsCSV.read(path: directory + "/metrics.csv")
        #expect(rows.count == 2 && rows[1].loss == 0.5 && rows[1].validationLoss == nil)
    }
}
