// Element-wise activations. Each keeps its output for the backward pass (all four derivatives are functions of
// the output), and writes into buffers it owns.
import CNNKernels
import Foundation

/// The shared machinery: y = f(x) element-wise, dx = dy * f'(expressed through y).
public class ElementwiseActivation: Layer {
    public var kind: String { "Activation" }
    private var output: Tensor?, inputGradient: Tensor?

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
        let dx = Tensor.reuse(&inputGradient, shape: output.shape)
        let y = output.data, dy = outputGradient.data, d = dx.data
        Parallel.forEachSlice(output.count) { r in self.derivative(y + r.lowerBound, dy + r.lowerBound, d + r.lowerBound, r.count) }
        return dx
    }
}

/// max(0, x).
public final class ReLU: ElementwiseActivation {
    public override var kind: String { "ReLU" }
    public override init() {}
    override func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        cnn_relu_forward(x, y, count)
    }
    override func derivative(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        cnn_relu_backward(y, dy, dx, count)
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
