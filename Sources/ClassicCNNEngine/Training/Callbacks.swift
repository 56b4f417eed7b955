// What a Keras user adds to `fit` as callbacks, here as training options: a moving average of the weights (Polyak
// averaging) and early stopping. Both keep their state in the training state, so `--resume` continues them exactly.
import Foundation

/// An exponential moving average of every parameter (the trainable weights and batch norm's running statistics):
/// after each step `average = d * average + (1 - d) * weight`. GoogLeNet (Szegedy et al. 2015, section 6: "Polyak
/// averaging was used to create the final model") and Inception v3 (decay 0.9999) validated with the averaged weights.
///
/// With `warmup`, the decay of update n is `min(decay, (1 + n) / (10 + n))`, as TensorFlow's ExponentialMovingAverage
/// with `num_updates`, so that a short run is not dominated by the initial weights.
public final class WeightAverage {
    public let decay: Double
    public let warmup: Bool
    /// Updates so far.
    public private(set) var updates: Int
    private(set) var averages: [(name: String, tensor: Tensor)]

    /// Starts the averages at the model's current weights.
    public init(model: Model, decay: Double, warmup: Bool = true) {
        self.decay = decay
        self.warmup = warmup
        updates = 0
        averages = model.parameters.map { (name: $0.name, tensor: Tensor(copying: $0.parameter.value)) }
    }

    /// The decay of the next update.
    var currentDecay: Double { warmup ? min(decay, Double(1 + updates) / Double(10 + updates)) : decay }

    /// Moves the averages towards the model's weights.
    public func update(from model: Model) {
        let d = Float(currentDecay), keep = 1 - d
        for ((_, average), (_, parameter)) in zip(averages, model.parameters) {
            let a = average.data, w = parameter.value.data
            for i in 0..<average.count { a[i] = d * a[i] + keep * w[i] }
        }
        updates += 1
    }

    /// Exchanges the model's weights with the averages (call twice to exchange them back).
    public func swap(with model: Model) {
        for index in averages.indices {
            let parameter = model.parameters[index].parameter
            let held = parameter.value
            parameter.value = averages[index].tensor
            averages[index].tensor = held
        }
    }

    /// Runs `body` with the averaged weights in the model, then puts the model's own back.
    public func withAveragedWeights<T>(in model: Model, _ body: () throws -> T) rethrows -> T {
        swap(with: model)
        defer { swap(with: model) }
        return try body()
    }

    /// The averages, named `ema.<parameter>` as checkpoints keep them.
    public var namedTensors: [NamedTensor] {
        averages.map { NamedTensor(name: Checkpoint.averagePrefix + $0.name, shape: $0.tensor.shape, values: $0.tensor.values) }
    }

    /// Restores averages saved by `namedTensors`, checking every name and shape.
    public func restore(_ tensors: [NamedTensor], updates: Int) throws {
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for index in averages.indices {
            let name = Checkpoint.averagePrefix + averages[index].name
            guard let stored = byName[name], stored.shape == averages[index].tensor.shape else {
                throw ConfigurationError("the checkpoint's moving average has no tensor '\(name)' of shape \(averages[index].tensor.shape)")
            }
            averages[index].tensor = Tensor(shape: stored.shape, values: stored.values)
        }
        self.updates = updates
    }
}

/// Keras's EarlyStopping: stop when `monitor` has not improved by more than `minDelta` for `patience` epochs; with
/// `restoreBestWeights`, the model ends with the weights of its best epoch. A monitor whose name contains "acc"
/// improves upwards.
public struct EarlyStopping: Equatable, Sendable {
    public var monitor = "val_loss"
    public var patience = 0
    public var minDelta = 0.0
    public var restoreBestWeights = false
    public init(monitor: String = "val_loss", patience: Int = 0, minDelta: Double = 0, restoreBestWeights: Bool = false) {
        (self.monitor, self.patience, self.minDelta, self.restoreBestWeights) = (monitor, patience, minDelta, restoreBestWeights)
    }

    public static let monitors = ["val_loss", "val_accuracy", "loss", "accuracy"]

    public func validate() throws {
        guard Self.monitors.contains(monitor) else {
            throw ConfigurationError("early stopping can watch \(Self.monitors.joined(separator: ", ")), not '\(monitor)'")
        }
        guard patience >= 0, minDelta.isFinite, minDelta >= 0 else {
            throw ConfigurationError("early stopping needs a patience of 0 or more and a non-negative min_delta")
        }
    }

    public struct State: Codable, Equatable, Sendable {
        public var best: Double?
        public var bestEpoch: Int?
        public var wait = 0
        public var stoppedEpoch: Int?
        public init() {}
    }

    /// Keras's `on_epoch_end`: returns whether this epoch is the best so far, and sets `stoppedEpoch` when the run
    /// should stop.
    @discardableResult
    public func update(_ state: inout State, metrics: [String: Double], epoch: Int) -> Bool {
        guard let current = metrics[monitor], current.isFinite else { return false }
        let increases = monitor.contains("acc")
        state.wait += 1
        let improved = state.best.map { increases ? current - minDelta > $0 : current + minDelta < $0 } ?? true
        if improved {
            (state.best, state.bestEpoch) = (current, epoch)
            state.wait = 0
        } else if state.wait >= patience && epoch > 0 {
            state.stoppedEpoch = epoch
        }
        return improved
    }
}
