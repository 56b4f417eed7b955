// Optimizers update parameters from their accumulated gradients. State (momentum, Adam's moments) is kept per
// parameter name, so it can be saved in a checkpoint and restored into a freshly built model.
import CNNKernels
import Foundation

public protocol Optimizer: AnyObject {
    /// The name used in checkpoints and on the command line ("sgd", "adam").
    var name: String { get }
    var learningRate: Float { get set }
    /// Applies one update to every trainable parameter from its gradient, calling `markChanged()` on each parameter
    /// it writes in place (`Model.trainStep` marks every trainable parameter after the step as well).
    func step(_ parameters: [(name: String, parameter: Parameter)])
    /// The state to checkpoint: tensors named "<parameter name>.<slot>", plus scalar settings.
    var state: [(name: String, tensor: Tensor)] { get }
    var settings: [String: Double] { get }
    /// Restores state saved by `state` and `settings` for `parameters`, checking every name and shape.
    func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws
    /// When true, parameters of one dimension (biases, batch norm's scale and shift) get no weight decay, as timm's
    /// `param_groups_weight_decay` and most fine-tuning recipes do; saved as the setting `decay_excludes_vectors`.
    var decayExcludesVectors: Bool { get set }
}

extension Optimizer {
    /// The weight decay of `parameter`: none for a vector when `decayExcludesVectors`.
    func decay(_ weightDecay: Float, for parameter: Parameter) -> Float {
        decayExcludesVectors && parameter.shape.count <= 1 ? 0 : weightDecay
    }

    /// `settings` with the decay exclusion added.
    func withExclusion(_ settings: [String: Double]) -> [String: Double] {
        settings.merging(["decay_excludes_vectors": decayExcludesVectors ? 1 : 0]) { $1 }
    }
}

public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

/// The state tensor `key` of `parameters`' parameter `name`, checked to have the parameter's shape.
func stateTensor(_ state: [String: Tensor], _ key: String, shape: [Int]) throws -> Tensor {
    guard let tensor = state[key] else { throw OptimizerStateError(description: "optimizer state '\(key)' is missing") }
    guard tensor.shape == shape else {
        throw OptimizerStateError(description: "optimizer state '\(key)' has shape \(tensor.shape), its parameter \(shape)")
    }
    return Tensor(copying: tensor)
}

/// A finite setting within bounds, or an error naming it.
func setting(_ settings: [String: Double], _ key: String, in range: ClosedRange<Double>) throws -> Double? {
    guard let value = settings[key] else { return nil }
    guard value.isFinite, range.contains(value) else {
        throw OptimizerStateError(description: "optimizer setting '\(key)' = \(value) is outside \(range)")
    }
    return value
}

/// The optimizers `makeOptimizer(named:settings:)` knows.
public let optimizerNames = ["sgd", "adam", "adamw", "rmsprop"]

/// Rebuilds the optimizer a checkpoint names ("sgd", "adam", "adamw" or "rmsprop") with its saved settings (state
/// restored separately).
public func makeOptimizer(named name: String, settings: [String: Double]) throws -> any Optimizer {
    let lr = try setting(settings, "learning_rate", in: 0...1e6).map(Float.init)
    let decay = try setting(settings, "weight_decay", in: 0...1e6).map(Float.init) ?? 0
    let exclusion = (try setting(settings, "decay_excludes_vectors", in: 0...1) ?? 0) != 0
    let optimizer = try makeOptimizer(name, settings: settings, lr: lr, decay: decay)
    optimizer.decayExcludesVectors = exclusion
    return optimizer
}

private func makeOptimizer(_ name: String, settings: [String: Double], lr: Float?, decay: Float) throws -> any Optimizer {
    switch name {
    case "adamw":
        return AdamW(learningRate: lr ?? 0.001, beta1: Float(try setting(settings, "beta1", in: 0...1) ?? 0.9),
                     beta2: Float(try setting(settings, "beta2", in: 0...1) ?? 0.999),
                     epsilon: Float(try setting(settings, "epsilon", in: 0...1) ?? 1e-8), weightDecay: decay)
    case "rmsprop":
        let convention = try setting(settings, "tensorflow_convention", in: 0...1).map { $0 != 0 ? RMSProp.Convention.tensorFlow : .pytorch }
        return RMSProp(learningRate: lr ?? 0.01, rho: Float(try setting(settings, "rho", in: 0...1) ?? 0.9),
                       momentum: Float(try setting(settings, "momentum", in: 0...1) ?? 0),
                       epsilon: Float(try setting(settings, "epsilon", in: 0...10) ?? 1e-8),
                       convention: convention ?? .pytorch, weightDecay: decay)
    case "adam":
        return Adam(learningRate: lr ?? 0.001, beta1: Float(try setting(settings, "beta1", in: 0...1) ?? 0.9),
                    beta2: Float(try setting(settings, "beta2", in: 0...1) ?? 0.999),
                    epsilon: Float(try setting(settings, "epsilon", in: 0...1) ?? 1e-7), weightDecay: decay)
    case "sgd":
        return SGD(learningRate: lr ?? 0.01, momentum: Float(try setting(settings, "momentum", in: 0...1) ?? 0),
                   nesterov: (try setting(settings, "nesterov", in: 0...1) ?? 0) != 0, weightDecay: decay)
    default:
        throw OptimizerStateError(description: "unknown optimizer '\(name)'")
    }
}

/// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, as PyTorch defines them:
/// g = grad + wd * w;  v = mu * v + g;  w -= lr * (nesterov ? g + mu * v : v).
public final class SGD: Optimizer {
    public let name = "sgd"
    public var learningRate: Float
    public let momentum: Float, weightDecay: Float, nesterov: Bool
    public var decayExcludesVectors = false
    private var velocity: [String: Tensor] = [:]

    public init(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [(name: String, parameter: Parameter)]) {
        for (name, parameter) in parameters where parameter.isTrainable {
            var v: UnsafeMutablePointer<Float>?
            if momentum != 0 {
                if velocity[name] == nil { velocity[name] = Tensor(shape: parameter.shape) }
                v = velocity[name]!.data
            }
            cnn_sgd_update(parameter.data, parameter.gradient.data, v, parameter.count, learningRate, momentum,
                           decay(weightDecay, for: parameter), nesterov ? 1 : 0)
            parameter.markChanged()
        }
    }

    public var state: [(name: String, tensor: Tensor)] {
        velocity.keys.sorted().map { (name: "\($0).momentum", tensor: velocity[$0]!) }
    }

    public var settings: [String: Double] {
        withExclusion(["learning_rate": Double(learningRate), "momentum": Double(momentum), "nesterov": nesterov ? 1 : 0,
                       "weight_decay": Double(weightDecay)])
    }

    public func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
        var restored: [String: Tensor] = [:]
        for (name, parameter) in parameters where parameter.isTrainable && state["\(name).momentum"] != nil {
            restored[name] = try stateTensor(state, "\(name).momentum", shape: parameter.shape)
        }
        if let lr = try setting(settings, "learning_rate", in: 0...1e6) { learningRate = Float(lr) }
        velocity = restored
    }
}

/// Adam's state, which Adam and AdamW share: each parameter's first and second moments (PyTorch's `exp_avg` and
/// `exp_avg_sq`), made at its first step, and the step count.
struct AdamMoments {
    private(set) var steps = 0
    private var first: [String: Tensor] = [:], second: [String: Tensor] = [:]

    /// One step of bias-corrected Adam over the trainable parameters: `shrink` (AdamW's decoupled decay, 1 for none)
    /// scales each parameter first, `l2` (Adam's weight decay) is added to its gradient inside the update.
    mutating func step(_ parameters: [(name: String, parameter: Parameter)], learningRate: Float, beta1: Float, beta2: Float,
                       epsilon: Float, shrink: (Parameter) -> Float, l2: (Parameter) -> Float) {
        steps += 1
        let correction1 = 1 - Foundation.pow(beta1, Float(steps)), correction2 = 1 - Foundation.pow(beta2, Float(steps))
        let stepSize = learningRate / correction1, invSqrtCorrection2 = 1 / correction2.squareRoot()
        for (name, parameter) in parameters where parameter.isTrainable {
            if first[name] == nil {
                first[name] = Tensor(shape: parameter.shape)
                second[name] = Tensor(shape: parameter.shape)
            }
            let w = parameter.data, n = parameter.count, factor = shrink(parameter)
            if factor != 1 { for i in 0..<n { w[i] *= factor } }
            cnn_adam_update(w, parameter.gradient.data, first[name]!.data, second[name]!.data,
                            n, stepSize, beta1, beta2, epsilon, invSqrtCorrection2, l2(parameter))
            parameter.markChanged()
        }
    }

    var state: [(name: String, tensor: Tensor)] {
        first.keys.sorted().flatMap { key in
            [(name: "\(key).exp_avg", tensor: first[key]!), (name: "\(key).exp_avg_sq", tensor: second[key]!)]
        }
    }

    /// Restores the moments and the step count; returns the saved learning rate, if any.
    mutating func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws -> Float? {
        var restoredFirst: [String: Tensor] = [:], restoredSecond: [String: Tensor] = [:]
        for (name, parameter) in parameters where parameter.isTrainable && (state["\(name).exp_avg"] != nil || state["\(name).exp_avg_sq"] != nil) {
            restoredFirst[name] = try stateTensor(state, "\(name).exp_avg", shape: parameter.shape)
            restoredSecond[name] = try stateTensor(state, "\(name).exp_avg_sq", shape: parameter.shape)
        }
        let step = try setting(settings, "step", in: 0...Double(Int32.max)) ?? 0
        let learningRate = try setting(settings, "learning_rate", in: 0...1e6).map(Float.init)
        (first, second, steps) = (restoredFirst, restoredSecond, Int(step))
        return learningRate
    }
}

/// Adam (Kingma and Ba 2015) with bias correction; `weightDecay` adds wd * w to the gradient (L2, as PyTorch's
/// Adam). Epsilon defaults to Keras's 1e-7.
public final class Adam: Optimizer {
    public let name = "adam"
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public var decayExcludesVectors = false
    public var steps: Int { moments.steps }
    private var moments = AdamMoments()

    public init(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7, weightDecay: Float = 0) {
        (self.learningRate, self.beta1, self.beta2, self.epsilon, self.weightDecay) = (learningRate, beta1, beta2, epsilon, weightDecay)
    }

    public func step(_ parameters: [(name: String, parameter: Parameter)]) {
        moments.step(parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                     shrink: { _ in 1 }, l2: { self.decay(self.weightDecay, for: $0) })
    }

    public var state: [(name: String, tensor: Tensor)] { moments.state }

    public var settings: [String: Double] {
        withExclusion(["learning_rate": Double(learningRate), "beta1": Double(beta1), "beta2": Double(beta2),
                       "epsilon": Double(epsilon), "weight_decay": Double(weightDecay), "step": Double(steps)])
    }

    public func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
        if let lr = try moments.restore(state: state, settings: settings, parameters: parameters) { learningRate = lr }
    }
}

/// AdamW (Loshchilov and Hutter 2019), as torch.optim.AdamW: the weights first shrink by `lr * weightDecay` (decoupled
/// from the gradient), then Adam's step with bias correction; epsilon 1e-8 and weight decay 0.01 by default, as PyTorch.
public final class AdamW: Optimizer {
    public let name = "adamw"
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public var decayExcludesVectors = false
    public var steps: Int { moments.steps }
    private var moments = AdamMoments()

    public init(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        (self.learningRate, self.beta1, self.beta2, self.epsilon, self.weightDecay) = (learningRate, beta1, beta2, epsilon, weightDecay)
    }

    public func step(_ parameters: [(name: String, parameter: Parameter)]) {
        moments.step(parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                     shrink: { 1 - self.learningRate * self.decay(self.weightDecay, for: $0) }, l2: { _ in 0 })
    }

    public var state: [(name: String, tensor: Tensor)] { moments.state }

    public var settings: [String: Double] {
        withExclusion(["learning_rate": Double(learningRate), "beta1": Double(beta1), "beta2": Double(beta2),
                       "epsilon": Double(epsilon), "weight_decay": Double(weightDecay), "step": Double(steps)])
    }

    public func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
        if let lr = try moments.restore(state: state, settings: settings, parameters: parameters) { learningRate = lr }
    }
}

/// RMSProp (Hinton's lecture 6e) with momentum, in either of the two conventions that differ in where epsilon and
/// the learning rate go:
///
/// - ``Convention/pytorch`` (torch.optim.RMSprop): `v = rho v + (1 - rho) g^2`, `b = mu b + g / (sqrt(v) + eps)`,
///   `w -= lr b`; `v` starts at 0.
/// - ``Convention/tensorFlow`` (tf.compat.v1.train.RMSPropOptimizer, which the Inception v3 and v4 papers used with
///   decay 0.9, momentum 0.9 and epsilon 1.0): `ms = rho ms + (1 - rho) g^2`, `mom = mu mom + lr g / sqrt(ms + eps)`,
///   `w -= mom`; `ms` starts at 1. Epsilon inside the square root, and the learning rate inside the momentum, so a
///   rate that changes acts on new gradients only.
///
/// Weight decay, when given, adds `wd * w` to the gradient (L2, as PyTorch's `weight_decay`).
public final class RMSProp: Optimizer {
    public enum Convention: String, Sendable { case pytorch, tensorFlow = "tensorflow" }
    public let name = "rmsprop"
    public var learningRate: Float
    public let rho: Float, momentum: Float, epsilon: Float, weightDecay: Float
    public let convention: Convention
    public var decayExcludesVectors = false
    private var squareAverage: [String: Tensor] = [:], momentumBuffer: [String: Tensor] = [:]

    public init(learningRate: Float = 0.01, rho: Float = 0.9, momentum: Float = 0, epsilon: Float = 1e-8,
                convention: Convention = .pytorch, weightDecay: Float = 0) {
        (self.learningRate, self.rho, self.momentum, self.epsilon, self.convention, self.weightDecay) =
            (learningRate, rho, momentum, epsilon, convention, weightDecay)
    }

    /// Inception v3's settings (Szegedy et al. 2016, section 8): "RMSProp with decay of 0.9 and epsilon = 1.0", momentum
    /// 0.9 as TF-slim's training script, in TensorFlow's convention.
    public static func inception(learningRate: Float = 0.045) -> RMSProp {
        RMSProp(learningRate: learningRate, rho: 0.9, momentum: 0.9, epsilon: 1.0, convention: .tensorFlow)
    }

    public func step(_ parameters: [(name: String, parameter: Parameter)]) {
        let tensorFlow = convention == .tensorFlow
        for (name, parameter) in parameters where parameter.isTrainable {
            if squareAverage[name] == nil {
                squareAverage[name] = Tensor(shape: parameter.shape, repeating: tensorFlow ? 1 : 0)
                if momentum != 0 { momentumBuffer[name] = Tensor(shape: parameter.shape) }
            }
            parameter.markChanged()
            let w = parameter.data, g = parameter.gradient.data, v = squareAverage[name]!.data
            let b = momentumBuffer[name]?.data
            let (lr, r, mu, eps, wd, n) = (learningRate, rho, momentum, epsilon, decay(weightDecay, for: parameter), parameter.count)
            for i in 0..<n {
                let grad = g[i] + wd * w[i]
                let average = r * v[i] + (1 - r) * grad * grad
                v[i] = average
                if tensorFlow {
                    let update = lr * grad / (average + eps).squareRoot()
                    if let b { b[i] = mu * b[i] + update; w[i] -= b[i] } else { w[i] -= update }
                } else {
                    let scaled = grad / (average.squareRoot() + eps)
                    if let b { b[i] = mu * b[i] + scaled; w[i] -= lr * b[i] } else { w[i] -= lr * scaled }
                }
            }
        }
    }

    public var state: [(name: String, tensor: Tensor)] {
        squareAverage.keys.sorted().map { (name: "\($0).square_avg", tensor: squareAverage[$0]!) }
            + momentumBuffer.keys.sorted().map { (name: "\($0).momentum_buffer", tensor: momentumBuffer[$0]!) }
    }

    public var settings: [String: Double] {
        withExclusion(["learning_rate": Double(learningRate), "rho": Double(rho), "momentum": Double(momentum), "epsilon": Double(epsilon),
                       "weight_decay": Double(weightDecay), "tensorflow_convention": convention == .tensorFlow ? 1 : 0])
    }

    public func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
        var averages: [String: Tensor] = [:], buffers: [String: Tensor] = [:]
        for (name, parameter) in parameters where parameter.isTrainable && state["\(name).square_avg"] != nil {
            averages[name] = try stateTensor(state, "\(name).square_avg", shape: parameter.shape)
            if momentum != 0 { buffers[name] = try stateTensor(state, "\(name).momentum_buffer", shape: parameter.shape) }
        }
        if let lr = try setting(settings, "learning_rate", in: 0...1e6) { learningRate = Float(lr) }
        (squareAverage, momentumBuffer) = (averages, buffers)
    }
}
