// Adaptive average pooling to a fixed output size, with PyTorch's windows (torch.nn.AdaptiveAvgPool2d): output row i
// averages input rows floor(i * H / OH) ..< ceil((i + 1) * H / OH), and likewise for columns. torchvision's
// GoogLeNet auxiliary heads pool 14x14 to 4x4 this way (overlapping windows of 4, unlike the paper's 5x5 stride 3).

public final class AdaptiveAvgPool2D: Layer {
    public let kind = "AdaptiveAvgPool2D"
    public let outputSize: (height: Int, width: Int)
    private var inputShape: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(outputSize: (Int, Int)) {
        precondition(outputSize.0 > 0 && outputSize.1 > 0)
        self.outputSize = (outputSize.0, outputSize.1)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else { throw ShapeError(layer: kind, "expects an N x C x H x W input, got \(inputShape.shapeText())") }
        return [inputShape[0], inputShape[1], outputSize.height, outputSize.width]
    }

    /// The input range of output index i along an axis of `size` inputs and `count` outputs.
    package static func window(_ i: Int, size: Int, count: Int) -> Range<Int> {
        (i * size / count)..<(((i + 1) * size + count - 1) / count)
    }

    /// Calls `body(output, rows, columns)` for every output position of every plane of an [N, C, H, W] input: the
    /// output's flat index, and the flat index of each input row's start (row-major planes) with the window's columns.
    private func forEachWindow(_ shape: [Int], _ body: (Int, StrideTo<Int>, Range<Int>) -> Void) {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let (oh, ow) = outputSize
        for plane in 0..<planes {
            for i in 0..<oh {
                let rows = Self.window(i, size: h, count: oh)
                let rowStarts = Swift.stride(from: (plane * h + rows.lowerBound) * w, to: (plane * h + rows.upperBound) * w, by: w)
                for j in 0..<ow {
                    body((plane * oh + i) * ow + j, rowStarts, Self.window(j, size: w, count: ow))
                }
            }
        }
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let y = Tensor.reuse(&output, shape: [input.shape[0], input.shape[1], outputSize.height, outputSize.width])
        inputShape = input.shape
        let x = input.data, out = y.data
        forEachWindow(input.shape) { o, rowStarts, columns in
            var sum: Float = 0, area = 0
            for start in rowStarts {
                for q in columns { sum += x[start + q] }
                area += columns.count
            }
            out[o] = sum / Float(area)
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        let dx = Tensor.reuseGradient(&inputGradient, shape: inputShape)
        dx.zero()
        let dy = outputGradient.data, d = dx.data
        forEachWindow(inputShape) { o, rowStarts, columns in
            let g = dy[o] / Float(rowStarts.reduce(0) { count, _ in count + columns.count })
            for start in rowStarts { for q in columns { d[start + q] += g } }
        }
        return dx
    }
}
