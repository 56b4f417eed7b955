// Auxiliary classifiers (GoogLeNet, Inception v3): side heads on the main path, trained with a weighted share of
// the loss and dropped at inference (Szegedy et al. 2014, section 5: "their loss gets added to the total loss of
// the network with a discount weight (0.3)").
import CNNKernels

/// Leaves the main path unchanged. In training it also computes class scores from its input with `head`; the model
/// adds their loss times `weight` to its own, and on the way back the head's input gradient joins the main path's.
/// At inference the head is skipped.
public final class AuxiliaryClassifier: Layer {
    public let kind = "Auxiliary"
    public var weight: Float
    public let head: Sequential
    public let loss: any ClassificationLoss
    /// The head's scores from the last training forward (nil after an inference forward).
    public private(set) var output: Tensor?
    private var lossEvaluated = false
    private var summed: Tensor?

    public init(weight: Float, loss: any ClassificationLoss = SoftmaxCrossEntropy(), @LayerBuilder head: () -> [LayerEntry]) {
        self.weight = weight
        self.loss = loss
        self.head = Sequential(head())
    }

    /// The head's layers, named as its own children (`aux1.fc1.weight`).
    public var children: [(name: String, layer: any Layer)] { head.children }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        _ = try head.outputShape(for: inputShape)
        return inputShape
    }

    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        _ = try head.summarize(inputShape: inputShape, path: path, into: &rows)
        return inputShape
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        output = training ? head.forward(input, training: true) : nil
        lossEvaluated = false
        return input
    }

    /// The weighted loss of the last training forward, summed over the batch; prepares the gradient for backward.
    public func evaluateLoss(labels: UnsafeBufferPointer<Int32>) -> Float {
        guard let output else { return 0 }
        let value = loss.evaluate(output: output, labels: labels, computeGradient: true)
        let g = loss.gradient
        for i in 0..<g.count { g.data[i] *= weight }
        lossEvaluated = true
        return weight * value
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard output != nil, lossEvaluated else { return outputGradient }
        let fromHead = head.backward(loss.gradient)
        let total = Tensor.reuseGradient(&summed, shape: outputGradient.shape)
        total.assign(from: outputGradient)
        cnn_add(total.data, fromHead.data, total.count)
        head.releaseGradients()
        return total
    }

    public func releaseGradients() { Tensor.releaseGradient(&summed) }
}
