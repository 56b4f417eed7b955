// metrics.csv: one row per epoch, the figures `cnn plot` draws and a spreadsheet reads.
import Foundation
import ClassicCNNEngine

/// The figures of one epoch as `metrics.csv` holds them.
public struct EpochMetrics: Equatable, Sendable {
    public var epoch: Int
    /// The global step at the end of the epoch (steps since the start of training).
    public var step: Int
    /// Seconds since 1970 when the epoch ended.
    public var wallTime: Double
    public var loss: Double
    public var accuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var learningRate: Double
    public var imagesPerSecond: Double

    public init(epoch: Int, step: Int, wallTime: Double, loss: Double, accuracy: Double, validationLoss: Double?,
                validationAccuracy: Double?, learningRate: Double, imagesPerSecond: Double) {
        (self.epoch, self.step, self.wallTime, self.loss, self.accuracy) = (epoch, step, wallTime, loss, accuracy)
        (self.validationLoss, self.validationAccuracy) = (validationLoss, validationAccuracy)
        (self.learningRate, self.imagesPerSecond) = (learningRate, imagesPerSecond)
    }
}

/// `metrics.csv`: a header, then one row per epoch; an epoch without validation leaves its two cells empty.
public enum MetricsCSV {
    public static let columns = ["epoch", "step", "wall_time", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                 "images_per_second"]

    public static func row(_ m: EpochMetrics) -> String {
        let cells: [String] = [String(m.epoch), String(m.step), String(format: "%.3f", m.wallTime), "\(m.loss)", "\(m.accuracy)",
                               m.validationLoss.map { "\($0)" } ?? "", m.validationAccuracy.map { "\($0)" } ?? "",
                               "\(Float(m.learningRate))", String(format: "%.1f", m.imagesPerSecond)]
        return cells.joined(separator: ",")
    }

    /// The epochs of a `metrics.csv`, in epoch order. Columns are found by name; when an epoch appears twice (a run
    /// resumed from a checkpoint older than its last log row), the later row wins.
    /// - Throws: `LogError` naming `path` if it is missing, unreadable, has no such header or no epochs.
    public static func read(path: String) throws -> [EpochMetrics] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw LogError(path: path, reason: "no such file (write one with `cnn train ... --log-dir DIR`)")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw LogError(path: path, reason: "cannot read it as UTF-8 text (\(error.localizedDescription))")
        }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else {
            throw LogError(path: path, reason: "empty file, no metrics")
        }
        var index: [String: Int] = [:]
        for (i, name) in header.enumerated() { index[name.trimmingCharacters(in: .whitespaces)] = i }
        for required in ["epoch", "loss", "accuracy"] where index[required] == nil {
            throw LogError(path: path, reason: "the header has no '\(required)' column (expected \(columns.joined(separator: ",")))")
        }
        var byEpoch: [Int: EpochMetrics] = [:]
        for (number, line) in lines.enumerated().dropFirst() {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            func value(_ name: String) -> Double? {
                guard let i = index[name], i < cells.count, !cells[i].isEmpty else { return nil }
                return Double(cells[i])
            }
            guard let epoch = value("epoch").flatMap({ Int(exactly: $0) }), let loss = value("loss"), let accuracy = value("accuracy") else {
                throw LogError(path: path, reason: "line \(number + 1) has no whole epoch number, loss and accuracy: \(line.prefix(80))")
            }
            byEpoch[epoch] = EpochMetrics(epoch: epoch, step: value("step").flatMap { Int(exactly: $0) } ?? 0,
                                          wallTime: value("wall_time") ?? 0, loss: loss, accuracy: accuracy,
                                          validationLoss: value("val_loss"), validationAccuracy: value("val_accuracy"),
                                          learningRate: value("lr") ?? .nan, imagesPerSecond: value("images_per_second") ?? .nan)
        }
        guard !byEpoch.isEmpty else { throw LogError(path: path, reason: "no epochs in it, only a header") }
        return byEpoch.keys.sorted().map { byEpoch[$0]! }
    }
}

/// Appends rows to a `metrics.csv`, writing the header before the first row when the file is new or empty.
final class MetricsCSVWriter {
    let path: String
    private var file: UnsafeMutablePointer<FILE>?
    private var needsHeader: Bool

    init(path: String) throws {
        self.path = path
        guard let file = fopen(path, "a") else {
            throw LogError(path: path, reason: "cannot open for appending: \(String(cString: strerror(errno)))")
        }
        self.file = file
        fseek(file, 0, SEEK_END)
        needsHeader = ftell(file) == 0
    }

    deinit { if let file { fclose(file) } }

    /// Appends a row (after the header, if the file was empty when opened).
    func append(_ metrics: EpochMetrics) throws {
        if needsHeader {
            try append(line: MetricsCSV.columns.joined(separator: ","))
            needsHeader = false
        }
        try append(line: MetricsCSV.row(metrics))
    }

    private func append(line: String) throws {
        guard let file else { throw LogError(path: path, reason: "closed") }
        if fputs(line + "\n", file) < 0 { throw LogError(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
    }

    func flush() throws {
        guard let file else { return }
        if fflush(file) != 0 { throw LogError(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
    }

    func close() throws {
        guard let file else { return }
        self.file = nil
        let failed = fflush(file) != 0 ? String(cString: strerror(errno)) : nil
        let closeFailed = fclose(file) != 0 ? String(cString: strerror(errno)) : nil
        if let reason = failed ?? closeFailed { throw LogError(path: path, reason: "cannot write: \(reason)") }
    }
}
