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
    /// Applied to every training image (nil: the images as they are, fitted to the input).
    public var augmentation: Augmentation?
    /// The learning rate of every step (nil: the optimizer's rate, unchanged).
    public var learningRate: ScheduledLearningRate?
    /// Label smoothing of the softmax cross-entropy (nil: the model's loss as it is).
    public var labelSmoothing: Float?
    /// Clip the gradients' global norm at this (nil: no clipping).
    public var gradientClipNorm: Float?
    /// Keep an exponential moving average of the weights with this decay, validate with it and save it in
    /// checkpoints as `ema.*` (nil: none).
    public var averageDecay: Double?
    /// Stop when a metric stops improving (nil: run every epoch).
    public var earlyStopping: EarlyStopping?
    /// Layer paths whose parameters stay as they are (`Model.freeze`): fine-tuning the rest.
    public var frozen: [String] = []
    /// Per-class weights of the training loss (Keras's `class_weight`; `SoftmaxCrossEntropy.balancedWeights` for an
    /// imbalanced folder). Nil: unweighted.
    public var classWeights: [Float]?
    /// Data-parallel: batch norm computes its statistics over the whole step's batch on all ranks (PyTorch's
    /// SyncBatchNorm) instead of each rank's own images (DDP's default).
    public var synchronizesBatchNorm = false

    /// Options as Keras's `fit` takes them: everything has a default, so `TrainingOptions(epochs: 10, batchSize: 128)`
    /// says only what differs.
    public init(epochs: Int = 5, batchSize: Int = 32, stepsPerEpoch: Int? = nil, validationSteps: Int? = nil, seed: UInt64 = 0,
                checkpointDirectory: String? = nil, augmentation: Augmentation? = nil, learningRate: ScheduledLearningRate? = nil,
                labelSmoothing: Float? = nil, gradientClipNorm: Float? = nil, averageDecay: Double? = nil,
                earlyStopping: EarlyStopping? = nil, frozen: [String] = [], classWeights: [Float]? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.stepsPerEpoch = stepsPerEpoch
        self.validationSteps = validationSteps
        self.seed = seed
        self.checkpointDirectory = checkpointDirectory
        self.augmentation = augmentation
        self.learningRate = learningRate
        self.labelSmoothing = labelSmoothing
        self.gradientClipNorm = gradientClipNorm
        self.averageDecay = averageDecay
        self.earlyStopping = earlyStopping
        self.frozen = frozen
        self.classWeights = classWeights
    }
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
    /// Resident and peak resident memory of the process at the end of the epoch, in bytes (Linux).
    public var residentBytes: Int?
    public var peakResidentBytes: Int?
    /// The learning rate of the epoch's last step.
    public var learningRate: Double?
    /// Data-parallel: the seconds this rank spent after backward waiting for the gradients' sums (the communication
    /// that backward did not hide), over the epoch's steps.
    public var allreduceWaitSeconds: Double?

    public init(epoch: Int, loss: Double, accuracy: Double, validationLoss: Double? = nil, validationAccuracy: Double? = nil,
                seconds: Double, imagesPerSecond: Double, steps: Int, residentBytes: Int? = nil, peakResidentBytes: Int? = nil,
                learningRate: Double? = nil) {
        (self.epoch, self.loss, self.accuracy, self.validationLoss, self.validationAccuracy) = (epoch, loss, accuracy, validationLoss, validationAccuracy)
        (self.seconds, self.imagesPerSecond, self.steps) = (seconds, imagesPerSecond, steps)
        (self.residentBytes, self.peakResidentBytes, self.learningRate) = (residentBytes, peakResidentBytes, learningRate)
    }

    /// Keras's names, snake_case: `cnn train --json` prints these.
    enum CodingKeys: String, CodingKey {
        case epoch, loss, accuracy, seconds, steps
        case validationLoss = "val_loss", validationAccuracy = "val_accuracy", imagesPerSecond = "images_per_second"
        case residentBytes = "resident_bytes", peakResidentBytes = "peak_resident_bytes", learningRate = "lr"
        case allreduceWaitSeconds = "allreduce_wait_seconds"
    }

    var metrics: [String: Double] {
        var m = ["loss": loss, "accuracy": accuracy, "seconds": seconds, "images_per_second": imagesPerSecond]
        if let learningRate { m["lr"] = learningRate }
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
    /// A batch of the epoch's validation is done.
    func validationStepFinished(step: Int, of steps: Int)
    /// Early stopping ended the run after `epoch`; `best` is the monitored metric's best value, from `bestEpoch`.
    func stoppedEarly(epoch: Int, monitor: String, best: Double?, bestEpoch: Int?)
}

extension TrainingObserver {
    public func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {}
    public func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {}
    public func epochFinished(_ result: EpochResult) {}
    public func checkpointSaved(path: String, isBest: Bool) {}
    public func validationStepFinished(step: Int, of steps: Int) {}
    public func stoppedEarly(epoch: Int, monitor: String, best: Double?, bestEpoch: Int?) {}
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
}

/// Where a run is, saved in every checkpoint so that `--resume` continues exactly where it stopped: the epoch in
/// progress (or last finished, when `nextBatch` is 0), the next batch, the running sums of the unfinished epoch,
/// the best validation score so far, and every dropout layer's generator. (The shuffle is a function of the seed
/// and the epoch, so it needs no state.)
public struct TrainingState: Codable, Equatable, Sendable {
    public var epoch = 0
    public var nextBatch = 0
    public var lossSum = 0.0
    public var correct = 0
    public var seen = 0
    public var bestScore: Double?
    public var randomStates: [String: [UInt64]] = [:]
    /// The run's options that a resumed run must share.
    public var batchSize = 0
    public var seed: UInt64 = 0
    public var stepsPerEpoch: Int?
    /// The augmentation's name (`Augmentation.name`), nil for none: a resumed run augments as the run it continues.
    public var augmentation: String?
    /// The learning-rate schedule (`LearningRateSchedule.description`), its base rate and warm-up, and the plateau's
    /// counters: a resumed run continues the same schedule from the same place.
    public var schedule: String?
    public var baseLearningRate: Double?
    public var warmupEpochs: Double?
    public var plateau: ReduceOnPlateau.State?
    /// The other training settings a resumed run keeps, and the state of the moving average and of early stopping.
    public var labelSmoothing: Float?
    public var gradientClipNorm: Float?
    public var averageDecay: Double?
    public var averageUpdates: Int?
    public var earlyStoppingMonitor: String?
    public var earlyStoppingPatience: Int?
    public var earlyStoppingMinDelta: Double?
    public var earlyStoppingRestoresBest: Bool?
    public var earlyStopping: EarlyStopping.State?
    /// The weight of the auxiliary heads' losses (a recipe may change the network's own).
    public var auxiliaryWeight: Float?
    /// The frozen layer paths.
    public var frozen: [String]?
    public var classWeights: [Float]?
    /// The number of data-parallel ranks (nil: one process); a resumed run needs the same number.
    public var ranks: Int?
    /// Whether batch norm's statistics were those of the whole step over the ranks (nil: no).
    public var synchronizesBatchNorm: Bool?
    public init() {}

    /// The early stopping this state was saved with.
    public var earlyStoppingSettings: EarlyStopping? {
        guard let monitor = earlyStoppingMonitor else { return nil }
        return EarlyStopping(monitor: monitor, patience: earlyStoppingPatience ?? 0, minDelta: earlyStoppingMinDelta ?? 0,
                             restoreBestWeights: earlyStoppingRestoresBest ?? false)
    }
}

/// Training stopped on request (Ctrl-C) after a whole step; `last.safetensors` holds the state to resume from.
public struct TrainingInterrupted: Error, CustomStringConvertible {
    public let epoch: Int, step: Int
    public let checkpoint: String?
    public var description: String {
        "interrupted at epoch \(epoch), after step \(step)" + (checkpoint.map { "; saved \($0)" } ?? "")
    }
}

public final class Trainer {
    public let model: Model
    public let optimizer: any Optimizer
    public let trainingSet: ImageDataset
    public let validationSet: ImageDataset?
    public let options: TrainingOptions
    /// Told of every step, epoch and checkpoint. Held weakly (the observer often holds the trainer): keep it alive
    /// for the run, as `let progress = MyObserver(); trainer.observer = progress` in the same scope does.
    public weak var observer: (any TrainingObserver)?
    /// Asked after every step; when it returns true the run saves `last.safetensors` and throws `TrainingInterrupted`.
    public var shouldStop: (() -> Bool)?
    /// Called once `fit` has set the run up, before the first step (a data-parallel run has measured `allreduce`).
    public var onStart: ((Trainer) -> Void)?
    /// Where the run is.
    public private(set) var state = TrainingState()
    /// The moving average of the weights, when `options.averageDecay` asks for one.
    public private(set) var average: WeightAverage?
    /// Early stopping's best weights (with `restoreBestWeights`).
    private var bestWeights: [Tensor]?
    /// The extra tensors of the checkpoint resumed from (the moving average, early stopping's best weights).
    public var resumedTensors: [NamedTensor] = []
    /// The state `fit()` continues from when it is given none (`init(continuing:)`).
    var continuing: TrainingState?
    /// Data-parallel training over these ranks (nil: one process). Each rank runs its own `Trainer` with the same
    /// options and seed; the weights start as rank 0's, each step's batch is split over the ranks, the gradients are
    /// averaged during backward, and validation is split and summed. Only rank 0 tells its observer and writes
    /// checkpoints.
    public var communicator: (any Communicator)?
    /// The size of the gradient buckets summed over the ranks while backward runs (PyTorch DDP's bucket_cap_mb: 25 MB).
    public var bucketBytes = 25 << 20
    /// Whether the gradients' sums start during backward (as DDP); false starts them all after it, to measure what
    /// the overlap saves.
    public var overlapsCommunication = true
    /// The gradient averaging of a data-parallel run (for benchmarks: bytes per step, buckets started during backward).
    package private(set) var reducer: GradientReducer?
    /// Data-parallel: the bytes each step sums over the ranks, its buckets, and the seconds the sums take with
    /// nothing else running (measured once when `fit` starts).
    public private(set) var allreduce: (bytesPerStep: Int, buckets: Int, secondsAlone: Double)?
    /// Whether this process writes checkpoints and reports progress: one process, or rank 0.
    private var isLeader: Bool { (communicator?.rank ?? 0) == 0 }
    private var ranks: Int { communicator?.size ?? 1 }

    public init(model: Model, optimizer: any Optimizer, trainingSet: ImageDataset, validationSet: ImageDataset?,
                options: TrainingOptions) {
        // Training changes the weights that an int8 quantisation was calibrated for: validation runs in float.
        model.removeQuantization()
        self.model = model
        self.optimizer = optimizer
        self.trainingSet = trainingSet
        self.validationSet = validationSet
        self.options = options
    }

    /// Trains until `options.epochs`, from the start or from a state saved in a checkpoint (which must come from a run
    /// with the same batch size, seed and steps per epoch); a trainer made with `init(continuing:)` continues its run.
    @discardableResult
    public func fit(resumingFrom resumed: TrainingState? = nil) throws -> [EpochResult] {
        let resumed = resumed ?? continuing
        for dataset in [trainingSet] + (validationSet.map { [$0] } ?? []) {
            try Evaluation.checkLabels(of: dataset, fit: model)
        }
        state = TrainingState()
        state.batchSize = options.batchSize
        state.seed = options.seed
        state.stepsPerEpoch = options.stepsPerEpoch
        state.augmentation = options.augmentation?.name
        if let rate = options.learningRate {
            try rate.validate()
            (state.schedule, state.baseLearningRate, state.warmupEpochs) = (rate.schedule.description, rate.baseRate, rate.warmupEpochs)
            if case .plateau = rate.schedule { state.plateau = ReduceOnPlateau.State() }
        }
        state.labelSmoothing = options.labelSmoothing
        state.auxiliaryWeight = model.auxiliaries.first?.weight
        if !options.frozen.isEmpty {
            do { try model.freeze(options.frozen) } catch { throw TrainingError(description: "\(error)") }
            state.frozen = options.frozen
        }
        state.gradientClipNorm = options.gradientClipNorm
        state.averageDecay = options.averageDecay
        if let stopping = options.earlyStopping {
            try stopping.validate()
            (state.earlyStoppingMonitor, state.earlyStoppingPatience, state.earlyStoppingMinDelta, state.earlyStoppingRestoresBest) =
                (stopping.monitor, stopping.patience, stopping.minDelta, stopping.restoreBestWeights)
            state.earlyStopping = EarlyStopping.State()
        }
        if let smoothing = options.labelSmoothing { try model.setLabelSmoothing(smoothing) }
        if let weights = options.classWeights {
            do { try model.setClassWeights(weights) } catch { throw TrainingError(description: "\(error)") }
            state.classWeights = weights
        }
        if let norm = options.gradientClipNorm {
            guard norm.isFinite, norm > 0 else { throw TrainingError(description: "the gradient clipping norm must be positive, not \(norm)") }
        }
        model.gradientClipNorm = options.gradientClipNorm
        average = nil
        if let decay = options.averageDecay {
            guard decay.isFinite, decay > 0, decay < 1 else { throw TrainingError(description: "the moving average's decay must be in (0, 1), not \(decay)") }
            average = WeightAverage(model: model, decay: decay)
        }
        bestWeights = nil
        if let resumed {
            guard resumed.batchSize == options.batchSize, resumed.seed == options.seed, resumed.stepsPerEpoch == options.stepsPerEpoch else {
                throw TrainingError(description: "the checkpoint was trained with batch size \(resumed.batchSize), seed \(resumed.seed) and "
                    + "\(resumed.stepsPerEpoch.map { "\($0) steps per epoch" } ?? "whole epochs"); resume with the same")
            }
            guard (resumed.ranks ?? 1) == ranks else {
                throw TrainingError(description: "the checkpoint was trained on \(resumed.ranks ?? 1) rank(s); resume it on the same number, not \(ranks)")
            }
            try model.restoreRandomStates(resumed.randomStates)
            let (schedule, base, warmup) = (state.schedule, state.baseLearningRate, state.warmupEpochs)
            state = resumed
            // The schedule is the options' (a resumed run may be given another, for example a lower rate); the
            // plateau's counters carry over only to a plateau schedule.
            (state.schedule, state.baseLearningRate, state.warmupEpochs) = (schedule, base, warmup)
            if case .plateau = options.learningRate?.schedule { state.plateau = state.plateau ?? ReduceOnPlateau.State() } else { state.plateau = nil }
            (state.labelSmoothing, state.gradientClipNorm, state.averageDecay) = (options.labelSmoothing, options.gradientClipNorm, options.averageDecay)
            state.auxiliaryWeight = model.auxiliaries.first?.weight
            state.frozen = options.frozen.isEmpty ? nil : options.frozen
            state.classWeights = options.classWeights
            if let average {
                if let updates = resumed.averageUpdates, resumed.averageDecay != nil {
                    do { try average.restore(resumedTensors, updates: updates) } catch {
                        throw TrainingError(description: "cannot resume the moving average: \(error)")
                    }
                }
            }
            if let stopping = options.earlyStopping {
                (state.earlyStoppingMonitor, state.earlyStoppingPatience, state.earlyStoppingMinDelta, state.earlyStoppingRestoresBest) =
                    (stopping.monitor, stopping.patience, stopping.minDelta, stopping.restoreBestWeights)
                state.earlyStopping = resumed.earlyStopping ?? EarlyStopping.State()
                if stopping.restoreBestWeights {
                    let byName = Dictionary(resumedTensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                    let stored = model.parameters.map { byName[Checkpoint.bestWeightsPrefix + $0.name] }
                    if stored.allSatisfy({ $0 != nil }) {
                        bestWeights = stored.map { Tensor(shape: $0!.shape, values: $0!.values) }
                    }
                }
            } else {
                state.earlyStopping = nil
            }
        }
        state.ranks = ranks > 1 ? ranks : nil
        state.synchronizesBatchNorm = ranks > 1 && options.synchronizesBatchNorm ? true : nil
        var folderProblem: String?
        if let directory = options.checkpointDirectory, isLeader {
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                folderProblem = "\(directory): cannot create the checkpoint folder (\(error.localizedDescription))"
            }
            // Find out now, not after the first epoch, that checkpoints cannot be written there.
            if folderProblem == nil, let problem = Checkpoint.writeProblem(in: directory) {
                folderProblem = "\(directory): checkpoints cannot be written in this folder (\(problem))"
            }
            if folderProblem == nil { Checkpoint.removeAbandonedTemporaryFiles(in: directory) }
        }
        if let communicator, communicator.size > 1 {
            // Every rank learns of rank 0's problem with the folder and stops with it, rather than waiting for rank 0.
            var flag = [folderProblem == nil ? 0.0 : 1.0]
            communicator.sum(&flag, what: "the check of the checkpoint folder")
            if flag[0] > 0 {
                throw TrainingError(description: folderProblem ?? "rank 0 cannot write checkpoints in \(options.checkpointDirectory ?? "")")
            }
            // The same weights everywhere (they are, from the same seed or checkpoint; this makes sure of it).
            for (name, parameter) in model.parameters { communicator.broadcast(parameter.value, what: "\(name) from rank 0") }
            for (_, parameter) in model.parameters { parameter.markChanged() }
            reducer?.detach(from: model)
            let reducer = GradientReducer(model: model, communicator: communicator, bucketBytes: bucketBytes)
            self.reducer = reducer
            reducer.startsDuringBackward = overlapsCommunication
            model.gradientReducer = reducer
            if options.synchronizesBatchNorm {
                for case let norm as BatchNorm2D in GradientReducer.executedLayers(of: model.network) { norm.synchronizer = communicator }
            }
            allreduce = (reducer.bytesPerStep, reducer.buckets.count, reducer.timeAlone())
        } else if let folderProblem {
            throw TrainingError(description: folderProblem)
        }
        defer {
            for case let norm as BatchNorm2D in GradientReducer.executedLayers(of: model.network) { norm.synchronizer = nil }
            reducer?.detach(from: model)
            model.gradientReducer = nil
            model.setBatchShard(nil)
        }
        onStart?(self)
        var results: [EpochResult] = []
        // A run that early stopping ended stays ended.
        if state.earlyStopping?.stoppedEpoch != nil { return results }
        let first = state.nextBatch > 0 ? state.epoch : state.epoch + 1
        guard first <= options.epochs else { return results }
        for epoch in first...options.epochs {
            var result = try runEpoch(epoch, startBatch: epoch == state.epoch ? state.nextBatch : 0)
            result.learningRate = Double(optimizer.learningRate)
            results.append(result)
            observer?.epochFinished(result)
            if let rate = options.learningRate, case let .plateau(settings) = rate.schedule, var plateau = state.plateau {
                settings.update(&plateau, metrics: result.metrics, baseRate: rate.baseRate)
                state.plateau = plateau
            }
            var stopEarly = false
            if let stopping = options.earlyStopping, var counters = state.earlyStopping {
                if stopping.restoreBestWeights && bestWeights == nil { bestWeights = model.parameters.map { Tensor(copying: $0.parameter.value) } }
                if stopping.update(&counters, metrics: result.metrics, epoch: epoch - 1), stopping.restoreBestWeights {
                    bestWeights = model.parameters.map { Tensor(copying: $0.parameter.value) }
                }
                state.earlyStopping = counters
                if counters.stoppedEpoch != nil {
                    stopEarly = true
                    if stopping.restoreBestWeights, let bestWeights {
                        for ((_, parameter), best) in zip(model.parameters, bestWeights) { parameter.value = Tensor(copying: best) }
                    }
                }
            }
            try saveCheckpoints(after: result)
            if stopEarly {
                observer?.stoppedEarly(epoch: epoch, monitor: options.earlyStopping!.monitor, best: state.earlyStopping?.best,
                                       bestEpoch: state.earlyStopping?.bestEpoch.map { $0 + 1 })
                break
            }
            // A stop asked for during the epoch's last step or its validation: the epoch's checkpoint is the place to
            // resume from.
            if epoch < options.epochs, agreedToStop() {
                throw TrainingInterrupted(epoch: epoch, step: result.steps,
                                          checkpoint: options.checkpointDirectory.map { "\($0)/last.safetensors" })
            }
        }
        return results
    }

    private func runEpoch(_ epoch: Int, startBatch: Int) throws -> EpochResult {
        // At most the whole training set, whatever --steps-per-epoch says (and without overflowing).
        let limit = options.stepsPerEpoch.map { steps in
            steps > trainingSet.count / Swift.max(options.batchSize, 1) + 1 ? trainingSet.count : steps * options.batchSize
        }
        let loader = BatchLoader(dataset: trainingSet, batchSize: options.batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: options.seed, epoch: epoch, startBatch: startBatch, limit: limit,
                                 augmentation: options.augmentation, shard: communicator.map { Shard(rank: $0.rank, size: $0.size) })
        defer { loader.stop() }
        observer?.epochStarted(epoch, of: options.epochs, steps: loader.batchCount)
        let start = Date()
        // A resumed epoch continues its running sums.
        var lossSum = 0.0, correct = 0, seen = 0, step = startBatch
        if startBatch > 0 { (lossSum, correct, seen) = (state.lossSum, state.correct, state.seen) }
        let seenBefore = seen
        var waited = 0.0
        while let batch = loader.next() {
            if let rate = options.learningRate {
                let position = SchedulePosition(epoch: epoch - 1, step: step, stepsPerEpoch: loader.batchCount, epochs: options.epochs)
                optimizer.learningRate = Float(rate.rate(at: position, plateau: state.plateau))
            }
            if ranks > 1 { model.setBatchShard((batch.globalOffset, batch.globalCount)) }
            var (loss, right) = model.trainStep(batch: batch.images, labels: batch.labels, optimizer: optimizer)
            var count = batch.labels.count
            if let reducer { waited += reducer.waitSeconds }
            var stopRequested = step + 1 < loader.batchCount && shouldStop?() == true
            if let communicator, ranks > 1 {
                // The step's figures over all ranks, and whether any rank was asked to stop: every rank stops after the
                // same step.
                var figures = [Double(loss), Double(right), Double(count), stopRequested ? 1 : 0]
                communicator.sum(&figures, what: "the loss of step \(step + 1)")
                loss = Float(figures[0])
                (right, count, stopRequested) = (Int(figures[1]), Int(figures[2]), figures[3] > 0)
            }
            if model.nonFiniteGradient == nil, loss.isFinite { average?.update(from: model) }
            guard loss.isFinite else {
                let layer = model.firstNonFiniteLayer(for: batch.images).map { "; first non-finite: \($0)" } ?? ""
                throw TrainingError(description: "training diverged: the loss became \(loss) at epoch \(epoch), step \(step + 1)\(layer); "
                    + "try a lower --lr. The checkpoints of earlier epochs are untouched")
            }
            if let parameter = model.nonFiniteGradient {
                throw TrainingError(description: "training diverged: the gradient of \(parameter) became non-finite at epoch \(epoch), "
                    + "step \(step + 1) (the loss was \(loss)); the step was not applied. Try a lower --lr. "
                    + "The checkpoints of earlier epochs are untouched")
            }
            step += 1
            lossSum += Double(loss)
            correct += right
            seen += count
            if isLeader {
                observer?.stepFinished(step: step, of: loader.batchCount, loss: lossSum / Double(seen),
                                       accuracy: Double(correct) / Double(seen), elapsed: Date().timeIntervalSince(start))
            }
            if stopRequested {
                (state.epoch, state.nextBatch, state.lossSum, state.correct, state.seen) = (epoch, step, lossSum, correct, seen)
                state.randomStates = model.randomStates
                var saved: String?
                if let directory = options.checkpointDirectory {
                    saved = "\(directory)/last.safetensors"
                    if isLeader {
                        try Checkpoint.save(model: model, optimizer: optimizer, info: checkpointInfo(epoch: epoch - 1, metrics: [:]), to: saved!)
                    }
                }
                throw TrainingInterrupted(epoch: epoch, step: step, checkpoint: saved)
            }
        }
        if let failure = loader.failure { throw failure }
        (state.epoch, state.nextBatch, state.lossSum, state.correct, state.seen) = (epoch, 0, 0, 0, 0)
        let trainingSeconds = Date().timeIntervalSince(start)
        var result = EpochResult(epoch: epoch, loss: lossSum / Double(max(seen, 1)), accuracy: Double(correct) / Double(max(seen, 1)),
                                 seconds: trainingSeconds, imagesPerSecond: Double(seen - seenBefore) / max(trainingSeconds, 1e-9), steps: step)
        if reducer != nil { result.allreduceWaitSeconds = waited }
        if let validationSet {
            // The training batch size, as Keras does: a larger one would grow every activation buffer (for VGG at 224,
            // by gigabytes).
            let batchSize = options.batchSize
            let limit = options.validationSteps.map { $0 > validationSet.count / batchSize ? validationSet.count : $0 * batchSize }
            // With a moving average, validation (and so the best checkpoint) is the averaged weights'.
            let progress: (Int, Int) -> Void = { [weak observer] step, steps in observer?.validationStepFinished(step: step, of: steps) }
            synchronizeBuffers()
            let communicator = ranks > 1 ? self.communicator : nil
            let report = try average.map { average in
                try average.withAveragedWeights(in: model) {
                    try Evaluation.run(model: model, dataset: validationSet, batchSize: batchSize, limit: limit, progress: progress,
                                       communicator: communicator)
                }
            } ?? Evaluation.run(model: model, dataset: validationSet, batchSize: batchSize, limit: limit, progress: progress,
                                communicator: communicator)
            result.validationLoss = report.loss
            result.validationAccuracy = report.accuracy
        }
        if let memory = ResidentMemory.current() { (result.residentBytes, result.peakResidentBytes) = (memory.resident, memory.peak) }
        return result
    }

    /// Whether to stop at the end of an epoch: asked on every rank and summed, so that all stop or none does.
    private func agreedToStop() -> Bool {
        var flag = [shouldStop?() == true ? 1.0 : 0]
        if let communicator, communicator.size > 1 { communicator.sum(&flag, what: "the stop flag after an epoch") }
        return flag[0] > 0
    }

    /// Data-parallel: rank 0's batch-norm running statistics (each rank's follow its own images, as in PyTorch DDP,
    /// which broadcasts rank 0's buffers) and moving averages on every rank, so that every rank validates the model
    /// that rank 0 saves.
    private func synchronizeBuffers() {
        guard let communicator, communicator.size > 1 else { return }
        for (name, parameter) in model.parameters where !parameter.isTrainable {
            communicator.broadcast(parameter.value, what: "\(name) from rank 0")
            parameter.markChanged()
        }
        for (name, tensor) in average?.averages ?? [] { communicator.broadcast(tensor, what: "the moving average of \(name)") }
    }

    private func checkpointInfo(epoch: Int, metrics: [String: Double]) -> CheckpointInfo {
        var info = CheckpointInfo(model: model.name, configuration: model.configuration, epoch: epoch,
                                  dataset: Self.datasetName(of: trainingSet),
                                  metrics: metrics, optimizer: optimizer.name, optimizerSettings: optimizer.settings, seed: options.seed)
        if trainingSet.classNames.count == model.configuration.classes { info.classNames = trainingSet.classNames }
        var state = self.state
        state.averageUpdates = average?.updates
        info.trainingState = state
        info.extraTensors = (average?.namedTensors ?? []) + (bestWeights.map { weights in
            zip(model.parameters, weights).map { NamedTensor(name: Checkpoint.bestWeightsPrefix + $0.0.name, shape: $0.1.shape, values: $0.1.values) }
        } ?? [])
        return info
    }

    /// What `cnn train --dataset` was given: the dataset's name without its split ("mnist-train" -> "mnist", and an
    /// image folder's "/data/my-photos-train" -> "/data/my-photos").
    static func datasetName(of dataset: ImageDataset) -> String {
        guard let dash = dataset.name.lastIndex(of: "-") else { return dataset.name }
        return String(dataset.name[..<dash])
    }

    private func saveCheckpoints(after result: EpochResult) throws {
        let score = result.validationLoss ?? result.loss
        let improved = score < (state.bestScore ?? .infinity)
        if improved { state.bestScore = score }
        state.randomStates = model.randomStates
        guard let directory = options.checkpointDirectory, isLeader else { return }
        // Weights that are no longer numbers never reach a checkpoint (they can appear without a non-finite loss, for
        // example when only the validation pass overflows).
        if let parameter = model.firstNonFiniteParameter {
            throw TrainingError(description: "training diverged: \(parameter) holds a NaN or an infinity after epoch \(result.epoch); "
                + "nothing was saved for this epoch and the checkpoints of earlier epochs are untouched. Try a lower --lr")
        }
        let info = checkpointInfo(epoch: result.epoch, metrics: result.metrics)
        let last = "\(directory)/last.safetensors"
        try Checkpoint.save(model: model, optimizer: optimizer, info: info, to: last)
        observer?.checkpointSaved(path: last, isBest: false)
        if improved {
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

    /// Data-parallel: each rank evaluates its contiguous part of the (first `limit`) images, and the losses and
    /// confusion matrices are summed over the ranks, so every rank gets the report of the whole set.
    public static func run(model: Model, dataset: ImageDataset, batchSize: Int = 256, limit: Int? = nil,
                           progress: ((_ batches: Int, _ of: Int) -> Void)? = nil, communicator: (any Communicator)?) throws -> EvaluationReport {
        guard let communicator, communicator.size > 1 else {
            return try run(model: model, dataset: dataset, batchSize: batchSize, limit: limit, progress: progress)
        }
        let count = Swift.min(limit ?? dataset.count, dataset.count)
        let part = Shard(rank: communicator.rank, size: communicator.size).part(of: count)
        let mine = try run(model: model, dataset: dataset.part(part.offset ..< part.offset + part.count), batchSize: batchSize,
                           progress: progress)
        let classes = mine.confusionMatrix.count
        var sums = [mine.loss * Double(mine.count), Double(mine.count)] + mine.confusionMatrix.joined().map(Double.init)
        communicator.sum(&sums, what: "the validation figures")
        let confusion = (0..<classes).map { row in (0..<classes).map { Int(sums[2 + row * classes + $0]) } }
        return report(lossSum: sums[0], count: Int(sums[1]), confusion: confusion, dataset: dataset)
    }

    /// `progress` is told after each batch how many of how many are done. With `mirrored`, each image's softmax is
    /// averaged with that of its left-right mirror (test-time flips, the mirrored half of AlexNet's ten crops at the
    /// input size), and the loss is the cross entropy of that average.
    ///
    /// - Throws: the error of an image of an on-demand dataset that could not be read.
    public static func run(model: Model, dataset: ImageDataset, batchSize: Int = 256, limit: Int? = nil, mirrored: Bool = false,
                           progress: ((_ batches: Int, _ of: Int) -> Void)? = nil) throws -> EvaluationReport {
        let classes = model.configuration.classes
        var confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        let loader = BatchLoader(dataset: dataset, batchSize: batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: nil, limit: limit)
        defer { loader.stop() }
        var lossSum = 0.0, seen = 0, batches = 0
        let total = (min(limit ?? dataset.count, dataset.count) + batchSize - 1) / batchSize
        while let batch = loader.next() {
            defer { batches += 1; progress?(batches, total) }
            if mirrored {
                // Each view's probabilities before the next forward pass: the output tensor is the network's own buffer.
                let views = [batch.images, batch.images.mirrored()].map { model.loss.probabilities(output: model.forward($0)) }
                for row in 0..<batch.labels.count {
                    tally(zip(views[0][row], views[1][row]).map { (Double($0) + Double($1)) / 2 }, truth: Int(batch.labels[row]),
                          lossSum: &lossSum, confusion: &confusion)
                }
                seen += batch.labels.count
                continue
            }
            let (loss, _, output) = model.evaluate(batch: batch.images, labels: batch.labels)
            lossSum += Double(loss)
            for row in 0..<batch.labels.count {
                let truth = Int(batch.labels[row])
                if truth < classes { confusion[truth][model.loss.predictedClass(output: output, row: row)] += 1 }
            }
            seen += batch.labels.count
        }
        if let failure = loader.failure { throw failure }
        return report(lossSum: lossSum, count: seen, confusion: confusion, dataset: dataset)
    }

    /// One image's averaged softmax `mean` counted: its cross entropy added to `lossSum`, its prediction to the
    /// confusion matrix (an image whose label the network has no class for is skipped, as `run` skips it).
    static func tally(_ mean: [Double], truth: Int, lossSum: inout Double, confusion: inout [[Int]]) {
        guard truth < mean.count else { return }
        lossSum -= log(max(mean[truth], 1e-30))
        confusion[truth][mean.indices.max { mean[$0] < mean[$1] }!] += 1
    }

    /// The report of `count` images whose losses sum to `lossSum`, from their confusion matrix.
    static func report(lossSum: Double, count: Int, confusion: [[Int]], dataset: ImageDataset) -> EvaluationReport {
        let classes = confusion.count
        let correct = (0..<classes).reduce(0) { $0 + confusion[$1][$1] }
        let perClass = confusion.enumerated().map { index, row in
            Double(row[index]) / Double(max(row.reduce(0, +), 1))
        }
        let names = dataset.classNames.count == classes ? dataset.classNames : (0..<classes).map(String.init)
        return EvaluationReport(loss: lossSum / Double(max(count, 1)), accuracy: Double(correct) / Double(max(count, 1)),
                                count: count, classNames: names, perClassAccuracy: perClass, confusionMatrix: confusion)
    }

    /// AlexNet's testing (section 4.1): each image resized so its shorter side is 256 (scaled with the input size:
    /// 256 at 224) and its centre square kept, then the four corner crops, the centre crop and their mirrors at the
    /// input size; the softmax of the ten averaged. The loss is the cross entropy of that average.
    public static func runTenCrop(model: Model, dataset: ImageDataset, imagesPerBatch: Int = 8, limit: Int? = nil) throws -> EvaluationReport {
        let classes = model.configuration.classes, s = model.configuration.inputSize, c = dataset.channels
        let rescaled = Int((Double(s) * 256 / 224).rounded())
        var confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        var lossSum = 0.0
        let count = min(limit ?? dataset.count, dataset.count)
        let same = BatchLoader.Interpolations(outputSize: s)
        for start in stride(from: 0, to: count, by: max(imagesPerBatch, 1)) {
            let indices = start..<min(start + max(imagesPerBatch, 1), count)
            var batch = Tensor(shape: [indices.count * 10, c, s, s])
            for (i, index) in indices.enumerated() {
                let square = try dataset.image(at: index).resized(shorterSide: rescaled).centreCropped(width: rescaled, height: rescaled)
                for (k, crop) in try square.tenCrops(width: s, height: s).enumerated() {
                    batch.withUnsafeMutableBufferPointer { out in
                        crop.planarPixels.withUnsafeBufferPointer { pixels in
                            BatchLoader.fit(pixels.baseAddress!, channels: c, height: s, width: s, inputSize: s, format: model.inputFormat,
                                            interpolations: same, into: out.baseAddress! + (i * 10 + k) * c * s * s)
                        }
                    }
                }
            }
            let probabilities = model.loss.probabilities(output: model.forward(batch))
            for (i, index) in indices.enumerated() {
                var mean = [Double](repeating: 0, count: classes)
                for k in 0..<10 { for j in 0..<classes { mean[j] += Double(probabilities[i * 10 + k][j]) / 10 } }
                tally(mean, truth: Int(dataset.labels[index]), lossSum: &lossSum, confusion: &confusion)
            }
        }
        return report(lossSum: lossSum, count: count, confusion: confusion, dataset: dataset)
    }
}
