// Checkpoints: safetensors files holding the parameters (by path name, as torchvision names them where the
// architecture is torchvision's), the optimizer state ("optimizer.<parameter>.<slot>"), and in the metadata the
// model name, its configuration, the epoch, the dataset, the optimizer settings and the metrics. Written to a
// temporary file and renamed, so a crash never leaves a half-written checkpoint in place.
import Foundation

public struct CheckpointInfo: Sendable {
    public var model: String
    public var configuration: ModelConfiguration
    public var epoch: Int
    public var dataset: String
    public var metrics: [String: Double]
    public var optimizer: String?
    public var optimizerSettings: [String: Double]
    public var seed: UInt64
    /// Where the run was, for `--resume` (nil in checkpoints written outside a training run).
    public var trainingState: TrainingState?
    /// Tensors beside the weights and the optimizer state: the moving average of the weights (`ema.<parameter>`) and
    /// early stopping's best weights (`best.<parameter>`).
    public var extraTensors: [NamedTensor] = []
    /// The training set's class names, in label order (an image folder's sub-folders), so that `predict`,
    /// `evaluate` and `visualize` name classes as the run did; empty when the dataset had none.
    public var classNames: [String] = []

    public init(model: String, configuration: ModelConfiguration, epoch: Int, dataset: String,
                metrics: [String: Double] = [:], optimizer: String? = nil, optimizerSettings: [String: Double] = [:], seed: UInt64 = 0) {
        self.model = model
        self.configuration = configuration
        self.epoch = epoch
        self.dataset = dataset
        self.metrics = metrics
        self.optimizer = optimizer
        self.optimizerSettings = optimizerSettings
        self.seed = seed
    }
}

public enum Checkpoint {
    public static let format = "classiccnn-checkpoint"
    static let optimizerPrefix = "optimizer."
    /// The moving average of the weights (``WeightAverage``).
    public static let averagePrefix = "ema."
    /// Early stopping's best weights, kept for `restoreBestWeights`.
    public static let bestWeightsPrefix = "best."
    /// Int8 quantisation (``Model/quantize(calibration:)``): `int8.<convolution>.input` and `.weight_scale`.
    public static let int8Prefix = "int8."
    /// Prefixes of tensors that are not the model's parameters.
    static let extraPrefixes = [averagePrefix, bestWeightsPrefix, int8Prefix]

    public static func save(model: Model, optimizer: (any Optimizer)?, info: CheckpointInfo, to path: String) throws {
        var tensors = model.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) }
        if let optimizer {
            tensors += optimizer.state.map { NamedTensor(name: optimizerPrefix + $0.name, shape: $0.tensor.shape, values: $0.tensor.values) }
        }
        tensors += info.extraTensors
        var metadata: [String: String] = [
            "format": format,
            "model": info.model,
            "configuration": json(info.configuration),
            "epoch": String(info.epoch),
            "dataset": info.dataset,
            "metrics": json(info.metrics),
            "seed": String(info.seed),
            "input_format": json(model.inputFormat),
        ]
        if let state = info.trainingState { metadata["training_state"] = json(state) }
        if !info.classNames.isEmpty { metadata["class_names"] = json(info.classNames) }
        if let optimizer {
            metadata["optimizer"] = optimizer.name
            metadata["optimizer_settings"] = json(optimizer.settings)
        }
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    /// Why files cannot be created in `directory` (read-only file system, permissions, not a folder), or nil if a
    /// probe file can be created, written and removed there.
    public static func writeProblem(in directory: String) -> String? {
        let probe = "\(directory)/.write-probe-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        var byte: UInt8 = 0
        let written = write(fd, &byte, 1)
        let problem = written == 1 ? nil : String(cString: strerror(errno))
        close(fd)
        unlink(probe)
        return problem
    }

    /// Removes the temporary files that a killed run left behind (`last.safetensors.tmp-<pid>` whose process is gone).
    /// A run that is still writing keeps its own.
    public static func removeAbandonedTemporaryFiles(in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names {
            guard let range = name.range(of: ".safetensors.tmp-"), let pid = Int32(name[range.upperBound...]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink("\(directory)/\(name)") }
        }
    }

    /// Reads a checkpoint, rebuilds its model and loads the weights. The optimizer state is returned by name (without
    /// the "optimizer." prefix) for `Optimizer.restore`.
    ///
    /// `build` makes the network the metadata names (`ModelZoo`'s registry, through `Checkpoint.load(path:)`, which
    /// `ClassicCNNZoo` adds); it may throw to say the name is unknown. A checkpoint that names no dataset has "" as
    /// its dataset (the zoo's loader puts the network's default there).
    public static func load(
        path: String, build: (_ name: String, _ configuration: ModelConfiguration) throws -> Model
    ) throws -> (model: Model, info: CheckpointInfo, optimizerState: [String: Tensor]) {
        let file = try SafeTensors.read(path: path)
        var info = try self.info(metadata: file.metadata, path: path)
        let model: Model
        do { model = try build(info.model, info.configuration) } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(path: path, reason: "cannot rebuild \(info.model): \(error)")
        }
        let isExtra = { (tensor: NamedTensor) in extraPrefixes.contains { tensor.name.hasPrefix($0) } }
        do { try model.loadParameters(file.tensors.filter { !$0.name.hasPrefix(optimizerPrefix) && !isExtra($0) }) } catch {
            throw CheckpointError(path: path, reason: "\(error)")
        }
        var optimizerState: [String: Tensor] = [:]
        for tensor in file.tensors where tensor.name.hasPrefix(optimizerPrefix) {
            optimizerState[String(tensor.name.dropFirst(optimizerPrefix.count))] = Tensor(shape: tensor.shape, values: tensor.values)
        }
        info.extraTensors = file.tensors.filter(isExtra)
        do { try model.loadQuantization(info.extraTensors) } catch {
            throw CheckpointError(path: path, reason: "\(error)")
        }
        // Weights trained from Google's take pixels scaled to [-1, 1], not the network's own normalisation.
        if let text = file.metadata["input_format"] {
            guard let format = decode(InputFormat.self, text), format.scale.count == model.inputFormat.scale.count,
                  format.offset.count == model.inputFormat.offset.count, (format.scale + format.offset).allSatisfy(\.isFinite) else {
                throw CheckpointError(path: path, reason: "the metadata's input format is malformed or does not fit \(info.model)")
            }
            model.inputFormat = format
        }
        return (model, info, optimizerState)
    }

    /// A checkpoint's description (model, configuration, epoch, dataset, metrics, optimizer, training state, class
    /// names) from its header alone, without reading a tensor or building the network. Its `extraTensors` are empty.
    ///
    /// - Throws: `CheckpointError` naming `path` for a file that is not a ClassicCNN checkpoint or whose metadata is
    ///   malformed.
    public static func readInfo(path: String) throws -> CheckpointInfo {
        try info(metadata: SafeTensors.readMetadata(path: path), path: path)
    }

    private static func info(metadata: [String: String], path: String) throws -> CheckpointInfo {
        guard metadata["format"] == format, let name = metadata["model"] else {
            throw CheckpointError(path: path, reason: "not a ClassicCNN checkpoint (its metadata has no \"format\": \"\(format)\" and model name)")
        }
        guard let configuration = decode(ModelConfiguration.self, metadata["configuration"]) else {
            throw CheckpointError(path: path, reason: "the metadata's model configuration is missing or malformed")
        }
        var info = CheckpointInfo(
            model: name, configuration: configuration, epoch: Int(metadata["epoch"] ?? "") ?? 0,
            dataset: metadata["dataset"] ?? "",
            metrics: decode([String: Double].self, metadata["metrics"]) ?? [:],
            optimizer: metadata["optimizer"],
            optimizerSettings: decode([String: Double].self, metadata["optimizer_settings"]) ?? [:],
            seed: UInt64(metadata["seed"] ?? "") ?? 0)
        info.classNames = decode([String].self, metadata["class_names"]) ?? []
        if let text = metadata["training_state"] {
            guard let state = decode(TrainingState.self, text), state.epoch >= 0, state.nextBatch >= 0, state.batchSize > 0 else {
                throw CheckpointError(path: path, reason: "the metadata's training state is malformed")
            }
            info.trainingState = state
        }
        return info
    }

    private static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
