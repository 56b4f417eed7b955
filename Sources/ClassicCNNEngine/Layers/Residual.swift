// A residual connection y = x + scale * f(x) (He, Zhang, Ren and Sun 2016, "Deep residual learning for image
// recognition", equation 1), with the scaling of Inception-ResNet (Szegedy, Ioffe, Vanhoucke and Alemi 2017,
// "Inception-v4, Inception-ResNet and the impact of residual connections on learning", section 3.3: residuals
// scaled by 0.1 to 0.3 before the addition). The activation after the sum is a separate layer.
//
//     Residual(scale: 0.17) {
//         Concat { ... }
//         Conv2D(inputChannels: 128, outputChannels: 320, kernelSize: 1)
//     }

/// y = x + scale * f(x), where f is the body built like a `Sequential` and must keep the input's shape.
///
/// The body's layers are this layer's children directly (no `body.` level in parameter paths), as in timm's
/// `Block35`, whose `branch0` and `conv2d` sit beside each other.
public final class Residual: Layer {
    public let kind = "Residual"
    /// The factor of the residual branch (1 for ResNet).
    public let scale: Float
    /// f.
    public let body: Sequential
    private var output: Tensor?, inputGradient: Tensor?, scaledGradient: Tensor?

    public init(scale: Float = 1, @LayerBuilder _ build: () -> [LayerEntry]) {
        self.scale = scale
        body = Sequential(build())
    }

    public var children: [(name: String, layer: any Layer)] { body.children }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let shape = try body.outputShape(for: inputShape)
        guard shape == inputShape else {
            throw ShapeError(layer: kind, "the body maps \(inputShape.shapeText()) to \(shape.shapeText()); the sum needs the same shape")
        }
        return shape
    }

    /// The body's rows (paths `0`, `1`, ... under this layer's path), then this layer's own row for the sum.
    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        let shape = try body.summarize(inputShape: inputShape, path: path, into: &rows)
        guard shape == inputShape else {
            throw ShapeError(layer: kind, "the body maps \(inputShape.shapeText()) to \(shape.shapeText()); the sum needs the same shape")
        }
        rows.append(SummaryRow(name: path.isEmpty ? kind : path, kind: kind, outputShape: shape, parameters: 0,
                               fixedParameters: 0, cost: cost(inputShape: inputShape)))
        return shape
    }

    /// One addition per element (and a multiplication unless the scale is 1).
    public func cost(inputShape: [Int]) -> LayerCost {
        let values = inputShape.dropFirst().reduce(1, *)
        return LayerCost(connections: 2 * values, multiplyAdds: scale == 1 ? 0 : values)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let fx = body.forward(input, training: training)
        precondition(fx.shape == input.shape, "Residual: the body maps \(input.shape) to \(fx.shape)")
        let y = Tensor.reuse(&output, shape: input.shape)
        let x = input.data, f = fx.data, out = y.data, s = scale
        Parallel.forEachSlice(input.count) { range in
            for i in range { out[i] = x[i] + s * f[i] }
        }
        return y
    }

    /// dx = dy + f'(x)^T (scale * dy): the body sees the scaled gradient, so that its parameters get theirs scaled too.
    public func backward(_ outputGradient: Tensor) -> Tensor {
        let dy = outputGradient.data, s = scale
        var g = outputGradient
        if scale != 1 {
            g = Tensor.reuseGradient(&scaledGradient, shape: outputGradient.shape)
            let scaled = g.data
            Parallel.forEachSlice(outputGradient.count) { range in
                for i in range { scaled[i] = s * dy[i] }
            }
        }
        // A scaled copy is this layer's own (a fused ReLU may mask it in place); dY itself is read again below.
        let df = body.backward(g, overwriting: scale != 1).data
        let dx = Tensor.reuseGradient(&inputGradient, shape: outputGradient.shape)
        let d = dx.data
        Parallel.forEachSlice(outputGradient.count) { range in
            for i in range { d[i] = dy[i] + df[i] }
        }
        body.releaseGradients()
        Tensor.releaseGradient(&scaledGradient)
        return dx
    }

    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
}
