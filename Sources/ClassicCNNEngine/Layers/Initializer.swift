// Weight initialisers, with Keras's and PyTorch's names and fan conventions (fan-in = inputs per output unit,
// fan-out = outputs per input unit; for a convolution both include the kernel area).

public enum Initializer: Sendable, Equatable {
    case zeros
    case constant(Float)
    /// U(-sqrt(6 / (fanIn + fanOut)), +...): Keras's default for Dense and Conv2D.
    case glorotUniform
    /// N(0, 2 / (fanIn + fanOut)).
    case glorotNormal
    /// U(-sqrt(6 / fanIn), +...).
    case heUniform
    /// N(0, 2 / fanIn): for ReLU networks (He et al. 2015).
    case heNormal
    /// U(-sqrt(3 / fanIn), +...).
    case lecunUniform
    /// N(0, 1 / fanIn).
    case lecunNormal
    /// U(-scale / fanIn, +scale / fanIn): LeNet-5 (1998) uses scale 2.4.
    case fanInUniform(scale: Float)
    /// N(0, standardDeviation^2): AlexNet uses 0.01, GoogLeNet-era models similar.
    case normal(standardDeviation: Float)
    /// U(-1 / sqrt(fanIn), +1 / sqrt(fanIn)): PyTorch's default for Conv2d and Linear weights and biases
    /// (kaiming_uniform with a = sqrt(5)).
    case torchDefault
    /// N(0, 2 / fanOut): torchvision's VGG and GoogLeNet convolutions (kaiming_normal, mode fan_out).
    case heNormalFanOut

    public func fill(_ tensor: inout Tensor, fanIn: Int, fanOut: Int, using rng: inout RandomGenerator) {
        let fanIn = Float(max(fanIn, 1)), fanOut = Float(max(fanOut, 1))
        tensor.withUnsafeMutableBufferPointer { values in
            switch self {
            case .zeros:
                values.update(repeating: 0)
            case .constant(let c):
                values.update(repeating: c)
            case .glorotUniform:
                Self.uniform(values, limit: (6 / (fanIn + fanOut)).squareRoot(), &rng)
            case .glorotNormal:
                Self.normal(values, deviation: (2 / (fanIn + fanOut)).squareRoot(), &rng)
            case .heUniform:
                Self.uniform(values, limit: (6 / fanIn).squareRoot(), &rng)
            case .heNormal:
                Self.normal(values, deviation: (2 / fanIn).squareRoot(), &rng)
            case .lecunUniform:
                Self.uniform(values, limit: (3 / fanIn).squareRoot(), &rng)
            case .lecunNormal:
                Self.normal(values, deviation: (1 / fanIn).squareRoot(), &rng)
            case .fanInUniform(let scale):
                Self.uniform(values, limit: scale / fanIn, &rng)
            case .normal(let deviation):
                Self.normal(values, deviation: deviation, &rng)
            case .torchDefault:
                Self.uniform(values, limit: 1 / fanIn.squareRoot(), &rng)
            case .heNormalFanOut:
                Self.normal(values, deviation: (2 / fanOut).squareRoot(), &rng)
            }
        }
    }

    private static func uniform(_ values: UnsafeMutableBufferPointer<Float>, limit: Float, _ rng: inout RandomGenerator) {
        for i in values.indices { values[i] = rng.uniform(-limit, limit) }
    }

    private static func normal(_ values: UnsafeMutableBufferPointer<Float>, deviation: Float, _ rng: inout RandomGenerator) {
        for i in values.indices { values[i] = deviation * rng.normal() }
    }
}

/// Layers whose parameters are drawn at random implement this; `Model` calls it once per layer, in order, from
/// one seeded generator, so one seed gives one set of initial weights.
public protocol Initializable: AnyObject {
    func resetParameters(using rng: inout RandomGenerator)
}
