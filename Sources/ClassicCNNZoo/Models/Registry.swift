// The model registry: every network the command-line tool and the tests know, by name.
import ClassicCNNEngine

/// A registered network: how to build it and its defaults.
public struct ModelDescriptor: Sendable {
    public let name: String
    public let title: String
    /// The paper (or reference implementation) the network follows.
    public let reference: String
    public let defaultInputSize: Int
    public let defaultClasses: Int
    public let inputChannels: Int
    public let defaultDataset: String
    let build: @Sendable (ModelConfiguration) throws -> Model

    public init(name: String, title: String, reference: String, defaultInputSize: Int, defaultClasses: Int,
                inputChannels: Int, defaultDataset: String, build: @escaping @Sendable (ModelConfiguration) throws -> Model) {
        self.name = name
        self.title = title
        self.reference = reference
        self.defaultInputSize = defaultInputSize
        self.defaultClasses = defaultClasses
        self.inputChannels = inputChannels
        self.defaultDataset = defaultDataset
        self.build = build
    }

    /// The largest input side and class count a network is built with: beyond them memory, not the network, is the limit.
    public static let maximumInputSize = 4096
    public static let maximumClasses = 100_000

    /// Builds the network (weights not yet initialised: call `Model.initialize(seed:)`). A configuration out of range
    /// (or one the network cannot take) is a `ConfigurationError` or `ShapeError`, never a crash.
    public func make(inputSize: Int? = nil, classes: Int? = nil) throws -> Model {
        let configuration = ModelConfiguration(inputSize: inputSize ?? defaultInputSize, classes: classes ?? defaultClasses,
                                               inputChannels: inputChannels)
        guard (1...Self.maximumInputSize).contains(configuration.inputSize) else {
            throw ConfigurationError("\(name): input size \(configuration.inputSize) is outside 1...\(Self.maximumInputSize)")
        }
        guard (1...Self.maximumClasses).contains(configuration.classes) else {
            throw ConfigurationError("\(name): \(configuration.classes) classes is outside 1...\(Self.maximumClasses)")
        }
        // Smaller than the network's own input: windows that would not fit are padded to fit.
        return try EngineOptions.with({ $0.adaptsWindowsToSmallInputs = configuration.inputSize < defaultInputSize }) {
            try build(configuration)
        }
    }
}

public struct UnknownModelError: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        let names = ModelZoo.all.map(\.name)
        let suggestion = closestName(to: name, among: names).map { "; did you mean \($0)?" } ?? ""
        return "unknown model '\(name)'\(suggestion) Available: \(names.joined(separator: ", "))"
    }
}

public enum ModelZoo {
    /// Every registered network, in the order `cnn models` lists them.
    public static let all: [ModelDescriptor] = [LeNet5.keras, LeNet5.paper, AlexNet.paper, AlexNet.kerasCIFAR, AlexNet.torchvision]
        + VGG.descriptors + [GoogLeNet.paper, GoogLeNet.torchvision, InceptionV3.torchvision, InceptionV2.paper]
        + [InceptionV4.timm, InceptionResNetV2.timm, InceptionResNetV1.paper]

    public static func descriptor(named name: String) throws -> ModelDescriptor {
        guard let descriptor = all.first(where: { $0.name == name }) else { throw UnknownModelError(name: name) }
        return descriptor
    }

    /// Builds and initialises a registered network.
    public static func make(_ name: String, inputSize: Int? = nil, classes: Int? = nil, seed: UInt64 = 0) throws -> Model {
        let model = try descriptor(named: name).make(inputSize: inputSize, classes: classes)
        model.initialize(seed: seed)
        return model
    }
}


/// The package's version, as `cnn --version` prints it.
public enum ClassicCNNVersion {
    public static let current = "0.5.0-dev"
}


extension Checkpoint {
    /// Reads a checkpoint, rebuilds its model from the registry and loads the weights. The optimizer state is
    /// returned by name (without the "optimizer." prefix) for `Optimizer.restore`.
    public static func load(path: String) throws -> (model: Model, info: CheckpointInfo, optimizerState: [String: Tensor]) {
        var defaultDataset = ""
        var loaded = try load(path: path) { name, configuration in
            let descriptor: ModelDescriptor
            do { descriptor = try ModelZoo.descriptor(named: name) } catch {
                throw CheckpointError(path: path, reason: "\(error)")
            }
            defaultDataset = descriptor.defaultDataset
            return try descriptor.make(inputSize: configuration.inputSize, classes: configuration.classes)
        }
        if loaded.info.dataset.isEmpty { loaded.info.dataset = defaultDataset }
        return loaded
    }
}

extension SavedRun {
    /// Reads the run saved in a checkpoint (`last.safetensors`), rebuilding its network from the registry.
    public init(path: String) throws {
        try self.init(path: path, loaded: Checkpoint.load(path: path))
    }
}
