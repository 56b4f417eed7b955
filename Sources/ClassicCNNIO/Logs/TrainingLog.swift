// The training log of `--log-dir`: TensorBoard scalars per step and per epoch, and metrics.csv per epoch.
import Foundation
import ClassicCNNEngine

/// A `TrainingObserver` that logs a run into a directory:
///
/// - a TensorBoard event file (a new one per run; TensorBoard merges the files of a directory), with
///   `step/loss`, `step/accuracy`, `step/learning_rate`, `step/images_per_second` every ``stepInterval`` global
///   steps (loss and accuracy are the epoch's running means, as the progress bar shows them; images/s over the
///   steps since the last point), and `epoch/loss`, `epoch/accuracy`, `epoch/val_loss`, `epoch/val_accuracy`,
///   `epoch/learning_rate`, `epoch/images_per_second` at step = the epoch number;
/// - `metrics.csv`, appended one row per epoch (``MetricsCSV``).
///
/// Both are flushed at the end of every epoch. A write that fails is not allowed to stop training (and so to lose the
/// epoch's checkpoint): logging stops, ``failure`` keeps the error naming the file, and ``onFailure`` is called once.
public final class TrainingLog: TrainingObserver {
    public let directory: String
    /// Per-step scalars are written when the global step is a multiple of this.
    public let stepInterval: Int
    public let batchSize: Int
    /// Read at every point written.
    public let learningRate: () -> Double
    /// The first write that failed; nothing is logged after it.
    public private(set) var failure: LogError?
    public var onFailure: ((LogError) -> Void)?
    public var eventFile: String { events?.path ?? eventPath }
    public var csvFile: String { "\(directory)/metrics.csv" }

    private var events: EventFileWriter?
    private var csv: MetricsCSVWriter?
    private let eventPath: String
    private var epoch = 1, stepsPerEpoch = 0
    /// The step and elapsed seconds of the epoch when images/s was last measured.
    private var window: (step: Int, elapsed: Double)?

    /// Creates `directory` if needed, opens (or creates) `metrics.csv` for appending and creates a new event file, so
    /// that a directory that cannot be written is found out before training starts.
    public init(directory: String, batchSize: Int, stepInterval: Int = 20, learningRate: @escaping () -> Double) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw LogError(path: directory, reason: "cannot create the log folder (\(error.localizedDescription))")
        }
        self.directory = directory
        self.batchSize = batchSize
        self.stepInterval = max(stepInterval, 1)
        self.learningRate = learningRate
        csv = try MetricsCSVWriter(path: "\(directory)/metrics.csv")
        let writer = try EventFileWriter(directory: directory)
        events = writer
        eventPath = writer.path
    }

    public func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {
        (self.epoch, stepsPerEpoch, window) = (epoch, steps, nil)
    }

    public func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {
        // The first step seen in an epoch (the first of a resumed one, too) starts the images/s window at its own start.
        let start = window ?? (step - 1, 0)
        if window == nil { window = start }
        let global = (epoch - 1) * steps + step
        guard global % stepInterval == 0, events != nil else { return }
        let seconds = elapsed - start.elapsed
        let imagesPerSecond = seconds > 0 ? Double((step - start.step) * batchSize) / seconds : 0
        window = (step, elapsed)
        attempt {
            try events?.add(scalars: [("step/loss", loss), ("step/accuracy", accuracy), ("step/learning_rate", learningRate()),
                                      ("step/images_per_second", imagesPerSecond)], step: global)
        }
    }

    public func epochFinished(_ result: EpochResult) {
        let now = Date().timeIntervalSince1970
        let rate = learningRate()
        var scalars: [(tag: String, value: Double)] = [("epoch/loss", result.loss), ("epoch/accuracy", result.accuracy)]
        if let loss = result.validationLoss { scalars.append(("epoch/val_loss", loss)) }
        if let accuracy = result.validationAccuracy { scalars.append(("epoch/val_accuracy", accuracy)) }
        scalars += [("epoch/learning_rate", rate), ("epoch/images_per_second", result.imagesPerSecond)]
        let metrics = EpochMetrics(epoch: result.epoch, step: (result.epoch - 1) * stepsPerEpoch + result.steps, wallTime: now,
                                   loss: result.loss, accuracy: result.accuracy, validationLoss: result.validationLoss,
                                   validationAccuracy: result.validationAccuracy, learningRate: rate,
                                   imagesPerSecond: result.imagesPerSecond)
        attempt {
            try events?.add(scalars: scalars, step: result.epoch, wallTime: now)
            try events?.flush()
            try csv?.append(metrics)
            try csv?.flush()
        }
    }

    public func checkpointSaved(path: String, isBest: Bool) {}

    /// Flushes and closes both files; the error, if any, is also kept in ``failure``.
    public func close() throws {
        attempt {
            let (events, csv) = (self.events, self.csv)
            (self.events, self.csv) = (nil, nil)
            try events?.close()
            try csv?.close()
        }
        if let failure { throw failure }
    }

    private func attempt(_ body: () throws -> Void) {
        guard failure == nil else { return }
        do { try body() } catch {
            let failed = error as? LogError ?? LogError(path: directory, reason: "\(error)")
            failure = failed
            (events, csv) = (nil, nil)
            onFailure?(failed)
        }
    }
}

/// Passes every report on to several observers, in order (`Trainer.observer` holds one, weakly: keep this alive).
public final class TrainingObservers: TrainingObserver {
    public let observers: [any TrainingObserver]
    public init(_ observers: [any TrainingObserver]) { self.observers = observers }
    public func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {
        for observer in observers { observer.epochStarted(epoch, of: epochs, steps: steps) }
    }
    public func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {
        for observer in observers { observer.stepFinished(step: step, of: steps, loss: loss, accuracy: accuracy, elapsed: elapsed) }
    }
    public func epochFinished(_ result: EpochResult) {
        for observer in observers { observer.epochFinished(result) }
    }
    public func validationStepFinished(step: Int, of steps: Int) {
        for observer in observers { observer.validationStepFinished(step: step, of: steps) }
    }
    public func checkpointSaved(path: String, isBest: Bool) {
        for observer in observers { observer.checkpointSaved(path: path, isBest: isBest) }
    }
    public func stoppedEarly(epoch: Int, monitor: String, best: Double?, bestEpoch: Int?) {
        for observer in observers { observer.stoppedEarly(epoch: epoch, monitor: monitor, best: best, bestEpoch: bestEpoch) }
    }
}
