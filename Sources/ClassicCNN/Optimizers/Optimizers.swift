// Optimizers update parameters from their accumulated gradients. State (momentum, Adam's moments) is kept per
// parameter name, so it can be saved in a checkpoint and restored into a freshly built model.
import CNNKernels
import Foundation

public protocol Optimizer: AnyObject {
    /// The name used in checkpoints and on the command line ("sgd", "adam").
    var name: String { get }
    var learningRate: Float { get set }
    /// Applies one update to every trainable parameter from its gradient.
    func step(_ parameters: [(name: String, parameter: Parameter)])
    /// The state to checkpoint: tensors named "<parameter name>.<slot>", plus scalar settings.
    var state: [(name: String, tensor: Tensor)] { get }
    var settings: [String: Double] { get }
    /// Restores state saved by `state` and `settings` for `parameters`, checking every name and shape.
    func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws
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

/// Rebuilds the optimizer a checkpoint names ("sgd" or "adam") with its saved settings (state restored separately).
public func makeOptimizer(named name: String, settings: [String: Double]) throws -> any Optimizer {
    let lr = try setting(settings, "learning_rate", in: 0...1e6).map(Float.init)
    let decay = try setting(settings, "weight_decay", in: 0...1e6).map(Float.init) ?? 0
    switch name {
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
                           weightDecay, nesterov ? 1 : 0)
        }
    }

    public var state: [(name: String, tensor: Tensor)] {
        velocity.keys.sorted().map { (name: "\($0).momentum", tensor: velocity[$0]!) }
    }

    public var settings: [String: Double] {
        ["learning_rate": Double(learningRate), "momentum": Double(momentum), "nesterov": nesterov ? 1 : 0,
         "weight_decay": Double(weightDecay)]
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

/// Adam (Kingma and Ba 2015) with bias correction; `weightDecay` adds wd * w to the gradient (L2, as PyTorch's
/// Adam). Epsilon defaults to Keras's 1e-7.
public final class Adam: Optimizer {
    public let name = "adam"
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public private(set) var steps = 0
    private var firstMoment: [String: Tensor] = [:], secondMoment: [String: Tensor] = [:]

    public init(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [(name: String, parameter: Parameter)]) {
        steps += 1
        let correction1 = 1 - Foundation.pow(beta1, Float(steps)), correction2 = 1 - Foundation.pow(beta2, Float(steps))
        let stepSize = learningRate / correction1, b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        let invSqrtCorrection2 = 1 / correction2.squareRoot()
        for (name, parameter) in parameters where parameter.isTrainable {
            if firstMoment[name] == nil {
                firstMoment[name] = Tensor(shape: parameter.shape)
                secondMoment[name] = Tensor(shape: parameter.shape)
            }
            cnn_adam_update(parameter.data, parameter.gradient.data, firstMoment[name]!.data, secondMoment[name]!.data,
                            parameter.count, stepSize, b1, b2, eps, invSqrtCorrection2, wd)
        }
    }

    public var state: [(name: String, tensor: Tensor)] {
        firstMoment.keys.sorted().flatMap { key in
            [(name: "\(key).exp_avg", tensor: firstMoment[key]!), (name: "\(key).exp_avg_sq", tensor: secondMoment[key]!)]
        }
    }

    public var settings: [String: Double] {
        ["learning_rate": Double(learningRate), "beta1": Double(beta1), "beta2": Double(beta2),
         "epsilon": Double(epsilon), "weight_decay": Double(weightDecay), "step": Double(steps)]
    }

    public func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
        var first: [String: Tensor] = [:], second: [String: Tensor] = [:]
        for (name, parameter) in parameters where parameter.isTrainable && (state["\(name).exp_avg"] != nil || state["\(name).exp_avg_sq"] != nil) {
            first[name] = try stateTensor(state, "\(name).exp_avg", shape: parameter.shape)
            second[name] = try stateTensor(state, "\(name).exp_avg_sq", shape: parameter.shape)
        }
        let step = try setting(settings, "step", in: 0...Double(Int32.max)) ?? 0
        if let lr = try setting(settings, "learning_rate", in: 0...1e6) { learningRate = Float(lr) }
        firstMoment = first
        secondMoment = second
        steps = Int(step)
    }
}
