// Adaptive average pooling to a fixed output size, with PyTorch's windows (torch.nn.AdaptiveAvgPool2d): output row i
// averages input rows floor(i * H / OH) ..< ceil((i + 1) * H / OH), and likewise for columns. torchvision's
// GoogLeNet auxiliary heads pool 14x14 to 4x4 this way (overlapping windows of 4, unlike the paper's 5x5 stride 3).

public final class AdaptiveAvgPool2D: Layer {
    public let kind = "AdaptiveAvgPool2D"
    public let outputSize: (height: Int, width: Int)
    private var inputShape: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?

    public init(outputSize: (Int, Int)) {
        precondition(outputSize.0 > 0 && outputSize.1 > 0)
        self.outputSize = (outputSize.0, outputSize.1)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else { throw ShapeError(layer: kind, "expects an N x C x H x W input, got \(inputShape.shapeText())") }
        return [inputShape[0], inputShape[1], outputSize.height, outputSize.width]
    }

    /// The input range of output index i along an axis of `size` inputs and `count` outputs.
    static func window(_ i: Int, size: Int, count: Int) -> Range<Int> {
        (i * size / count)..<(((i + 1) * size + count - 1) / count)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = outputSize
        let y = Tensor.reuse(&output, shape: [n, c, oh, ow])
        inputShape = input.shape
        let x = input.data, out = y.data
        for plane in 0..<(n * c) {
            for i in 0..<oh {
                let rows = Self.window(i, size: h, count: oh)
                for j in 0..<ow {
                    let columns = Self.window(j, size: w, count: ow)
                    var sum: Float = 0
                    for r in rows { for q in columns { sum += x[(plane * h + r) * w + q] } }
                    out[(plane * oh + i) * ow + j] = sum / Float(rows.count * columns.count)
                }
            }
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = outputSize
        let dx = Tensor.reuse(&inputGradient, shape: inputShape)
        dx.zero()
        let dy = outputGradient.data, d = dx.data
        for plane in 0..<(n * c) {
            for i in 0..<oh {
                let rows = Self.window(i, size: h, count: oh)
                for j in 0..<ow {
                    let columns = Self.window(j, size: w, count: ow)
                    let g = dy[(plane * oh + i) * ow + j] / Float(rows.count * columns.count)
                    for r in rows { for q in columns { d[(plane * h + r) * w + q] += g } }
                }
            }
        }
        return dx
    }
}
