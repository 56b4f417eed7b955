// Global average pooling (Lin, Chen and Yan 2014, "Network in network", section 3.2): each feature map reduced to
// its mean, in place of the fully connected layers of GoogLeNet's and the Inception networks' classifiers.
//
// Legend: N batch, C channels, P = H * W.

/// The mean of each channel: [N, C, H, W] to [N, C], or to [N, C, 1, 1] with `keepDimensions`
/// (PyTorch's `AdaptiveAvgPool2d(1)`, as torchvision's GoogLeNet and Inception v3 use it before `flatten`).
public final class GlobalAvgPool2D: Layer {
    public let kind = "GlobalAvgPool2D"
    /// Whether the output keeps its 1 x 1 spatial dimensions.
    public let keepDimensions: Bool
    private var inputShape: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(keepDimensions: Bool = false) {
        self.keepDimensions = keepDimensions
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw ShapeError(layer: kind, "expects an N x C x H x W input, got \(inputShape.shapeText())")
        }
        guard inputShape[2] > 0 && inputShape[3] > 0 else { throw ShapeError(layer: kind, "empty \(inputShape[2])x\(inputShape[3]) maps") }
        return keepDimensions ? [inputShape[0], inputShape[1], 1, 1] : [inputShape[0], inputShape[1]]
    }

    /// Every input feeds one output.
    public func cost(inputShape: [Int]) -> LayerCost {
        LayerCost(connections: inputShape.dropFirst().reduce(1, *))
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let shape = try! outputShape(for: input.shape)
        inputShape = input.shape
        let planes = input.shape[0] * input.shape[1], p = input.shape[2] * input.shape[3]
        let y = Tensor.reuse(&output, shape: shape)
        let x = input.data, out = y.data
        let divisor = Float(p)
        Parallel.forEachSlice(planes, grain: max(1, (1 << 15) / p)) { range in
            for plane in range {
                let row = x + plane * p
                var sum: Float = 0
                for i in 0..<p { sum += row[i] }
                out[plane] = sum / divisor
            }
        }
        return y
    }

    /// Each input receives its channel's output gradient divided by H * W.
    public func backward(_ outputGradient: Tensor) -> Tensor {
        let planes = inputShape[0] * inputShape[1], p = inputShape[2] * inputShape[3]
        let dx = Tensor.reuseGradient(&inputGradient, shape: inputShape)
        let dy = outputGradient.data, d = dx.data
        let divisor = Float(p)
        Parallel.forEachSlice(planes, grain: max(1, (1 << 15) / p)) { range in
            for plane in range { (d + plane * p).update(repeating: dy[plane] / divisor, count: p) }
        }
        return dx
    }
}
