import ArgumentParser
import ClassicCNN
import Foundation

enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network; checkpoints go to --checkpoint-dir (last.safetensors, best.safetensors).")

    @OptionGroup var network: ModelOptions
    @Option(help: "The dataset: mnist, cifar10 or the path of an image folder (one sub-folder per class; default: the network's own).")
    var dataset: String?
    @Option(help: "Epochs.") var epochs = 5
    @Option(help: "Images per step.") var batchSize = 32
    @Option(help: "Stop each epoch after this many steps (default: the whole training set).") var stepsPerEpoch: Int?
    @Option(help: "Validate on this many batches of the test set (default: all of it).") var validationSteps: Int?
    @Option(help: "sgd or adam.") var optimizer: OptimizerChoice = .adam
    @Option(help: "Learning rate (default: 0.001 for adam, 0.01 for sgd).") var lr: Float?
    @Option(help: "Momentum for sgd.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum for sgd.") var nesterov = false
    @Option(help: "L2 weight decay.") var weightDecay: Float = 0
    @Option(help: "Seed of the weights, the shuffling and dropout.") var seed: UInt64 = 0
    @Option(help: "Where to write last.safetensors and best.safetensors.") var checkpointDir = "checkpoints"
    @Flag(help: "Continue from CHECKPOINT_DIR/last.safetensors: its weights, optimizer state, epoch and position, batch size and seed.")
    var resume = false
    @Option(help: "Training-image augmentation: none, flip, alexnet (random crops of 256, flips, PCA colour noise) or vgg (scale jittering 256-512, crops, flips, colour shift).")
    var augment = "none"
    @Flag(help: "Print one JSON object per epoch instead of the progress bar.") var json = false
    @Option(help: "Log TensorBoard event files (scalars every 20 steps and every epoch) and metrics.csv (one row per epoch) here.")
    var logDir: String?
    @OptionGroup var data: DataOptions
    @OptionGroup var folder: ImageFolderOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        if !["none", "flip", "alexnet", "vgg"].contains(augment) {
            throw ValidationError("--augment must be none, flip, alexnet or vgg, got '\(augment)'")
        }
        try validateBatchSize(batchSize)
        if let stepsPerEpoch, stepsPerEpoch < 1 { throw ValidationError("--steps-per-epoch must be at least 1, got \(stepsPerEpoch)") }
        if let validationSteps, validationSteps < 1 { throw ValidationError("--validation-steps must be at least 1, got \(validationSteps)") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if !(momentum >= 0 && momentum < 1) { throw ValidationError("--momentum must be in [0, 1), got \(momentum)") }
        if !(weightDecay >= 0) { throw ValidationError("--weight-decay must be non-negative, got \(weightDecay)") }
    }

    func run() throws {
        runtime.apply()
        // Past the file-size limit (ulimit -f), a write should fail with EFBIG and be reported, not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        let model = self.network.model
        let descriptor = try self.network.descriptor
        var network = try self.network.make()
        network.initialize(seed: seed)
        var datasetName = dataset ?? descriptor.defaultDataset
        var options = TrainingOptions()
        options.epochs = epochs
        options.batchSize = batchSize
        options.stepsPerEpoch = stepsPerEpoch
        options.validationSteps = validationSteps
        options.seed = seed
        options.checkpointDirectory = checkpointDir
        var chosen: any ClassicCNN.Optimizer = switch optimizer {
        case .adam: Adam(learningRate: lr ?? 0.001, weightDecay: weightDecay)
        case .sgd: SGD(learningRate: lr ?? 0.01, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
        }
        var resumed: TrainingState?
        var augmentation = augment
        if resume {
            let path = "\(checkpointDir)/last.safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                throw CommandError(description: "--resume: \(path) does not exist (train without --resume first)")
            }
            let (saved, info, optimizerState) = try Checkpoint.load(path: path)
            guard saved.name == model else { throw CommandError(description: "\(path) holds a \(saved.name), not a \(model)") }
            guard let state = info.trainingState, let optimizerName = info.optimizer else {
                throw CommandError(description: "\(path) has no training state to resume from")
            }
            network = saved
            chosen = try makeOptimizer(named: optimizerName, settings: info.optimizerSettings)
            try chosen.restore(state: optimizerState, settings: info.optimizerSettings, parameters: network.parameters)
            (options.batchSize, options.seed, options.stepsPerEpoch) = (state.batchSize, state.seed, state.stepsPerEpoch)
            datasetName = info.dataset
            resumed = state
            augmentation = state.augmentation ?? "none"
            if !json {
                let position = state.nextBatch > 0 ? "epoch \(state.epoch), step \(state.nextBatch + 1)" : "epoch \(state.epoch + 1)"
                print("Resuming \(path) at \(position) (batch size \(state.batchSize), seed \(state.seed), \(optimizerName))")
            }
        }
        let (trainingSet, validationSet) = try loadTrainingData(datasetName, channels: network.configuration.inputChannels,
                                                                seed: options.seed, folder: folder, dataDirectory: data.dataDir)
        do { options.augmentation = try Augmentation.named(augmentation, for: trainingSet) } catch let error as TransformError {
            throw CommandError(description: "\(error)")
        }
        let trainer = Trainer(model: network, optimizer: chosen, trainingSet: trainingSet, validationSet: validationSet, options: options)
        let progress = ProgressBar(json: json)
        let log = try logDir.map { directory in
            try TrainingLog(directory: directory, batchSize: options.batchSize) { [optimizer = trainer.optimizer] in Double(optimizer.learningRate) }
        }
        log?.onFailure = { printError("\nWarning: logging stopped: \($0). Training goes on and checkpoints are still saved.") }
        let observers = TrainingObservers([progress] + (log.map { [$0] } ?? []))
        trainer.observer = observers
        if !json {
            print("Training \(model) (\(network.parameterCount.grouped) parameters) on \(datasetName): \(trainingSet.count.grouped) images, "
                  + "validating on \((validationSet?.count ?? 0).grouped); \(Parallel.threads) threads")
        }
        let interruption = Interruption()
        trainer.shouldStop = { interruption.requested }
        do {
            try withExtendedLifetime(observers) { _ = try trainer.fit(resumingFrom: resumed) }
        } catch let stopped as TrainingInterrupted {
            try? log?.close()
            print("")
            printError("Stopped: \(stopped). Continue with the same command and --resume.")
            throw ExitCode(130)
        }
        do { try log?.close() } catch {
            throw CommandError(description: "training finished and its checkpoints are saved, but the log is incomplete: \(error)")
        }
    }
}

/// Ctrl-C while training: the first asks the run to stop after the current step (and save `last.safetensors`);
/// a second exits at once, touching no checkpoint. Handled on a dispatch queue, not inside the signal handler.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private let source: DispatchSourceSignal

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [unowned self] in
            self.lock.lock()
            self.count += 1
            let second = self.count >= 2
            self.lock.unlock()
            if second { _exit(130) }
            FileHandle.standardError.write(Data("\nStopping after this step (Ctrl-C again to quit at once)...\n".utf8))
        }
        source.resume()
    }

    deinit {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }

    var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return count > 0
    }
}

/// A Keras-style progress line per epoch: steps done, time per step, running loss and accuracy; then the
/// validation figures, epoch time and images per second.
final class ProgressBar: TrainingObserver {
    let json: Bool
    let interactive = isatty(STDOUT_FILENO) != 0
    private var lastDraw = Date.distantPast
    private var line = ""

    init(json: Bool) { self.json = json }

    func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {
        if !json {
            print("Epoch \(epoch)/\(epochs)")
            fflush(stdout)
        }
    }

    func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {
        guard !json else { return }
        let width = 30, done = steps > 0 ? width * step / steps : width
        let bar = String(repeating: "=", count: max(done - 1, 0)) + (done < width ? ">" : "=") + String(repeating: ".", count: width - done)
        let stepField = String(step).leftPad(String(steps).count)
        let perStep = elapsed / Double(max(step, 1)) * 1000
        line = "\(stepField)/\(steps) [\(bar)] - \(Int(elapsed.rounded()))s \(String(format: "%.1f", perStep))ms/step"
            + " - loss: \(String(format: "%.4f", loss)) - accuracy: \(String(format: "%.4f", accuracy))"
        if interactive && (Date().timeIntervalSince(lastDraw) > 0.1 || step == steps) {
            print("\r" + line, terminator: "")
            fflush(stdout)
            lastDraw = Date()
        }
    }

    func epochFinished(_ result: EpochResult) {
        defer { fflush(stdout) }
        if json {
            try? printJSON(result)
            return
        }
        var text = (interactive ? "\r" : "") + line
        if let loss = result.validationLoss, let accuracy = result.validationAccuracy {
            text += " - val_loss: \(String(format: "%.4f", loss)) - val_accuracy: \(String(format: "%.4f", accuracy))"
        }
        text += " - \(String(format: "%.1f", result.seconds))s - \(Int(result.imagesPerSecond).grouped) img/s"
        if let peak = result.peakResidentBytes { text += " - peak memory \(peak >> 20) MB" }
        print(text)
    }

    func checkpointSaved(path: String, isBest: Bool) {
        if !json && isBest { print("  saved \(path)") }
    }
}
