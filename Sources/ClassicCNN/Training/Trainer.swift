// The training loop: epochs of shuffled batches, validation after each epoch, checkpoints (`last` every epoch,
// `best` when the validation loss improves), and a guard against divergence.
import Foundation

public struct TrainingOptions: Sendable {
    public var epochs = 5
    public var batchSize = 32
    /// Stop each epoch after this many steps (nil: the whole training set).
    public var stepsPerEpoch: Int?
    /// Validate on this many batches (nil: the whole validation set).
    public var validationSteps: Int?
    public var seed: UInt64 = 0
    /// Where `last.safetensors` and `best.safetensors` go (nil: no checkpoints).
    public var checkpointDirectory: String?
    public init() {}
}

/// The figures of one epoch.
public struct EpochResult: Codable, Sendable {
    public var epoch: Int
    public var loss: Double
    public var accuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var seconds: Double
    public var imagesPerSecond: Double
    public var steps: Int

    var metrics: [String: Double] {
        var m = ["loss": loss, "accuracy": accuracy, "seconds": seconds, "images_per_second": imagesPerSecond]
        if let validationLoss { m["val_loss"] = validationLoss }
        if let validationAccuracy { m["val_accuracy"] = validationAccuracy }
        return m
    }
}

/// What a training run reports as it goes (the command-line tool draws a progress bar from it).
public protocol TrainingObserver: AnyObject {
    func epochStarted(_ epoch: Int, of epochs: Int, steps: Int)
    func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double)
    func epochFinished(_ result: EpochResult)
    func checkpointSaved(path: String, isBest: Bool)
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
}

public final class Trainer {
    public let model: Model
    public let optimizer: any Optimizer
    public let trainingSet: ImageDataset
    public let validationSet: ImageDataset?
    public let options: TrainingOptions
    public weak var observer: (any TrainingObserver)?
    private var bestValidationLoss = Double.infinity

    public init(model: Model, optimizer: any Optimizer, trainingSet: ImageDataset, validationSet: ImageDataset?,
                options: TrainingOptions) {
        self.model = model
        self.optimizer = optimizer
        self.trainingSet = trainingSet
        self.validationSet = validationSet
        self.options = options
    }

    @discardableResult
    public func fit() throws -> [EpochResult] {
        for dataset in [trainingSet] + (validationSet.map { [$0] } ?? []) {
            try Evaluation.checkLabels(of: dataset, fit: model)
        }
        if let directory = options.checkpointDirectory {
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw TrainingError(description: "\(directory): cannot create the checkpoint folder (\(error.localizedDescription))")
            }
        }
        var results: [EpochResult] = []
        for epoch in 1...options.epochs {
            let result = try runEpoch(epoch)
            results.append(result)
            observer?.epochFinished(result)
            try saveCheckpoints(after: result)
        }
        return results
    }

    private func runEpoch(_ epoch: Int) throws -> EpochResult {
        // At most the whole training set, whatever --steps-per-epoch says (and without overflowing).
        let limit = options.stepsPerEpoch.map { steps in
            steps > trainingSet.count / Swift.max(options.batchSize, 1) + 1 ? trainingSet.count : steps * options.batchSize
        }
        let loader = BatchLoader(dataset: trainingSet, batchSize: options.batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: options.seed, epoch: epoch, limit: limit)
        defer { loader.stop() }
        observer?.epochStarted(epoch, of: options.epochs, steps: loader.batchCount)
        let start = Date()
        var lossSum = 0.0, correct = 0, seen = 0, step = 0
        while let batch = loader.next() {
            let (loss, right) = model.trainStep(batch: batch.images, labels: batch.labels, optimizer: optimizer)
            guard loss.isFinite else {
                throw TrainingError(description: "training diverged: the loss became \(loss) at epoch \(epoch), step \(step + 1); try a lower --lr")
            }
            step += 1
            lossSum += Double(loss)
            correct += right
            seen += batch.labels.count
            observer?.stepFinished(step: step, of: loader.batchCount, loss: lossSum / Double(seen),
                                   accuracy: Double(correct) / Double(seen), elapsed: Date().timeIntervalSince(start))
        }
        let trainingSeconds = Date().timeIntervalSince(start)
        var result = EpochResult(epoch: epoch, loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                                 seconds: trainingSeconds, imagesPerSecond: Double(seen) / max(trainingSeconds, 1e-9), steps: step)
        if let validationSet {
            let batchSize = Swift.max(options.batchSize, 256)
            let limit = options.validationSteps.map { $0 > validationSet.count / batchSize ? validationSet.count : $0 * batchSize }
            let report = Evaluation.run(model: model, dataset: validationSet, batchSize: batchSize, limit: limit)
            result.validationLoss = report.loss
            result.validationAccuracy = report.accuracy
        }
        return result
    }

    private func saveCheckpoints(after result: EpochResult) throws {
        guard let directory = options.checkpointDirectory else { return }
        let info = CheckpointInfo(model: model.name, configuration: model.configuration, epoch: result.epoch,
                                  dataset: trainingSet.name.components(separatedBy: "-").first ?? trainingSet.name,
                                  metrics: result.metrics, optimizer: optimizer.name, optimizerSettings: optimizer.settings,
                                  seed: options.seed)
        let last = "\(directory)/last.safetensors"
        try Checkpoint.save(model: model, optimizer: optimizer, info: info, to: last)
        observer?.checkpointSaved(path: last, isBest: false)
        let score = result.validationLoss ?? result.loss
        if score < bestValidationLoss {
            bestValidationLoss = score
            let best = "\(directory)/best.safetensors"
            try Checkpoint.save(model: model, optimizer: optimizer, info: info, to: best)
            observer?.checkpointSaved(path: best, isBest: true)
        }
    }
}

/// Loss, accuracy, per-class accuracy and the confusion matrix of a model on a dataset.
public struct EvaluationReport: Codable, Sendable {
    public var loss: Double
    public var accuracy: Double
    public var count: Int
    public var classNames: [String]
    public var perClassAccuracy: [Double]
    /// confusion[true class][predicted class]
    public var confusionMatrix: [[Int]]
}

public enum Evaluation {
    /// Refuses a dataset whose labels do not fit the model's classes (a 10-class dataset for a 5-class model).
    public static func checkLabels(of dataset: ImageDataset, fit model: Model) throws {
        let classes = model.configuration.classes
        if let label = dataset.labels.first(where: { Int($0) >= classes }) {
            throw TrainingError(description: "\(dataset.name) has label \(label), but \(model.name) was built for \(classes) classes (--classes)")
        }
        guard dataset.channels == model.configuration.inputChannels else {
            throw TrainingError(description: "\(model.name) takes \(model.configuration.inputChannels)-channel images, \(dataset.name) has \(dataset.channels)")
        }
    }

    public static func run(model: Model, dataset: ImageDataset, batchSize: Int = 256, limit: Int? = nil) -> EvaluationReport {
        let classes = model.configuration.classes
        var confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        let loader = BatchLoader(dataset: dataset, batchSize: batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: nil, limit: limit)
        defer { loader.stop() }
        var lossSum = 0.0, seen = 0
        while let batch = loader.next() {
            let (loss, _, output) = model.evaluate(batch: batch.images, labels: batch.labels)
            lossSum += Double(loss)
            for row in 0..<batch.labels.count {
                let truth = Int(batch.labels[row])
                if truth < classes { confusion[truth][model.loss.predictedClass(output: output, row: row)] += 1 }
            }
            seen += batch.labels.count
        }
        let correct = (0..<classes).reduce(0) { $0 + confusion[$1][$1] }
        let perClass = confusion.enumerated().map { index, row in
            Double(row[index]) / Double(max(row.reduce(0, +), 1))
        }
        let names = dataset.classNames.count == classes ? dataset.classNames : (0..<classes).map(String.init)
        return EvaluationReport(loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                                count: seen, classNames: names, perClassAccuracy: perClass, confusionMatrix: confusion)
    }
}
