// 2-D convolution over NCHW tensors. For each input shape a `ConvolutionPlan` chooses, once, how the forward and
// backward passes compute (direct kernels, Winograd, one GEMM as a fully connected layer, or im2col + GEMM, batched
// or in bands); each algorithm's forward and backward pair is in ConvolutionAlgorithms.swift.
//
// Legend: N batch, C input channels, H x W input, CO output channels, G groups, KH x KW kernel,
// OH x OW output, P = OH * OW, K = (C / G) * KH * KW (the rows of a column matrix).
import CNNKernels

public final class Conv2D: Layer, Initializable, ReLUFusing {
    public let kind = "Conv2D"
    public let inputChannels: Int, outputChannels: Int
    public let kernelSize: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: Padding
    public let groups: Int
    public let weightInitializer: Initializer, biasInitializer: Initializer
    /// Weights [CO, C / G, KH, KW], in PyTorch's layout.
    public let weight: Parameter
    /// Biases [CO], or nil.
    public let bias: Parameter?
    /// False for a network's first layer, whose input gradient nobody needs.
    public var computesInputGradient = true
    /// Whether the direct kernels may serve this layer (tests turn them off to compare with the lowered path).
    package var allowsDirectKernels = true
    /// Whether Winograd (F(4x4, 3x3) or F(2x2, 5x5)) may serve this layer (stride 1, one group): forward and both gradients.
    package var allowsWinograd = true
    /// Pads as "same" where the window would not fit the input (`EngineOptions.adaptsWindowsToSmallInputs`, read when
    /// the layer is made): networks built for a smaller input than their own (CIFAR's 32x32 for a 224 network) adapt
    /// as Keras's applications do, a window keeping its stride wherever it fits and giving ceil(input / stride)
    /// where it would not fit the (padded) input.
    public let adaptsToSmallInputs = EngineOptions.current.adaptsWindowsToSmallInputs
    /// Whether the output is written rectified, for the ReLU after this layer (see `ReLUFusing`).
    package var fusesReLU = false
    let appliesReLUDerivative = false
    /// The batch norm after this layer, which inference folds in (set by the `Sequential` that holds both; see
    /// `Sequential.foldsBatchNorm`).
    package var foldedNorm: BatchNorm2D?

    /// How the forward pass in progress finishes each output channel: y * scale + shift, then max(0, .) with `relu`.
    /// The bias and the fused ReLU; at inference with a folded batch norm, the norm's scale and its shift with the
    /// bias folded in, and the ReLU fused into the norm.
    struct OutputFinish {
        let scale: UnsafeMutablePointer<Float>?
        let shift: UnsafeMutablePointer<Float>?
        let relu: Bool

        init(scale: UnsafeMutablePointer<Float>?, shift: UnsafeMutablePointer<Float>?, relu: Bool) {
            (self.scale, self.shift, self.relu) = (scale, shift, relu)
        }
    }
    var finish = OutputFinish(scale: nil, shift: nil, relu: false)
    private var foldedScale: Tensor?, foldedShift: Tensor?

    /// Int8 inference (`Model.quantize`): the input's scale and zero point and the weights' per-channel scales. Inference
    /// then computes in int8 (`Conv2D+Int8.swift`); training ignores it.
    public var int8: Int8Quantization? {
        didSet {
            if let int8 {
                precondition(int8.weightScales.count == outputChannels && int8.weightScales.allSatisfy { $0.isFinite && $0 > 0 },
                             "Conv2D.int8 needs \(outputChannels) positive weight scales")
                precondition((0...255).contains(int8.inputZeroPoint) && int8.inputScale.isFinite && int8.inputScale > 0,
                             "Conv2D.int8 needs an input scale > 0 and a zero point in 0...255")
            }
            int8State.packedFor = nil
        }
    }
    /// The int8 path's buffers and packed weights; while `observesInputRange`, the smallest and largest input seen.
    let int8State = Int8State()

    /// The algorithm a test wants for both passes, where it applies (nil: the plan's own choice).
    package var forcedAlgorithm: ConvolutionPlan.Algorithm?
    /// The plan of the last input shape (made again when the shape, the thread count or Winograd's switch changes).
    private var cachedPlan: ConvolutionPlan?

    private var input: Tensor?
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
    // The algorithms' working buffers, kept between steps.
    var columns: [Tensor] = [], columnGradients: [Tensor] = [], scratch: [Tensor] = []
    var weightGradients: [Tensor?] = [], biasGradients: [Tensor] = []
    /// The Winograd-transformed filter packed for its GEMMs, and what it was made from: the weights' version,
    /// whether it is the input gradient's (flipped) filter, and the instruction set whose GEMM it was packed for (the
    /// micro-kernel's height differs). Inference with unchanged weights reuses it.
    var winogradFilter: Tensor?
    var winogradFilterKey: (version: Int, flipped: Bool, isa: UInt32)?
    /// Each group's weights packed once per pass for the GEMM (W in forward, W^T in backward), when the batch is split
    /// over the threads and each image's GEMM would otherwise pack them again.
    var packedWeights: [Tensor?] = []

    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
        padding: Padding = .valid, groups: Int = 1, bias: Bool = true,
        weightInitializer: Initializer = .glorotUniform, biasInitializer: Initializer = .zeros
    ) {
        precondition(inputChannels % groups == 0 && outputChannels % groups == 0, "groups must divide the channels")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = (kernelSize.0, kernelSize.1)
        self.stride = (stride.0, stride.1)
        self.padding = padding
        self.groups = groups
        self.weightInitializer = weightInitializer
        self.biasInitializer = biasInitializer
        weight = Parameter(Tensor(shape: [outputChannels, inputChannels / groups, kernelSize.0, kernelSize.1]))
        self.bias = bias ? Parameter(Tensor(shape: [outputChannels])) : nil
    }

    public convenience init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Padding = .valid,
        groups: Int = 1, bias: Bool = true, weightInitializer: Initializer = .glorotUniform,
        biasInitializer: Initializer = .zeros
    ) {
        self.init(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: (kernelSize, kernelSize),
                  stride: (stride, stride), padding: padding, groups: groups, bias: bias,
                  weightInitializer: weightInitializer, biasInitializer: biasInitializer)
    }

    public var ownParameters: [(name: String, parameter: Parameter)] {
        [(name: "weight", parameter: weight)] + (bias.map { [(name: "bias", parameter: $0)] } ?? [])
    }

    public func resetParameters(using rng: inout RandomGenerator) {
        let area = kernelSize.height * kernelSize.width
        weightInitializer.fill(&weight.value, fanIn: inputChannels / groups * area, fanOut: outputChannels / groups * area, using: &rng)
        if let bias { biasInitializer.fill(&bias.value, fanIn: inputChannels / groups * area, fanOut: outputChannels, using: &rng) }
    }

    private func geometry(_ inputShape: [Int]) throws -> WindowGeometry {
        let geometry = try WindowGeometry(layer: kind, inputShape: inputShape, kernel: kernelSize, stride: stride, padding: padding,
                                          adapting: adaptsToSmallInputs)
        guard inputShape[1] == inputChannels else {
            throw ShapeError(layer: kind, "expects \(inputChannels) input channels, got \(inputShape[1])")
        }
        return geometry
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try geometry(inputShape)
        return [inputShape[0], outputChannels, g.outputHeight, g.outputWidth]
    }

    public func cost(inputShape: [Int]) -> LayerCost {
        guard let g = try? geometry(inputShape) else { return LayerCost() }
        let outputs = outputChannels * g.outputHeight * g.outputWidth
        let fanIn = inputChannels / groups * kernelSize.height * kernelSize.width
        return LayerCost(connections: outputs * (fanIn + (bias == nil ? 0 : 1)), multiplyAdds: outputs * fanIn)
    }

    /// The plan for `inputShape`, made once per shape.
    package func plan(for inputShape: [Int]) -> ConvolutionPlan {
        let options = EngineOptions.current
        if let cachedPlan, cachedPlan.inputShape == inputShape, cachedPlan.threads == options.threads,
           cachedPlan.winogradAllowed == (allowsWinograd && options.winograd), cachedPlan.forced == forcedAlgorithm {
            return cachedPlan
        }
        let plan = ConvolutionPlan(self, inputShape: inputShape, geometry: try! geometry(inputShape), options: options)
        cachedPlan = plan
        return plan
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let plan = plan(for: input.shape)
        let y = Tensor.reuse(&output, shape: [plan.batch, outputChannels, plan.geometry.outputHeight, plan.geometry.outputWidth])
        self.input = input
        if int8State.observesInputRange { int8State.observe(input) }
        if !training, let norm = foldedNorm {
            let scale = Tensor.reuse(&foldedScale, shape: [outputChannels]), shift = Tensor.reuse(&foldedShift, shape: [outputChannels])
            norm.foldedScaleShift(bias: bias.map { UnsafePointer($0.data) }, scale: scale.data, shift: shift.data)
            finish = OutputFinish(scale: scale.data, shift: shift.data, relu: norm.fusesReLU)
        } else {
            finish = OutputFinish(scale: nil, shift: bias?.data, relu: fusesReLU)
        }
        if !training, let int8, EngineOptions.current.int8 {
            int8Forward(input, plan, int8, into: y)
            return y
        }
        switch plan.forward {
        case .direct, .directChannels: directForward(input, plan, into: y)
        case .winograd: winogradForward(input, plan, into: y)
        case .fullyConnected: fullyConnectedForward(input, plan, into: y)
        case .lowered: loweredForward(input, plan, into: y)
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input else { fatalError("Conv2D.backward before forward") }
        precondition(finish.scale == nil, "Conv2D.backward after an inference forward with a folded batch norm")
        let plan = plan(for: input.shape)
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        switch plan.backward {
        case .fullyConnected: fullyConnectedBackward(input, outputGradient, plan, inputGradient: dx)
        case .winograd: winogradBackward(input, outputGradient, plan, inputGradient: dx)
        case .direct, .directChannels, .lowered: loweredBackward(input, outputGradient, plan, inputGradient: dx)
        }
        return dx
    }
}
