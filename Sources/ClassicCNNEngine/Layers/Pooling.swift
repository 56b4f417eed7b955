// Max and average pooling over NCHW tensors; overlapping windows (AlexNet's 3x3 stride 2) and padding allowed.
import CNNKernels

/// What max and average pooling share: a window sliding over each plane, and the shapes and costs it gives.
package protocol SlidingWindowPool: Layer {
    var kernelSize: (Int, Int) { get }
    var stride: (Int, Int) { get }
    var padding: Padding { get }
    var ceilMode: Bool { get }
    var adaptsToSmallInputs: Bool { get }
}

extension SlidingWindowPool {
    func geometry(_ shape: [Int]) throws -> WindowGeometry {
        try WindowGeometry(layer: kind, inputShape: shape, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                           adapting: adaptsToSmallInputs)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try geometry(inputShape)
        return [inputShape[0], inputShape[1], g.outputHeight, g.outputWidth]
    }

    /// One connection per window position and element; pooling has no multiply-adds.
    public func cost(inputShape: [Int]) -> LayerCost {
        guard let out = try? outputShape(for: inputShape) else { return LayerCost() }
        return LayerCost(connections: out.dropFirst().reduce(1, *) * kernelSize.0 * kernelSize.1)
    }
}

public final class MaxPool2D: SlidingWindowPool {
    public let kind = "MaxPool2D"
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool
    /// Pads as "same" where the window would not fit the input (`EngineOptions.adaptsWindowsToSmallInputs`).
    public let adaptsToSmallInputs = EngineOptions.current.adaptsWindowsToSmallInputs
    private var inputShape: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
    private var argmax: [Int32] = []

    /// `stride` defaults to the kernel size; `ceilMode` rounds the output size up (Caffe's rule, used by GoogLeNet).
    public init(kernelSize: Int, stride: Int? = nil, padding: Padding = .valid, ceilMode: Bool = false) {
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = padding
        self.ceilMode = ceilMode
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let g = try! geometry(input.shape)
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let y = Tensor.reuse(&output, shape: [n, c, g.outputHeight, g.outputWidth])
        inputShape = input.shape
        let planeOut = g.outputHeight * g.outputWidth
        let x = input.data, out = y.data
        func pool(_ idx: UnsafeMutablePointer<Int32>?) {
            Parallel.forEachSlice(n * c, grain: max(1, 4096 / max(planeOut, 1))) { planes in
                cnn_maxpool_forward(x + planes.lowerBound * h * w, Int32(planes.count), Int32(h), Int32(w),
                                    Int32(kernelSize.0), Int32(kernelSize.1), Int32(stride.0), Int32(stride.1),
                                    Int32(g.padTop), Int32(g.padLeft), Int32(g.outputHeight), Int32(g.outputWidth),
                                    out + planes.lowerBound * planeOut, idx.map { $0 + planes.lowerBound * planeOut })
            }
        }
        // Inference keeps no indices: backward needs them, nothing else does.
        guard training else {
            pool(nil)
            return y
        }
        if argmax.count != y.count { argmax = [Int32](repeating: 0, count: y.count) }
        argmax.withUnsafeMutableBufferPointer { pool($0.baseAddress!) }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (outputGradient.shape[2], outputGradient.shape[3])
        let dx = Tensor.reuseGradient(&inputGradient, shape: inputShape)
        let dy = outputGradient.data, d = dx.data
        precondition(argmax.count == outputGradient.count, "MaxPool2D.backward needs a forward pass in training mode first")
        argmax.withUnsafeBufferPointer { indices in
            let idx = indices.baseAddress!
            Parallel.forEachSlice(n * c, grain: max(1, 4096 / max(oh * ow, 1))) { planes in
                cnn_maxpool_backward(dy + planes.lowerBound * oh * ow, idx + planes.lowerBound * oh * ow,
                                     Int32(planes.count), Int32(h), Int32(w), Int32(oh), Int32(ow), d + planes.lowerBound * h * w)
            }
        }
        return dx
    }
}

public final class AvgPool2D: SlidingWindowPool {
    public let kind = "AvgPool2D"
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool
    /// Pads as "same" where the window would not fit the input (`EngineOptions.adaptsWindowsToSmallInputs`).
    public let adaptsToSmallInputs = EngineOptions.current.adaptsWindowsToSmallInputs
    /// Whether padded positions count in the divisor (PyTorch's default: true).
    public let countIncludesPadding: Bool
    private var inputShape: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(kernelSize: Int, stride: Int? = nil, padding: Padding = .valid, ceilMode: Bool = false,
                countIncludesPadding: Bool = true) {
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = padding
        self.ceilMode = ceilMode
        self.countIncludesPadding = countIncludesPadding
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let g = try! geometry(input.shape)
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let y = Tensor.reuse(&output, shape: [n, c, g.outputHeight, g.outputWidth])
        inputShape = input.shape
        let planeOut = g.outputHeight * g.outputWidth
        let x = input.data, out = y.data
        Parallel.forEachSlice(n * c, grain: max(1, 4096 / max(planeOut, 1))) { planes in
            cnn_avgpool_forward(x + planes.lowerBound * h * w, Int32(planes.count), Int32(h), Int32(w),
                                Int32(kernelSize.0), Int32(kernelSize.1), Int32(stride.0), Int32(stride.1),
                                Int32(g.padTop), Int32(g.padLeft), Int32(g.outputHeight), Int32(g.outputWidth),
                                countIncludesPadding ? 1 : 0, out + planes.lowerBound * planeOut)
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        let g = try! geometry(inputShape)
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let dx = Tensor.reuseGradient(&inputGradient, shape: inputShape)
        let dy = outputGradient.data, d = dx.data
        Parallel.forEachSlice(n * c, grain: max(1, 4096 / max(oh * ow, 1))) { planes in
            cnn_avgpool_backward(dy + planes.lowerBound * oh * ow, Int32(planes.count), Int32(h), Int32(w),
                                 Int32(kernelSize.0), Int32(kernelSize.1), Int32(stride.0), Int32(stride.1),
                                 Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow),
                                 countIncludesPadding ? 1 : 0, d + planes.lowerBound * h * w)
        }
        return dx
    }
}
