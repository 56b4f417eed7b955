// Element-wise activations. Each keeps its output for the backward pass (all four derivatives are functions of
// the output), and writes into buffers it owns.
import CNNKernels
import Foundation

/// The shared machinery: y = f(x) element-wise, dx = dy * f'(expressed through y).
public class ElementwiseActivation: Layer {
    public var kind: String { "Activation" }
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) { fatalError("abstract") }
    func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) { fatalError("abstract") }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let y = Tensor.reuse(&output, shape: input.shape)
        let x = input.data, out = y.data
        Parallel.forEachSlice(input.count) { r in self.apply(x + r.lowerBound, out + r.lowerBound, r.count) }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let output else { fatalError("\(kind).backward before forward") }
        let dx = Tensor.reuseGradient(&inputGradient, shape: output.shape)
        let y = output.data, dy = outputGradient.data, d = dx.data
        Parallel.forEachSlice(output.count) { r in self.derivative(y + r.lowerBound, dy + r.lowerBound, d + r.lowerBound, r.count) }
        return dx
    }
}

/// A layer that can apply the ReLU after it to its own output as it writes it (the bias and the ReLU in one pass), so
/// that the ReLU keeps no buffer of its own: a `Sequential` arranges it for each such pair of its children.
protocol ReLUFusing: Layer {
    /// Whether `forward` writes max(0, .) of its output: set by the `Sequential` that holds it and the ReLU after it.
    var fusesReLU: Bool { get set }
    /// Whether `backward` then also takes the ReLU's derivative itself (from its own output), so the ReLU passes
    /// gradients through untouched; otherwise the ReLU masks the gradient, in place when it may.
    var appliesReLUDerivative: Bool { get }
}

/// max(0, x).
///
/// After a convolution, a fully connected layer or a batch norm in the same `Sequential`, the ReLU is fused into that
/// layer (see `ReLUFusing`): the layer writes max(0, .) as it writes its output, and the ReLU returns that output as it
/// is. In backward it masks the gradient where the output is 0, in place when the gradient is a buffer that nobody
/// reads again, or passes it through when the layer takes the derivative itself. Either way it holds no activation
/// or gradient of its own, which is most of VGG16's training memory.
public final class ReLU: ElementwiseActivation {
    public override var kind: String { "ReLU" }
    public override init() {}

    package enum Fusion { case none, forward, full }
    /// Set by the `Sequential` that holds this ReLU and the layer before it.
    package var fusion = Fusion.none
    /// The fused layer's output (already rectified) and, for gradients that may not be overwritten, a buffer.
    private var rectified: Tensor?, maskedGradient: Tensor?
    public override func releaseGradients() {
        Tensor.releaseGradient(&maskedGradient)
        super.releaseGradients()
    }

    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        cnn_relu_forward(x, y, count)
    }
    override func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        cnn_relu_backward(y, dy, dx, count)
    }

    public override func forward(_ input: Tensor, training: Bool) -> Tensor {
        guard fusion != .none else { return super.forward(input, training: training) }
        rectified = input
        return input
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor { backward(outputGradient, overwriting: false) }

    /// `overwriting`: whether `outputGradient` is a buffer nobody reads again, which a fused ReLU may mask in place.
    func backward(_ outputGradient: Tensor, overwriting: Bool) -> Tensor {
        switch fusion {
        case .none: return super.backward(outputGradient)
        case .full: return outputGradient
        case .forward:
            guard let rectified else { fatalError("ReLU.backward before forward") }
            precondition(rectified.shape == outputGradient.shape, "ReLU.backward: gradient \(outputGradient.shape) for output \(rectified.shape)")
            let dx = overwriting ? outputGradient : Tensor.reuseGradient(&maskedGradient, shape: outputGradient.shape)
            let y = rectified.data, dy = outputGradient.data, d = dx.data
            Parallel.forEachSlice(dx.count) { r in
                if overwriting {
                    cnn_relu_mask(y + r.lowerBound, d + r.lowerBound, r.count)
                } else {
                    cnn_relu_backward(y + r.lowerBound, dy + r.lowerBound, d + r.lowerBound, r.count)
                }
            }
            return dx
        }
    }
}

/// 1 / (1 + e^-x).
public final class Sigmoid: ElementwiseActivation {
    public override var kind: String { "Sigmoid" }
    public override init() {}
    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { y[i] = 1 / (1 + Foundation.exp(-x[i])) }
    }
    override func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
    }
}

/// tanh(x).
public final class Tanh: ElementwiseActivation {
    public override var kind: String { "Tanh" }
    public override init() {}
    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { y[i] = Foundation.tanh(x[i]) }
    }
    override func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }
}

/// LeCun's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (LeCun et al. 1998, appendix A):
/// f(1) = 1 and f(-1) = -1, and the second derivative is largest at +-1.
public final class ScaledTanh: ElementwiseActivation {
    public static let amplitude: Float = 1.7159
    public static let slope: Float = 2.0 / 3.0
    public override var kind: String { "ScaledTanh" }
    public override init() {}
    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { y[i] = Self.amplitude * Foundation.tanh(Self.slope * x[i]) }
    }
    override func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        // f' = A S (1 - tanh^2) = (S / A) (A^2 - y^2)
        let a2 = Self.amplitude * Self.amplitude, k = Self.slope / Self.amplitude
        for i in 0..<count { dx[i] = dy[i] * k * (a2 - y[i] * y[i]) }
    }
}
