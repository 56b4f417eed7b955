// A Model: a network, the loss it is trained with, and how its input is made from dataset pixels.
import Foundation

/// The size of a model as built: input size (square), classes and input channels.
public struct ModelConfiguration: Codable, Equatable, Sendable {
    public var inputSize: Int
    public var classes: Int
    public var inputChannels: Int
    public init(inputSize: Int, classes: Int, inputChannels: Int) {
        self.inputSize = inputSize
        self.classes = classes
        self.inputChannels = inputChannels
    }
}

/// How dataset pixels (bytes 0-255) become input values: value = pixel / 255 * scale + offset per channel, and how an
/// image of another size fits the input.
public struct InputFormat: Codable, Equatable, Sendable {
    public enum Fitting: String, Codable, Sendable {
        /// Centred, padded with the background (pixel 0) or centre-cropped: LeNet-5 pads MNIST's 28x28 to 32x32.
        case pad
        /// Resized bilinearly (half-pixel centres, as PyTorch's align_corners=False and TensorFlow 2's resize).
        case resize
    }
    public var scale: [Float]
    public var offset: [Float]
    public var fitting: Fitting
    public init(scale: [Float], offset: [Float], fitting: Fitting = .resize) {
        self.scale = scale
        self.offset = offset
        self.fitting = fitting
    }
    /// Pixels mapped to [0, 1].
    public static func unit(channels: Int, fitting: Fitting = .resize) -> InputFormat {
        InputFormat(scale: Array(repeating: 1, count: channels), offset: Array(repeating: 0, count: channels), fitting: fitting)
    }

    /// Per-channel mean and standard deviation normalisation of [0, 1] pixels: (p / 255 - mean) / std.
    public static func normalized(mean: [Float], standardDeviation: [Float]) -> InputFormat {
        InputFormat(scale: standardDeviation.map { 1 / $0 }, offset: zip(mean, standardDeviation).map { -$0 / $1 })
    }

    /// torchvision's ImageNet normalisation.
    public static let imageNet = normalized(mean: [0.485, 0.456, 0.406], standardDeviation: [0.229, 0.224, 0.225])
}

public final class Model {
    public let name: String
    public let configuration: ModelConfiguration
    public let network: any Layer
    public let loss: any ClassificationLoss
    /// How images become the network's input. Weights trained with another normalisation bring their own (torchvision's
    /// GoogLeNet and Inception v3 weights, Google's, take pixels scaled to [-1, 1]).
    public var inputFormat: InputFormat
    /// Every parameter, named by path (`C1.weight`, `features.0.weight`).
    public let parameters: [(name: String, parameter: Parameter)]
    /// The auxiliary classifiers on the main path (GoogLeNet's two), trained with their weighted losses.
    public let auxiliaries: [AuxiliaryClassifier]

    public init(name: String, configuration: ModelConfiguration, network: any Layer, loss: any ClassificationLoss,
                inputFormat: InputFormat) {
        self.name = name
        self.configuration = configuration
        self.network = network
        self.loss = loss
        self.inputFormat = inputFormat
        self.parameters = network.namedParameters
        self.auxiliaries = network.allLayers.compactMap { $0 as? AuxiliaryClassifier }
        // Nobody needs the gradient of the image itself.
        switch network.allLayers.first(where: { $0.children.isEmpty }) {
        case let conv as Conv2D: conv.computesInputGradient = false
        case let linear as Linear: linear.computesInputGradient = false
        default: break
        }
    }

    /// [channels, height, width] of one input image.
    public var inputShape: [Int] { [configuration.inputChannels, configuration.inputSize, configuration.inputSize] }

    /// Trainable parameter count (fixed ones, such as LeNet-5's RBF centres, excluded), auxiliary heads included.
    public var parameterCount: Int { parameters.filter { $0.parameter.trainable }.reduce(0) { $0 + $1.parameter.count } }

    /// The parameters that training updates now: `parameterCount` less the frozen ones.
    public var trainableParameterCount: Int { parameters.filter { $0.parameter.isTrainable }.reduce(0) { $0 + $1.parameter.count } }

    /// Trainable parameters used at inference: without the auxiliary heads.
    public var inferenceParameterCount: Int {
        parameterCount - auxiliaries.flatMap { $0.namedParameters }.filter { $0.parameter.trainable }.reduce(0) { $0 + $1.parameter.count }
    }

    /// Draws every parameter from one generator seeded with `seed`, layer by layer in order, and seeds dropout.
    public func initialize(seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        for layer in network.allLayers {
            (layer as? Initializable)?.resetParameters(using: &rng)
            if let dropout = layer as? Dropout { dropout.rng = rng.split() }
        }
    }

    /// The generator state of every dropout layer, by layer path: saved in checkpoints for an exact resume.
    public var randomStates: [String: [UInt64]] {
        var states: [String: [UInt64]] = [:]
        for (path, layer) in network.namedLayers { if let dropout = layer as? Dropout { states[path] = dropout.rng.stateWords } }
        return states
    }

    /// Restores states saved by `randomStates`.
    public func restoreRandomStates(_ states: [String: [UInt64]]) throws {
        for (path, layer) in network.namedLayers {
            guard let dropout = layer as? Dropout else { continue }
            guard let words = states[path], words.count == 4 else {
                throw ConfigurationError("the checkpoint has no generator state for dropout layer '\(path)'")
            }
            dropout.rng = RandomGenerator(state: words)
        }
    }

    /// The network's raw output for a batch [N, C, H, W] (logits, or RBF penalties for LeNet-5 1998).
    public func forward(_ batch: Tensor, training: Bool = false) -> Tensor {
        network.forward(batch, training: training)
    }

    /// One training step: forward, loss, backward, optimizer update. Returns the summed loss and the number of
    /// correct predictions in the batch.
    /// Clip the gradients of every trainable parameter together so that their global L2 norm is at most this
    /// (`torch.nn.utils.clip_grad_norm_`, TensorFlow's `clip_by_global_norm`; Inception v3 clipped at 2.0); nil: no clipping.
    public var gradientClipNorm: Float?
    /// The global L2 norm of the last training step's gradients, before clipping (computed when clipping is on).
    public private(set) var lastGradientNorm: Double?

    /// Label smoothing of the main loss and of every auxiliary head's (Szegedy et al. 2016, section 7: 0.1 in Inception
    /// v3). Throws for a loss that is not a softmax cross-entropy (LeNet-5 1998's RBF loss has no smoothing).
    public func setLabelSmoothing(_ epsilon: Float) throws {
        guard epsilon.isFinite, (0..<1).contains(epsilon) else {
            throw ConfigurationError("label smoothing must be in [0, 1), not \(epsilon)")
        }
        let losses = [loss] + auxiliaries.map(\.loss)
        guard losses.allSatisfy({ $0 is SoftmaxCrossEntropy }) else {
            throw ConfigurationError("\(name) is trained with \(loss.name), which has no label smoothing")
        }
        for case let crossEntropy as SoftmaxCrossEntropy in losses { crossEntropy.labelSmoothing = epsilon }
    }

    /// Class weights of the training loss (Keras's `class_weight`), main and auxiliary heads; one positive weight per
    /// class, or nil for none. Throws for a loss that is not a softmax cross-entropy.
    public func setClassWeights(_ weights: [Float]?) throws {
        if let weights {
            guard weights.count == configuration.classes, weights.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ConfigurationError("class weights: \(name) needs \(configuration.classes) positive weights, got \(weights.count)")
            }
        }
        let losses = [loss] + auxiliaries.map(\.loss)
        guard losses.allSatisfy({ $0 is SoftmaxCrossEntropy }) else {
            throw ConfigurationError("\(name) is trained with \(loss.name), which has no class weights")
        }
        for case let crossEntropy as SoftmaxCrossEntropy in losses { crossEntropy.classWeights = weights }
    }

    /// Scales every trainable gradient by `maximum / (norm + 1e-6)` when their global norm exceeds `maximum`, as
    /// PyTorch's `clip_grad_norm_`. Returns the norm before clipping.
    @discardableResult
    package func clipGradients(to maximum: Float) -> Double {
        var sum = 0.0
        for (_, parameter) in parameters where parameter.isTrainable {
            let g = parameter.gradient.data
            var partial: Float = 0
            for i in 0..<parameter.count { partial += g[i] * g[i] }
            sum += Double(partial)
        }
        let norm = sum.squareRoot()
        let coefficient = Float(Double(maximum) / (norm + 1e-6))
        if coefficient < 1 {
            for (_, parameter) in parameters where parameter.isTrainable {
                let g = parameter.gradient.data
                for i in 0..<parameter.count { g[i] *= coefficient }
            }
        }
        return norm
    }

    @discardableResult
    public func trainStep(batch: Tensor, labels: UnsafeBufferPointer<Int32>, optimizer: any Optimizer) -> (loss: Float, correct: Int) {
        for (_, parameter) in parameters { parameter.zeroGradient() }
        let output = network.forward(batch, training: true)
        var loss = self.loss.evaluate(output: output, labels: labels, computeGradient: true)
        for auxiliary in auxiliaries { loss += auxiliary.evaluateLoss(labels: labels) }
        let correct = countCorrect(output, labels)
        gradientReducer?.beginStep(localCount: labels.count, globalCount: batchShard?.globalRows ?? labels.count)
        _ = network.backward(self.loss.gradient)
        gradientReducer?.finish()
        // A NaN or infinite gradient would poison every weight it touches: leave the weights as they are and say where.
        nonFiniteGradient = parameters.first { $0.parameter.isTrainable && !$0.parameter.gradient.isFinite }?.name
        if nonFiniteGradient == nil {
            lastGradientNorm = gradientClipNorm.map { clipGradients(to: $0) }
            optimizer.step(parameters)
            // An optimizer of the user's own may write through a pointer without saying so.
            for (_, parameter) in parameters where parameter.isTrainable { parameter.markChanged() }
        }
        return (loss, correct)
    }

    /// In data-parallel training: averages the gradients over the ranks between backward and the optimizer's step.
    package var gradientReducer: GradientReducer?
    /// In data-parallel training, where this rank's images sit in the step's whole batch (nil: the batch is whole).
    package private(set) var batchShard: (offset: Int, globalRows: Int)?
    private lazy var dropoutLayers: [Dropout] = GradientReducer.executedLayers(of: network).compactMap { $0 as? Dropout }

    /// Tells the model that the next training batch is rows `offset ..< offset + n` of a step of `globalRows` images
    /// over all ranks: dropout draws its masks for the whole batch and keeps these rows, so that the ranks together
    /// train as one process would. Nil: the batch is the whole step.
    package func setBatchShard(_ shard: (offset: Int, globalRows: Int)?) {
        batchShard = shard
        for dropout in dropoutLayers { dropout.rowShard = shard }
    }

    /// After `trainStep`: the first parameter whose gradient held a NaN or an infinity, in which case the step left
    /// every weight unchanged; nil after a sound step.
    public private(set) var nonFiniteGradient: String?

    /// The first parameter holding a NaN or an infinity, if any.
    public var firstNonFiniteParameter: String? { parameters.first { !$0.parameter.value.isFinite }?.name }

    /// Sets every parameter from tensors named as `parameters` names them (torchvision's state-dict names for the
    /// networks built in its layout). Every parameter must be present with its shape; tensors the model does not have
    /// are an error too, except PyTorch's integer bookkeeping (`num_batches_tracked`) and a checkpoint's optimizer
    /// state (`optimizer.*`), so a checkpoint serves as a state dict.
    public func loadParameters(_ tensors: [NamedTensor]) throws {
        // New weights: an int8 quantisation calibrated for the old ones no longer applies.
        removeQuantization()
        var byName: [String: NamedTensor] = [:]
        for tensor in tensors where !Self.isBookkeeping(tensor.name) {
            byName[tensor.name] = tensor
        }
        for (name, parameter) in parameters {
            guard let stored = byName.removeValue(forKey: name) else {
                throw ConfigurationError("parameter '\(name)' of \(self.name) is missing")
            }
            guard stored.shape == parameter.shape else {
                throw ConfigurationError("parameter '\(name)' has shape \(stored.shape), \(self.name) needs \(parameter.shape)")
            }
            parameter.value = Tensor(shape: stored.shape, values: stored.values)
        }
        if let extra = byName.keys.sorted().first {
            throw ConfigurationError("'\(extra)' is not a parameter of \(self.name)\(byName.count > 1 ? " (nor \(byName.count - 1) more)" : "")")
        }
    }

    /// PyTorch's integer bookkeeping (`num_batches_tracked`) and a checkpoint's optimizer state, moving averages and
    /// best weights: tensors a file of weights may hold that are not parameters.
    package static func isBookkeeping(_ name: String) -> Bool {
        name.hasSuffix("num_batches_tracked") || name.hasPrefix(Checkpoint.optimizerPrefix)
            || Checkpoint.extraPrefixes.contains { name.hasPrefix($0) }
    }

    /// The names of the auxiliary heads' parameters (GoogLeNet's `aux1.*` and `aux2.*`, Inception v3's `AuxLogits.*`).
    public var auxiliaryParameterNames: [String] {
        let auxiliary = Set(auxiliaries.flatMap { $0.namedParameters.map { ObjectIdentifier($0.parameter) } })
        return parameters.filter { auxiliary.contains(ObjectIdentifier($0.parameter)) }.map(\.name)
    }

    /// The parameters' names and shapes, without their values: what a file of weights must hold to fit.
    public var parameterLayout: ParameterLayout {
        ParameterLayout(model: name, parameters: parameters.map { ($0.name, $0.parameter.shape) }, auxiliary: Set(auxiliaryParameterNames))
    }

    /// The first top-level layer whose output has a non-finite value for this batch (a diagnosis after divergence:
    /// runs the batch through the layers one at a time, in training mode).
    public func firstNonFiniteLayer(for batch: Tensor) -> String? {
        if !batch.isFinite { return "the input batch" }
        if let name = firstNonFiniteParameter { return "parameter \(name)" }
        var x = batch
        for (name, layer) in network.children {
            x = layer.forward(x, training: true)
            if !x.isFinite { return name }
        }
        return nil
    }

    /// Summed loss and correct predictions for a batch, without training.
    public func evaluate(batch: Tensor, labels: UnsafeBufferPointer<Int32>) -> (loss: Float, correct: Int, output: Tensor) {
        let output = network.forward(batch, training: false)
        let loss = self.loss.evaluate(output: output, labels: labels, computeGradient: false)
        return (loss, countCorrect(output, labels), output)
    }

    @discardableResult
    public func trainStep(batch: Tensor, labels: [Int32], optimizer: any Optimizer) -> (loss: Float, correct: Int) {
        labels.withUnsafeBufferPointer { trainStep(batch: batch, labels: $0, optimizer: optimizer) }
    }

    public func evaluate(batch: Tensor, labels: [Int32]) -> (loss: Float, correct: Int, output: Tensor) {
        labels.withUnsafeBufferPointer { evaluate(batch: batch, labels: $0) }
    }

    private func countCorrect(_ output: Tensor, _ labels: UnsafeBufferPointer<Int32>) -> Int {
        (0..<labels.count).reduce(0) { $0 + (loss.predictedClass(output: output, row: $1) == Int(labels[$1]) ? 1 : 0) }
    }

    /// One summary row per layer for a batch of one image.
    public func summary() throws -> [SummaryRow] {
        var rows: [SummaryRow] = []
        _ = try network.summarize(inputShape: [1] + inputShape, path: "", into: &rows)
        return rows
    }
}

/// A model's parameters by name and shape (``Model/parameterLayout``): enough to check a file of weights against the
/// model without holding both in memory.
public struct ParameterLayout: Sendable {
    public let model: String
    public let parameters: [(name: String, shape: [Int])]
    /// The auxiliary heads' parameters, which a file of weights may leave out.
    public let auxiliary: Set<String>

    /// Checks that tensors of these names and shapes set every parameter (the auxiliary heads' may be absent) and
    /// nothing else, as `loadParameters` demands (checkpoint bookkeeping and `num_batches_tracked` aside); returns
    /// the auxiliary parameters absent.
    /// - Throws: `ConfigurationError` naming the first missing parameter, wrong shape or tensor the model lacks.
    public func check(names: [String], shapes: [[Int]]) throws -> [String] {
        var given = Dictionary(zip(names, shapes).filter { !Model.isBookkeeping($0.0) }, uniquingKeysWith: { a, _ in a })
        var missingAuxiliary: [String] = []
        for (name, shape) in parameters {
            guard let stored = given.removeValue(forKey: name) else {
                if auxiliary.contains(name) { missingAuxiliary.append(name); continue }
                throw ConfigurationError("parameter '\(name)' of \(model) is missing")
            }
            guard stored == shape else { throw ConfigurationError("parameter '\(name)' has shape \(stored), \(model) needs \(shape)") }
        }
        if let extra = given.keys.sorted().first {
            throw ConfigurationError("'\(extra)' is not a parameter of \(model)\(given.count > 1 ? " (nor \(given.count - 1) more)" : "")")
        }
        return missingAuxiliary
    }
}

// MARK: - Transfer learning

/// What `Model.loadMatching` did: the model's parameters set from the file, the file's tensors left out (a name the
/// model does not have, or another shape), and the model's parameters the file did not set (they keep their
/// initialisation: a new classifier, for example).
public struct TransferReport: Sendable {
    public var loaded: [String] = []
    public var skipped: [(name: String, reason: String)] = []
    public var initialized: [String] = []
}

extension Model {
    /// Sets every parameter that `tensors` holds under its name and with its shape, and leaves the others as they are
    /// (call `initialize(seed:)` first): a network pre-trained on other classes gives this one everything but its
    /// classifier, which keeps its fresh initialisation. Checkpoint bookkeeping (the optimizer state, moving averages,
    /// `num_batches_tracked`) is ignored.
    /// - Throws: `ConfigurationError` when no tensor fits any parameter.
    @discardableResult
    public func loadMatching(_ tensors: [NamedTensor]) throws -> TransferReport {
        removeQuantization()  // calibrated for the weights being replaced
        var report = TransferReport()
        let own = Dictionary(parameters.map { ($0.name, $0.parameter) }, uniquingKeysWith: { first, _ in first })
        var set: Set<String> = []
        for tensor in tensors {
            if Self.isBookkeeping(tensor.name) { continue }
            guard let parameter = own[tensor.name] else {
                report.skipped.append((tensor.name, "\(self.name) has no such parameter"))
                continue
            }
            guard parameter.shape == tensor.shape else {
                report.skipped.append((tensor.name, "shape \(tensor.shape), the model's is \(parameter.shape)"))
                continue
            }
            parameter.value = Tensor(shape: tensor.shape, values: tensor.values)
            set.insert(tensor.name)
        }
        report.loaded = parameters.map(\.name).filter { set.contains($0) }
        report.initialized = parameters.map(\.name).filter { !set.contains($0) }
        guard !report.loaded.isEmpty else {
            throw ConfigurationError("none of the file's \(tensors.count) tensors fits a parameter of \(name) by name and shape"
                + (report.skipped.first.map { " (the first, '\($0.name)': \($0.reason))" } ?? ""))
        }
        return report
    }

    /// Freezes every parameter whose name starts with one of `prefixes` (a layer path such as `features` or
    /// `features.0`, matched at a dot): the optimizer leaves them alone, and frozen batch norm layers run in inference
    /// mode. Where the frozen layers come first, backward does not go through them at all, so they cost no gradients.
    /// Returns the names frozen.
    /// - Throws: `ConfigurationError` for a prefix that names no parameter.
    @discardableResult
    public func freeze(_ prefixes: [String]) throws -> [String] {
        func matches(_ name: String, _ prefix: String) -> Bool {
            prefix.isEmpty || name == prefix || name.hasPrefix(prefix.hasSuffix(".") ? prefix : prefix + ".")
        }
        for prefix in prefixes where !parameters.contains(where: { matches($0.name, prefix) }) {
            let roots = Set(parameters.map { String($0.name.split(separator: ".").first ?? "") }).sorted()
            throw ConfigurationError("--freeze \(prefix): \(name) has no layer of that name; its top-level layers are \(roots.joined(separator: ", "))")
        }
        var frozen: [String] = []
        for (name, parameter) in parameters where prefixes.contains(where: { matches(name, $0) }) {
            parameter.isFrozen = true
            frozen.append(name)
        }
        skipFrozenPrefixes(of: network, path: "")
        return frozen
    }

    /// The parameters that training updates, by name: everything but fixed and frozen ones.
    public var trainableParameterNames: [String] { parameters.filter { $0.parameter.isTrainable }.map(\.name) }

    /// Marks, in `layer` and the sequences at its start, the leading children whose parameters are all frozen (or
    /// that have none), so backward skips them; the first layer after them computes no input gradient. Valid because
    /// everything before `layer` needs no gradient either.
    private func skipFrozenPrefixes(of layer: any Layer, path: String) {
        guard let sequential = layer as? Sequential else { return }
        func isFrozen(_ layer: any Layer) -> Bool { layer.namedParameters.allSatisfy { !$0.parameter.isTrainable } }
        var count = 0
        while count < sequential.children.count, isFrozen(sequential.children[count].layer) { count += 1 }
        sequential.frozenPrefix = count
        guard count < sequential.children.count else { return }
        let (name, next) = sequential.children[count]
        switch next {
        case let conv as Conv2D: conv.computesInputGradient = false
        case let linear as Linear: linear.computesInputGradient = false
        default: skipFrozenPrefixes(of: next, path: path.isEmpty ? name : path + "." + name)
        }
    }
}
