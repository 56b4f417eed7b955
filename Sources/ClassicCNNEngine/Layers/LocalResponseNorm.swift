// Local response normalisation across channels (Krizhevsky, Sutskever and Hinton 2012, "ImageNet classification
// with deep convolutional neural networks", section 3.3), used after AlexNet's first two convolutions and in
// GoogLeNet's stem (Szegedy et al. 2015). The loops are in CNNKernels (lrn.c), with naive twins.
import CNNKernels

/// Normalises each activation by the energy of its neighbours across channels, [N, C, H, W] to the same shape:
///
///     b_c = a_c / (k + alpha' * sum_{j = c - size/2}^{c + (size-1)/2} a_j^2)^beta
///
/// with channels outside `0..<C` read as zero. The window is centred on `c` for an odd `size` and has one more
/// channel before `c` than after it for an even `size`, as `torch.nn.LocalResponseNorm` pads.
///
/// `alpha'` is `alpha / size` when `alphaIsDividedBySize` (the default: PyTorch's `nn.LocalResponseNorm`, Caffe's
/// `LRN` layer and hence the BVLC AlexNet and GoogLeNet models), and `alpha` itself otherwise (the AlexNet paper's
/// formula, whose `alpha = 1e-4` is five times stronger than Caffe's `alpha = 1e-4` with `size = 5`).
public final class LocalResponseNorm: Layer {
    public let kind = "LocalResponseNorm"
    /// The number of channels in a window (the paper's `n`).
    public let size: Int
    /// The strength of the normalisation (divided by `size` or not, see `alphaIsDividedBySize`).
    public let alpha: Float
    /// The exponent of the denominator.
    public let beta: Float
    /// The additive constant of the denominator (Caffe's and PyTorch's default is 1; AlexNet's is 2).
    public let k: Float
    /// Whether `alpha` is divided by `size` (PyTorch, Caffe) or used as is (the AlexNet paper).
    public let alphaIsDividedBySize: Bool
    private var input: Tensor?, output: Tensor?, scale: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    /// AlexNet's values by default (`size` 5, `alpha` 1e-4, `beta` 0.75, `k` 2), in PyTorch's convention unless
    /// `alphaIsDividedBySize` is false.
    public init(size: Int = 5, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 2, alphaIsDividedBySize: Bool = true) {
        precondition(size >= 1, "the window needs at least one channel")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.alphaIsDividedBySize = alphaIsDividedBySize
    }

    /// The coefficient of the window sum of squares.
    package var sumCoefficient: Float { alphaIsDividedBySize ? alpha / Float(size) : alpha }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count >= 2 else {
            throw ShapeError(layer: kind, "expects an N x C (x H x W) input, got \(inputShape.shapeText())")
        }
        return inputShape
    }

    /// Each output reads `size` inputs.
    public func cost(inputShape: [Int]) -> LayerCost {
        LayerCost(connections: inputShape.dropFirst().reduce(1, *) * size, multiplyAdds: inputShape.dropFirst().reduce(1, *) * size)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let (n, c) = (input.shape[0], input.shape[1])
        let p = input.count / max(n * c, 1)
        let y = Tensor.reuse(&output, shape: input.shape)
        let s = Tensor.reuse(&scale, shape: input.shape)
        self.input = input
        let x = input.data, out = y.data, sd = s.data
        let (window, a, b, k) = (Int32(size), sumCoefficient, beta, self.k)
        Parallel.forEachSlice(n, grain: max(1, (1 << 15) / max(c * p, 1))) { images in
            let offset = images.lowerBound * c * p
            cnn_lrn_forward(x + offset, Int32(images.count), Int32(c), Int32(p), window, a, b, k, out + offset, sd + offset)
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input, let output, let scale else { fatalError("LocalResponseNorm.backward before forward") }
        let (n, c) = (input.shape[0], input.shape[1])
        let p = input.count / max(n * c, 1)
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        let x = input.data, y = output.data, sd = scale.data, dy = outputGradient.data, d = dx.data
        let (window, a, b) = (Int32(size), sumCoefficient, beta)
        Parallel.forEachSlice(n, grain: max(1, (1 << 15) / max(c * p, 1))) { images in
            let offset = images.lowerBound * c * p
            cnn_lrn_backward(x + offset, y + offset, sd + offset, dy + offset, Int32(images.count), Int32(c), Int32(p),
                             window, a, b, d + offset)
        }
        return dx
    }
}
