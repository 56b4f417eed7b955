// A training run read back from its checkpoint to be continued: what `cnn train --resume` does, as a few lines of
// Swift.
//
//     let run = try SavedRun(path: "checkpoints/last.safetensors")      // ClassicCNNZoo rebuilds the network
//     let train = try MNIST.load(.train, from: "Data/mnist")            // run.datasetName says which
//     try Trainer(continuing: run, trainingSet: train, validationSet: nil).fit()
import Foundation

/// A run saved in a checkpoint (`last.safetensors`): the model with its weights, the optimizer with its state, the
/// options the run was started with, and where it stopped. Continue it with `Trainer(continuing:trainingSet:validationSet:)`.
public struct SavedRun {
    /// The checkpoint.
    public let path: String
    public let model: Model
    public let optimizer: any Optimizer
    /// The run's options: batch size, seed, steps per epoch, schedule, label smoothing, clipping, moving average, early
    /// stopping, frozen layers and class weights as the run had them, checkpoints going back to the checkpoint's
    /// folder. `epochs` is the number the schedule was made for when it depends on it; change it to train longer. The
    /// augmentation is resolved against the training set by `Trainer(continuing:)` (`augmentationName`).
    public var options: TrainingOptions
    /// Where the run was.
    public let state: TrainingState
    /// The checkpoint's metadata: the dataset, the metrics, the class names.
    public let info: CheckpointInfo

    /// The dataset the run trained on (`mnist`, `cifar10`, or an image folder's path).
    public var datasetName: String { info.dataset }
    /// The augmentation the run used (`Augmentation.named`), nil for none.
    public var augmentationName: String? { state.augmentation }

    /// Reads the run from a checkpoint loaded with `Checkpoint.load(path:build:)` (or `Checkpoint.load(path:)`, which
    /// ClassicCNNZoo adds, as `SavedRun(path:)` does).
    ///
    /// - Throws: `CheckpointError` naming `path` when it holds no training state, or its optimizer or schedule cannot
    ///   be rebuilt.
    public init(path: String, loaded: (model: Model, info: CheckpointInfo, optimizerState: [String: Tensor])) throws {
        let (model, info, optimizerState) = loaded
        guard let state = info.trainingState, let optimizerName = info.optimizer else {
            throw CheckpointError(path: path, reason: "it has no training state to resume from")
        }
        let optimizer: any Optimizer
        do {
            optimizer = try makeOptimizer(named: optimizerName, settings: info.optimizerSettings)
            try optimizer.restore(state: optimizerState, settings: info.optimizerSettings, parameters: model.parameters)
        } catch {
            throw CheckpointError(path: path, reason: "its optimizer cannot be restored: \(error)")
        }
        var options = TrainingOptions(batchSize: state.batchSize, stepsPerEpoch: state.stepsPerEpoch, seed: state.seed)
        options.checkpointDirectory = (path as NSString).deletingLastPathComponent
        (options.labelSmoothing, options.gradientClipNorm, options.averageDecay) = (state.labelSmoothing, state.gradientClipNorm, state.averageDecay)
        options.earlyStopping = state.earlyStoppingSettings
        options.frozen = state.frozen ?? []
        options.classWeights = state.classWeights
        options.synchronizesBatchNorm = state.synchronizesBatchNorm ?? false
        // The schedule goes on as it was (checkpoints from before schedules ran at a constant rate).
        do {
            options.learningRate = ScheduledLearningRate(
                schedule: try LearningRateSchedule(parsing: state.schedule ?? "constant"),
                baseRate: state.baseLearningRate ?? Double(optimizer.learningRate), warmupEpochs: state.warmupEpochs ?? 0)
        } catch {
            throw CheckpointError(path: path, reason: "its learning-rate schedule cannot be read (\(error))")
        }
        if let weight = state.auxiliaryWeight { for head in model.auxiliaries { head.weight = weight } }
        (self.path, self.model, self.optimizer, self.options, self.state, self.info) = (path, model, optimizer, options, state, info)
    }
}

extension Trainer {
    /// A trainer that continues `run` where it stopped, on the same data (`run.datasetName`): `fit()` goes on from the
    /// saved epoch and step, with the same shuffle, schedule, moving average and early stopping.
    ///
    /// - Throws: `TransformError` if the run's augmentation cannot be made for `trainingSet`.
    public convenience init(continuing run: SavedRun, trainingSet: ImageDataset, validationSet: ImageDataset?) throws {
        var options = run.options
        options.augmentation = try run.augmentationName.flatMap { try Augmentation.named($0, for: trainingSet) }
        self.init(model: run.model, optimizer: run.optimizer, trainingSet: trainingSet, validationSet: validationSet, options: options)
        resumedTensors = run.info.extraTensors
        continuing = run.state
    }
}
