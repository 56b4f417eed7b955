import ArgumentParser
import ClassicCNN
import ClassicCNNMPI
import Foundation

enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam, adamw, rmsprop
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network; checkpoints go to --checkpoint-dir (last.safetensors, best.safetensors).")

    @OptionGroup var network: ModelOptions
    @Option(help: "The dataset: mnist, cifar10 or the path of an image folder (one sub-folder per class; default: the network's own).")
    var dataset: String?
    @Option(help: ArgumentHelp("Start from a paper's training settings: \(Recipes.all.map(\.name).joined(separator: ", ")) "
        + "(`cnn recipes` lists them). Options given explicitly override the recipe's.", valueName: "name"))
    var recipe: String?
    @Option(parsing: .unconditional, help: "Epochs (default: 5, or the recipe's).") var epochs: Int?
    @Option(parsing: .unconditional, help: "Images per step (default: 32, or the recipe's).") var batchSize: Int?
    @Option(help: "Stop each epoch after this many steps (default: the whole training set).") var stepsPerEpoch: Int?
    @Option(help: "Validate on this many batches of the test set (default: all of it).") var validationSteps: Int?
    @Option(help: "sgd, adam, adamw or rmsprop (default: adam, or the recipe's).") var optimizer: OptimizerChoice?
    @Option(help: "Learning rate (default: 0.001 for adam and adamw, 0.01 for sgd and rmsprop, or the recipe's).") var lr: Float?
    @Option(help: ArgumentHelp("The learning rate's schedule: constant, step:every=E[,factor=0.1], multistep:milestones=E1/E2[,factor=0.1], "
        + "exponential:factor=F[,every=1], cosine[:min_lr=0], onecycle[:pct_start=0.3,div_factor=25,final_div_factor=1e4] (--lr is the peak) "
        + "or plateau[:monitor=val_loss,factor=0.1,patience=10,min_delta=1e-4,cooldown=0,min_lr=0]. Epochs count from 0, as PyTorch's.",
        valueName: "schedule"))
    var lrSchedule: String?
    @Option(help: "Raise the learning rate linearly over this many epochs (counted in steps) before the schedule.") var warmupEpochs: Double = 0
    @Option(help: "Momentum for sgd and rmsprop (default: 0.9 for sgd, 0 for rmsprop, or the recipe's).") var momentum: Float?
    @Flag(help: "Nesterov momentum for sgd.") var nesterov = false
    @Option(help: "Weight decay: L2 added to the gradient (sgd, adam, rmsprop), decoupled for adamw (default: 0, 0.01 for adamw, or the recipe's).")
    var weightDecay: Float?
    @Flag(inversion: .prefixedNo, help: "Decay biases and batch-norm parameters too (--no-decay-vectors leaves every 1-D parameter undecayed).")
    var decayVectors = true
    @Option(help: "Epsilon of adam, adamw and rmsprop (default: 1e-7 adam, 1e-8 adamw and rmsprop, or the recipe's).") var epsilon: Float?
    @Option(help: "RMSProp's decay of the squared-gradient average (default: 0.9).") var rho: Float?
    @Option(help: ArgumentHelp("RMSProp's convention: pytorch (epsilon outside the root, torch.optim.RMSprop) or tensorflow (inside, the rate "
        + "inside the momentum, the average starting at 1: the Inception papers')."))
    var rmspropConvention: String?
    @Option(help: "Label smoothing of the cross-entropy, e.g. 0.1 (Inception v3).") var labelSmoothing: Float?
    @Option(help: "Clip the gradients' global L2 norm at this, e.g. 2.0 (Inception v3).") var clipNorm: Float?
    @Option(help: ArgumentHelp("Weight each class's training loss (Keras's class_weight): balanced (count / (classes x the class's count), "
        + "from the training set) or one weight per class, W0,W1,...", valueName: "weights"))
    var classWeight: String?
    @Option(help: "Keep an exponential moving average of the weights with this decay (e.g. 0.9999), validate with it and save it in checkpoints.")
    var ema: Double?
    @Option(help: "Stop when --early-stopping-monitor has not improved for this many epochs (Keras's EarlyStopping).") var earlyStoppingPatience: Int?
    @Option(help: "What early stopping watches: val_loss, val_accuracy, loss or accuracy.") var earlyStoppingMonitor = "val_loss"
    @Option(help: "The least change that counts as an improvement for early stopping.") var earlyStoppingMinDelta: Double = 0
    @Flag(help: "When early stopping ends the run, go back to the weights of the best epoch.") var restoreBestWeights = false
    @Option(help: ArgumentHelp("Start from the weights in FILE (a checkpoint, a safetensors state dict or PyTorch's .pth), or from "
        + "pretrained:NAME, torchvision's published weights (fetched on first use; see `cnn weights list`): every tensor whose name "
        + "and shape match is loaded, the rest of the network (a classifier for other --classes) "
        + "keeps its fresh initialisation.", valueName: "file"))
    var `init`: String?
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Freeze these layers (paths such as features or features.0): no updates, batch norm "
        + "in inference mode, and no gradients through frozen layers at the start of the network.", valueName: "prefix"))
    var freeze: [String] = []
    @Option(help: ArgumentHelp("Freeze every top-level layer but this one (e.g. classifier, or fc).", valueName: "prefix"))
    var trainOnly: String?
    @Option(name: .customLong("seed"), help: "Seed of the weights, the shuffling and dropout (default: 0).") var seedOption: UInt64?
    var seed: UInt64 { seedOption ?? 0 }
    @Option(help: "Where to write last.safetensors and best.safetensors.") var checkpointDir = "checkpoints"
    @Flag(help: ArgumentHelp("Continue from CHECKPOINT_DIR/last.safetensors: its weights, optimizer state, schedule, epoch and position, "
        + "dataset, batch size, seed and every other training setting. Only --lr (the schedule's base rate from here on), --epochs and "
        + "what does not change the run (--validation-steps, --log-dir, --threads, --json) may be given anew; other options that "
        + "differ from the run's are refused."))
    var resume = false
    @Flag(help: "Replace the checkpoints of another run in CHECKPOINT_DIR (without it, a folder that holds them is refused).")
    var overwrite = false
    @Option(help: "Training-image augmentation: none, flip, alexnet (random crops of 256, flips, PCA colour noise), vgg (scale jittering 256-512, crops, flips, colour shift) crop (padded by 4, random crops, flips: CIFAR's; crop:N pads by N) or cutout (crop, then a 16x16 square of the mean colour: DeVries & Taylor; cutout:SIZE[:PADDING]).")
    var augment: String?
    @Flag(help: "Print one JSON object per epoch instead of the progress bar.") var json = false
    @Option(help: "Log TensorBoard event files (scalars every 20 steps and every epoch) and metrics.csv (one row per epoch) here.")
    var logDir: String?
    @OptionGroup var data: DataOptions
    @OptionGroup var folder: ImageFolderOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup(title: "Data-parallel training (under mpirun, in a build with --traits MPI)") var distributed: DistributedOptions

    func validate() throws {
        if let recipe { do { _ = try Recipes.named(recipe) } catch { throw ValidationError("--recipe: \(error)") } }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        if let augment { try validateAugmentation(augment) }
        do {
            try ScheduledLearningRate(schedule: LearningRateSchedule(parsing: lrSchedule ?? "constant"), baseRate: 1, warmupEpochs: warmupEpochs).validate()
        } catch {
            throw ValidationError("--lr-schedule \(lrSchedule ?? "constant"): \(error)")
        }
        if let batchSize { try validateBatchSize(batchSize) }
        if let epsilon, !(epsilon > 0 && epsilon.isFinite) { throw ValidationError("--epsilon must be a positive number, got \(epsilon)") }
        if let rho, !(rho > 0 && rho < 1) { throw ValidationError("--rho must be in (0, 1), got \(rho)") }
        if let rmspropConvention, !["pytorch", "tensorflow"].contains(rmspropConvention) {
            throw ValidationError("--rmsprop-convention must be pytorch or tensorflow, got '\(rmspropConvention)'")
        }
        if let labelSmoothing, !(labelSmoothing >= 0 && labelSmoothing < 1) {
            throw ValidationError("--label-smoothing must be in [0, 1), got \(labelSmoothing)")
        }
        if let classWeight, classWeight != "balanced" {
            let weights = classWeight.split(separator: ",").map { Float($0) }
            guard !weights.isEmpty, weights.allSatisfy({ $0 != nil && $0!.isFinite && $0! > 0 }) else {
                throw ValidationError("--class-weight must be balanced or positive numbers separated by commas, got '\(classWeight)'")
            }
        }
        if let clipNorm, !(clipNorm > 0 && clipNorm.isFinite) { throw ValidationError("--clip-norm must be a positive number, got \(clipNorm)") }
        if `init` != nil && resume { throw ValidationError("--init starts a new run from other weights; --resume continues this one: give one of them") }
        if trainOnly != nil && !freeze.isEmpty { throw ValidationError("give --freeze or --train-only, not both") }
        if let ema, !(ema > 0 && ema < 1) { throw ValidationError("--ema must be in (0, 1), e.g. 0.9999, got \(ema)") }
        if let earlyStoppingPatience, earlyStoppingPatience < 0 {
            throw ValidationError("--early-stopping-patience must be 0 or more, got \(earlyStoppingPatience)")
        }
        if !EarlyStopping.monitors.contains(earlyStoppingMonitor) {
            throw ValidationError("--early-stopping-monitor must be one of \(EarlyStopping.monitors.joined(separator: ", ")), got '\(earlyStoppingMonitor)'")
        }
        if !(earlyStoppingMinDelta >= 0 && earlyStoppingMinDelta.isFinite) {
            throw ValidationError("--early-stopping-min-delta must be a non-negative number, got \(earlyStoppingMinDelta)")
        }
        if let stepsPerEpoch, stepsPerEpoch < 1 { throw ValidationError("--steps-per-epoch must be at least 1, got \(stepsPerEpoch)") }
        if let validationSteps, validationSteps < 1 { throw ValidationError("--validation-steps must be at least 1, got \(validationSteps)") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if let momentum, !(momentum >= 0 && momentum < 1) { throw ValidationError("--momentum must be in [0, 1), got \(momentum)") }
        if let weightDecay, !(weightDecay >= 0 && weightDecay.isFinite) { throw ValidationError("--weight-decay must be non-negative, got \(weightDecay)") }
    }

    /// A new run must not replace another run's checkpoints without a word: a folder holding them is refused, naming
    /// the run found there, unless --overwrite says to replace them (or --resume to continue it).
    func refuseAnotherRunsCheckpoints() throws {
        let found = ["last", "best"].map { "\(checkpointDir)/\($0).safetensors" }.filter { FileManager.default.fileExists(atPath: $0) }
        guard let first = found.first else { return }
        var what = ""
        if let info = try? Checkpoint.readInfo(path: first) {
            let accuracy = info.metrics["val_accuracy"].map { String(format: ", %.2f%% validation accuracy", $0 * 100) } ?? ""
            what = " (\(info.model) on \(info.dataset), epoch \(info.epoch)\(accuracy))"
        }
        throw ValidationError("\(checkpointDir) holds another run's checkpoints\(what): \(found.joined(separator: ", ")). "
            + "Continue that run with --resume, train in another --checkpoint-dir, or pass --overwrite to replace them")
    }

    /// The options given with --resume that differ from the run being resumed, each with the run's own value.
    func resumeConflicts(state: TrainingState, info: CheckpointInfo, saved: Model) -> [String] {
        var conflicts: [String] = []
        func check<T: Equatable>(_ option: String, _ given: T?, _ saved: T, _ shown: String? = nil) {
            if let given, given != saved { conflicts.append("\(option) \(given) (the run's: \(shown ?? "\(saved)"))") }
        }
        func standardized(_ name: String) -> String { Datasets.isImageFolder(name) ? URL(fileURLWithPath: name).standardized.path : name }
        check("--dataset", dataset.map(standardized), standardized(info.dataset), info.dataset)
        check("--classes", network.classes, saved.configuration.classes)
        check("--input-size", network.inputSize, saved.configuration.inputSize)
        check("--batch-size", batchSize, state.batchSize)
        check("--seed", seedOption, state.seed)
        if let stepsPerEpoch, stepsPerEpoch != state.stepsPerEpoch {
            conflicts.append("--steps-per-epoch \(stepsPerEpoch) (the run's: \(state.stepsPerEpoch.map(String.init) ?? "whole epochs"))")
        }
        check("--optimizer", optimizer?.rawValue, info.optimizer ?? "")
        func setting(_ option: String, _ given: Float?, _ key: String) {
            if let given, let value = info.optimizerSettings[key], abs(Double(given) - value) > 1e-7 * max(1, abs(value)) {
                conflicts.append("\(option) \(given) (the run's: \(Float(value)))")
            }
        }
        setting("--momentum", momentum, "momentum")
        setting("--weight-decay", weightDecay, "weight_decay")
        setting("--epsilon", epsilon, "epsilon")
        setting("--rho", rho, "rho")
        if let schedule = lrSchedule, let parsed = try? LearningRateSchedule(parsing: schedule),
           parsed.description != (state.schedule ?? "constant") {
            conflicts.append("--lr-schedule \(schedule) (the run's: \(state.schedule ?? "constant"))")
        }
        if warmupEpochs != 0 && warmupEpochs != (state.warmupEpochs ?? 0) { conflicts.append("--warmup-epochs \(warmupEpochs)") }
        check("--augment", augment, state.augmentation ?? "none")
        check("--label-smoothing", labelSmoothing, state.labelSmoothing ?? 0)
        check("--clip-norm", clipNorm, state.gradientClipNorm ?? 0, state.gradientClipNorm.map { "\($0)" } ?? "none")
        check("--ema", ema, state.averageDecay ?? 0, state.averageDecay.map { "\($0)" } ?? "none")
        if !freeze.isEmpty && freeze != (state.frozen ?? []) { conflicts.append("--freeze \(freeze.joined(separator: " "))") }
        if trainOnly != nil { conflicts.append("--train-only (give it to a new run)") }
        if recipe != nil { conflicts.append("--recipe (the run keeps the settings it started with)") }
        if classWeight != nil && state.classWeights == nil { conflicts.append("--class-weight (the run had none)") }
        if earlyStoppingPatience != nil && state.earlyStoppingSettings == nil { conflicts.append("--early-stopping-patience (the run had none)") }
        return conflicts
    }

    /// Loads every matching tensor of `file` (or of `pretrained:NAME`'s published weights, fetched if need be) into
    /// `network` and says what was loaded, skipped and left initialised.
    func initialize(_ network: Model, from file: String) throws {
        var path = file
        if file.hasPrefix("pretrained:") {
            let name = String(file.dropFirst("pretrained:".count))
            let published: PretrainedWeights
            do { published = try PretrainedWeights.named(name.isEmpty ? network.name : name) } catch { throw ValidationError("--init \(file): \(error)") }
            path = try fetchPretrained(published)
            // Google's weights take pixels scaled to [-1, 1]; the checkpoints of this run keep that.
            network.inputFormat = published.inputFormat
        }
        let tensors: [NamedTensor]
        do { tensors = try WeightFile.read(path: path, for: network).tensors } catch {
            throw ValidationError("--init \(file): \(error)")
        }
        let report: TransferReport
        do { report = try network.loadMatching(tensors) } catch { throw ValidationError("--init \(file): \(error)") }
        guard !json else { return }
        func list(_ names: [String]) -> String { names.count <= 6 ? names.joined(separator: ", ") : names.prefix(5).joined(separator: ", ") + " and \(names.count - 5) more" }
        print("Initialised from \(file): loaded \(report.loaded.count) tensors")
        if !report.skipped.isEmpty {
            print("  skipped \(report.skipped.count): " + list(report.skipped.map { "\($0.name) (\($0.reason))" }))
        }
        if !report.initialized.isEmpty { print("  freshly initialised \(report.initialized.count): " + list(report.initialized)) }
    }

    /// The layer paths to freeze: --freeze's, or with --train-only every top-level layer but that one.
    func frozenPrefixes(of network: Model) throws -> [String] {
        guard let trainOnly else { return freeze }
        let roots = network.network.children.map(\.name)
        guard roots.contains(trainOnly) else {
            throw ValidationError("--train-only \(trainOnly): \(network.name)'s top-level layers are \(roots.joined(separator: ", "))")
        }
        return roots.filter { root in root != trainOnly && network.parameters.contains { $0.name.hasPrefix(root + ".") } }
    }

    /// The optimizer of the options given, filled in from the recipe, then from the defaults.
    func makeChosenOptimizer(recipe: Recipe?) throws -> any ClassicCNN.Optimizer {
        let name = optimizer?.rawValue ?? recipe?.optimizer ?? "adam"
        let fromRecipe = recipe?.optimizer == name ? recipe : nil
        var settings: [String: Double] = [:]
        settings["learning_rate"] = lr.map(Double.init) ?? recipe?.learningRate
        settings["momentum"] = momentum.map(Double.init) ?? fromRecipe?.momentum ?? (name == "sgd" ? 0.9 : nil)
        settings["weight_decay"] = weightDecay.map(Double.init) ?? recipe?.weightDecay ?? (name == "adamw" ? 0.01 : 0)
        settings["nesterov"] = nesterov ? 1 : 0
        settings["epsilon"] = epsilon.map(Double.init) ?? fromRecipe?.rmsprop?.epsilon
        settings["rho"] = rho.map(Double.init) ?? fromRecipe?.rmsprop?.rho
        if let convention = rmspropConvention ?? fromRecipe?.rmsprop?.convention.rawValue {
            settings["tensorflow_convention"] = convention == "tensorflow" ? 1 : 0
        }
        settings["decay_excludes_vectors"] = decayVectors ? 0 : 1
        do { return try ClassicCNN.makeOptimizer(named: name, settings: settings) } catch {
            throw CommandError(description: "--optimizer \(name): \(error)")
        }
    }

    func run() throws {
        // Under mpirun: join the job; an error on any rank stops every rank with its message (MPI_Abort), while a
        // stop that every rank agreed on (Ctrl-C, after the same step) ends the job normally.
        let communicator = try distributed.joinIfLaunched()
        do {
            try train(communicator: communicator)
        } catch let exit as ExitCode {
            communicator?.finish()
            throw exit
        } catch {
            if let communicator, communicator.size > 1 { communicator.fail("\(error)") }
            throw error
        }
        communicator?.finish()
    }

    func train(communicator: MPICommunicator?) throws {
        let isLeader = (communicator?.rank ?? 0) == 0
        runtime.apply()
        // Past the file-size limit (ulimit -f), a write should fail with EFBIG and be reported, not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        let model = self.network.model
        let descriptor = try self.network.descriptor
        var datasetName = dataset ?? descriptor.defaultDataset
        // An image folder says how many classes there are: taken from it unless --classes is given, which must agree.
        var classes = self.network.classes
        if !resume, Datasets.isImageFolder(datasetName), let names = try? ImageFolder.classNames(of: datasetName), !names.isEmpty {
            if let given = classes, given != names.count {
                throw ValidationError("--classes \(given): \(datasetName) has \(names.count) class folders (\(names.prefix(8).joined(separator: ", "))"
                    + "\(names.count > 8 ? ", ..." : "")); leave --classes out to take the folder's")
            }
            classes = names.count
        }
        var network = try descriptor.make(inputSize: self.network.inputSize, classes: classes)
        network.initialize(seed: seed)
        let recipe = try self.recipe.map(Recipes.named)
        recipe?.apply(to: network)
        var options = TrainingOptions()
        options.epochs = epochs ?? recipe?.epochs ?? 5
        options.batchSize = batchSize ?? recipe?.batchSize ?? 32
        options.stepsPerEpoch = stepsPerEpoch
        options.validationSteps = validationSteps
        options.seed = seed
        options.checkpointDirectory = checkpointDir
        options.labelSmoothing = labelSmoothing ?? recipe?.labelSmoothing
        options.gradientClipNorm = clipNorm ?? recipe?.gradientClipNorm
        options.averageDecay = ema ?? recipe?.averageDecay
        options.earlyStopping = earlyStoppingPatience.map {
            EarlyStopping(monitor: earlyStoppingMonitor, patience: $0, minDelta: earlyStoppingMinDelta, restoreBestWeights: restoreBestWeights)
        }
        var chosen = try makeChosenOptimizer(recipe: recipe)
        // Under mpirun only rank 0 reads the weights: the trainer sends them to the other ranks.
        if let file = `init`, isLeader { try initialize(network, from: file) }
        options.frozen = try frozenPrefixes(of: network)
        do { try network.freeze(options.frozen) } catch { throw ValidationError("\(error)") }
        let schedule: LearningRateSchedule
        do { schedule = try LearningRateSchedule(parsing: lrSchedule ?? recipe?.schedule.description ?? "constant") } catch {
            throw CommandError(description: "--lr-schedule: \(error)")
        }
        options.learningRate = ScheduledLearningRate(schedule: schedule, baseRate: Double(chosen.learningRate), warmupEpochs: warmupEpochs)
        if !resume && !overwrite && isLeader {
            try refuseAnotherRunsCheckpoints()
        }
        var resumed: TrainingState?
        var resumedTensors: [NamedTensor] = []
        var augmentation = augment ?? recipe?.augmentation ?? "none"
        if resume {
            let path = "\(checkpointDir)/last.safetensors"
            guard !isLeader || FileManager.default.fileExists(atPath: path) else {
                throw CommandError(description: "--resume: \(path) does not exist (train without --resume first)")
            }
            // Under mpirun rank 0 reads the checkpoint and sends it to the others (only rank 0 needs the folder).
            let readable = try communicator.map { try $0.shareFile(path) } ?? path
            let run = try SavedRun(path: readable)
            if readable != path { try? FileManager.default.removeItem(atPath: readable) }
            let (saved, info, state) = (run.model, run.info, run.state)
            guard saved.name == model else { throw CommandError(description: "\(path) holds a \(saved.name), not a \(model)") }
            let conflicts = resumeConflicts(state: state, info: info, saved: saved)
            guard conflicts.isEmpty else {
                throw ValidationError("--resume continues the run in \(path) as it was; these options differ from it: "
                    + conflicts.joined(separator: "; ") + ". Leave them out, or train anew in another --checkpoint-dir")
            }
            network = saved
            chosen = run.optimizer
            let epochs = options.epochs
            options = run.options
            (options.epochs, options.checkpointDirectory, options.validationSteps) = (epochs, checkpointDir, validationSteps)
            resumedTensors = info.extraTensors
            datasetName = info.dataset
            resumed = state
            augmentation = state.augmentation ?? "none"
            if let lr, var rate = options.learningRate, Float(rate.baseRate) != lr {
                if !json { print("The learning rate's base goes from \(Float(rate.baseRate)) to \(lr) (--lr); the schedule goes on from where it was") }
                rate.baseRate = Double(lr)
                options.learningRate = rate
            }
            if !json {
                let position = state.nextBatch > 0 ? "epoch \(state.epoch), step \(state.nextBatch + 1)" : "epoch \(state.epoch + 1)"
                print("Resuming \(path) at \(position) (batch size \(state.batchSize), seed \(state.seed), \(info.optimizer ?? ""))")
            }
        }
        let (trainingSet, validationSet) = try loadTrainingData(datasetName, channels: network.configuration.inputChannels,
                                                                seed: options.seed, folder: folder, dataDirectory: data.dataDir)
        do { options.augmentation = try Augmentation.named(augmentation, for: trainingSet) } catch let error as TransformError {
            throw CommandError(description: "\(error)")
        }
        if let classWeight, resumed == nil {
            options.classWeights = classWeight == "balanced"
                ? SoftmaxCrossEntropy.balancedWeights(labels: trainingSet.labels, classes: network.configuration.classes)
                : classWeight.split(separator: ",").map { Float($0)! }
            guard options.classWeights!.count == network.configuration.classes else {
                throw ValidationError("--class-weight gives \(options.classWeights!.count) weights for \(network.configuration.classes) classes")
            }
            if !json { print("Class weights: " + options.classWeights!.map { String(format: "%.3g", $0) }.joined(separator: ", ")) }
        }
        if !resume {
            options.synchronizesBatchNorm = distributed.syncBatchNorm
        } else if distributed.syncBatchNorm && !options.synchronizesBatchNorm {
            throw ValidationError("--resume continues the run as it was, which was trained without --sync-batch-norm")
        }
        let trainer = Trainer(model: network, optimizer: chosen, trainingSet: trainingSet, validationSet: validationSet, options: options)
        trainer.resumedTensors = resumedTensors
        if let communicator, communicator.size > 1 {
            trainer.communicator = communicator
            trainer.bucketBytes = Int(distributed.bucketSizeMb * 1_048_576)
            trainer.overlapsCommunication = !distributed.noOverlap
        }
        let progress = ProgressBar(json: json)
        let log = try (isLeader ? logDir : nil).map { directory in
            try TrainingLog(directory: directory, batchSize: options.batchSize) { [optimizer = trainer.optimizer] in Double(optimizer.learningRate) }
        }
        log?.onFailure = { printError("\nWarning: logging stopped: \($0). Training goes on and checkpoints are still saved.") }
        let observers = TrainingObservers([progress] + (log.map { [$0] } ?? []))
        trainer.observer = observers
        if !json {
            let validated = min(validationSet?.count ?? 0, options.validationSteps.map { $0 * options.batchSize } ?? .max)
            let frozenText = options.frozen.isEmpty ? "" : ", \(network.trainableParameterCount.grouped) of them trained"
            var where_ = "\(Parallel.threads) threads"
            if let communicator, communicator.size > 1 {
                let (smallest, largest) = (options.batchSize / communicator.size, (options.batchSize + communicator.size - 1) / communicator.size)
                where_ = "\(communicator.size) ranks x \(Parallel.threads) threads, each step's \(options.batchSize) images split "
                    + (smallest == largest ? "\(smallest) per rank" : "\(smallest)-\(largest) per rank")
            }
            print("Training \(model) (\(network.parameterCount.grouped) parameters\(frozenText)) on \(datasetName): \(trainingSet.count.grouped) images, "
                  + "validating on \(validated.grouped); \(where_)")
            if !network.auxiliaries.isEmpty {
                print("The training loss includes the auxiliary heads' losses, weighted by "
                      + network.auxiliaries.map { String(format: "%g", $0.weight) }.joined(separator: ", ") + "; val_loss is the main head's alone")
            }
        }
        let interruption = Interruption(quiet: !isLeader)
        trainer.onStart = { [json] trainer in
            guard !json, let allreduce = trainer.allreduce else { return }
            print("Gradient allreduce: \(String(format: "%.2f", Double(allreduce.bytesPerStep) / 1_048_576)) MB per step in \(allreduce.buckets) "
                  + "bucket(s) of up to \(String(format: "%g", distributed.bucketSizeMb)) MB; alone it takes \(String(format: "%.1f", allreduce.secondsAlone * 1000)) ms")
        }
        trainer.shouldStop = { interruption.requested }
        do {
            try withExtendedLifetime(observers) { _ = try trainer.fit(resumingFrom: resumed) }
        } catch let stopped as TrainingInterrupted {
            try? log?.close()
            if isLeader {
                print("")
                printError("Stopped: \(stopped). Continue with the same command and --resume.")
            }
            throw ExitCode(interruption.exitStatus)
        }
        do { try log?.close() } catch {
            throw CommandError(description: "training finished and its checkpoints are saved, but the log is incomplete: \(error)")
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (`docker stop`, Slurm, systemd) while training: the first asks the run to stop after
/// the current step (and save `last.safetensors`); a second exits at once, touching no checkpoint. Handled on a
/// dispatch queue, not inside the signal handler.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    /// The first signal received: the exit status is 128 + it (130 for SIGINT, 143 for SIGTERM).
    private var first: Int32?
    private var sources: [DispatchSourceSignal] = []

    /// `quiet`: say nothing on the first signal (the ranks of an MPI job other than rank 0, which speaks for them).
    init(quiet: Bool = false) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [unowned self] in
                self.lock.lock()
                self.count += 1
                if self.first == nil { self.first = number }
                let second = self.count >= 2
                self.lock.unlock()
                if second { _exit(128 + number) }
                if quiet { return }
                let name = number == SIGINT ? "Ctrl-C" : "SIGTERM"
                FileHandle.standardError.write(Data("\nStopping after this step (\(name); Ctrl-C again to quit at once)...\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return count > 0
    }

    /// 128 + the signal that stopped the run.
    var exitStatus: Int32 {
        lock.lock()
        defer { lock.unlock() }
        return 128 + (first ?? SIGINT)
    }
}

/// A Keras-style progress line per epoch: steps done, time per step, running loss and accuracy; then the
/// validation figures, epoch time and images per second.
final class ProgressBar: TrainingObserver {
    let json: Bool
    let interactive = isatty(STDOUT_FILENO) != 0
    private var lastDraw = Date.distantPast
    private var line = ""
    /// The steps done before this process's first step of the epoch (a resumed epoch starts in the middle).
    private var stepsBefore: Int?

    init(json: Bool) { self.json = json }

    /// The terminal's width, read once an epoch (a line drawn over itself must not wrap); nil when the output is not
    /// a terminal.
    private var columns: Int?

    private func terminalColumns() -> Int? {
        guard interactive else { return nil }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 { return Int(size.ws_col) }
        return Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 80
    }

    func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {
        stepsBefore = nil
        columns = terminalColumns()
        if !json {
            print("Epoch \(epoch)/\(epochs)")
            fflush(stdout)
        }
    }

    func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {
        guard !json else { return }
        if stepsBefore == nil { stepsBefore = step - 1 }
        line = ProgressLine.render(step: step, of: steps, stepsBefore: stepsBefore ?? 0, elapsed: elapsed, loss: loss, accuracy: accuracy,
                                 columns: columns)
        if interactive && (Date().timeIntervalSince(lastDraw) > 0.1 || step == steps) {
            print("\r" + line, terminator: "")
            fflush(stdout)
            lastDraw = Date()
        }
    }

    func validationStepFinished(step: Int, of steps: Int) {
        guard !json, interactive, Date().timeIntervalSince(lastDraw) > 0.1 || step == steps else { return }
        var text = line + " - validating \(step)/\(steps)"
        if let columns, text.count > columns - 1 { text = "validating \(step)/\(steps)".leftPad(min(line.count, columns - 1)) }
        print("\r" + text, terminator: "")
        fflush(stdout)
        lastDraw = Date()
    }

    func epochFinished(_ result: EpochResult) {
        defer { fflush(stdout) }
        if json {
            try? printJSON(result)
            return
        }
        var details: [String] = []
        if let loss = result.validationLoss, let accuracy = result.validationAccuracy {
            details += ["val_loss: \(String(format: "%.4f", loss))", "val_accuracy: \(String(format: "%.4f", accuracy))"]
        }
        if let rate = result.learningRate { details.append("lr: \(String(format: "%.3g", rate))") }
        details += ["\(String(format: "%.1f", result.seconds))s", "\(Int(result.imagesPerSecond).grouped) img/s"]
        if let waited = result.allreduceWaitSeconds {
            details.append("allreduce wait \(String(format: "%.2f", waited))s (\(String(format: "%.1f", 100 * waited / max(result.seconds, 1e-9)))%)")
        }
        if let peak = result.peakResidentBytes { details.append("peak memory \(peak >> 20) MB") }
        // On a terminal the line is redrawn over the progress line; what does not fit goes on lines of its own.
        let clear = interactive ? "\r" + String(repeating: " ", count: min(line.count + 24, (columns ?? 80) - 1)) + "\r" : ""
        guard let columns else { return print(([line] + details).joined(separator: " - ")) }
        var lines: [String] = [], current = line
        for detail in details {
            if (current + " - " + detail).count <= columns - 1 {
                current += " - " + detail
            } else {
                lines.append(current)
                current = "  " + detail
            }
        }
        print(clear + (lines + [current]).joined(separator: "\n"))
    }

    func checkpointSaved(path: String, isBest: Bool) {
        if !json && isBest { print("  saved \(path)") }
    }

    func stoppedEarly(epoch: Int, monitor: String, best: Double?, bestEpoch: Int?) {
        guard !json else { return }
        let bestText = best.map { " (best \(String(format: "%.4f", $0)) after epoch \(bestEpoch ?? 0))" } ?? ""
        print("Stopped early after epoch \(epoch): \(monitor) stopped improving\(bestText)")
    }
}
