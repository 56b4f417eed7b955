// A fully connected layer: y = x W^T + b, with PyTorch's weight layout [out, in]. Inputs of any rank are read as
// [N, features] (so a Flatten before it is optional, as in Keras's Dense after Flatten).
import CNNKernels

public final class Linear: Layer, Initializable, ReLUFusing {
    public let kind = "Linear"
    public let inputFeatures: Int, outputFeatures: Int
    public let weightInitializer: Initializer, biasInitializer: Initializer
    /// Weights [out, in].
    public let weight: Parameter
    public let bias: Parameter?
    public var computesInputGradient = true
    /// Whether the output is written rectified, for the ReLU after this layer (see `ReLUFusing`).
    var fusesReLU = false
    let appliesReLUDerivative = false

    private var input: Tensor?
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true,
                weightInitializer: Initializer = .glorotUniform, biasInitializer: Initializer = .zeros) {
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.weightInitializer = weightInitializer
        self.biasInitializer = biasInitializer
        weight = Parameter(Tensor(shape: [outputFeatures, inputFeatures]))
        self.bias = bias ? Parameter(Tensor(shape: [outputFeatures])) : nil
    }

    public var ownParameters: [(name: String, parameter: Parameter)] {
        [(name: "weight", parameter: weight)] + (bias.map { [(name: "bias", parameter: $0)] } ?? [])
    }

    public func resetParameters(using rng: inout RandomGenerator) {
        weightInitializer.fill(&weight.value, fanIn: inputFeatures, fanOut: outputFeatures, using: &rng)
        if let bias { biasInitializer.fill(&bias.value, fanIn: inputFeatures, fanOut: outputFeatures, using: &rng) }
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let features = inputShape.dropFirst().reduce(1, *)
        guard features == inputFeatures else {
            throw ShapeError(layer: kind, "expects \(inputFeatures) input features, got \(features) from \(inputShape.shapeText())")
        }
        return [inputShape[0], outputFeatures]
    }

    public func cost(inputShape: [Int]) -> LayerCost {
        LayerCost(connections: outputFeatures * (inputFeatures + (bias == nil ? 0 : 1)), multiplyAdds: outputFeatures * inputFeatures)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let n = input.shape[0]
        precondition(input.count == n * inputFeatures, "Linear: input \(input.shape) does not have \(inputFeatures) features")
        self.input = input
        let y = Tensor.reuse(&output, shape: [n, outputFeatures])
        // Y [N, out] = X [N, in] x W^T
        Gemm.multiply(transposeB: true, m: n, n: outputFeatures, k: inputFeatures, a: input.data, lda: inputFeatures,
                      b: weight.data, ldb: inputFeatures, c: y.data, ldc: outputFeatures)
        cnn_add_channel_bias(y.data, bias?.data, Int32(n), Int32(outputFeatures), 1, fusesReLU ? 1 : 0)
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input else { fatalError("Linear.backward before forward") }
        let n = input.shape[0]
        let dy = outputGradient.data
        // dW [out, in] += dY^T [out, N] x X [N, in]
        Gemm.multiply(transposeA: true, m: outputFeatures, n: inputFeatures, k: n, a: dy, lda: outputFeatures,
                      b: input.data, ldb: inputFeatures, beta: 1, c: weight.gradient.data, ldc: inputFeatures)
        if let bias { cnn_accumulate_channel_sums(dy, bias.gradient.data, Int32(n), Int32(outputFeatures), 1) }
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        if computesInputGradient {
            // dX [N, in] = dY [N, out] x W [out, in]
            Gemm.multiply(m: n, n: inputFeatures, k: outputFeatures, a: dy, lda: outputFeatures, b: weight.data,
                          ldb: inputFeatures, c: dx.data, ldc: inputFeatures)
        }
        return dx
    }
}
