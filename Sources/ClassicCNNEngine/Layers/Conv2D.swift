// 2-D convolution over NCHW tensors, lowered to GEMM per image (im2col, or the input itself for 1x1 stride-1
// kernels). Work is split over the batch when it is at least the thread count, otherwise inside each GEMM.
//
// Legend: N batch, C input channels, H x W input, CO output channels, G groups, KH x KW kernel,
// OH x OW output, P = OH * OW, K = (C / G) * KH * KW (the rows of a column matrix).
import CNNKernels

/// Padding of a convolution or pooling window.
public enum Padding: Sendable, Equatable {
    /// No padding.
    case valid
    /// TensorFlow's "same": the output is ceil(input / stride); the extra row or column, if any, goes bottom/right.
    case same
    /// The same padding on both sides of each dimension (PyTorch's `padding=(h, w)`).
    case symmetric(height: Int, width: Int)
    /// Explicit padding on each side.
    case explicit(top: Int, left: Int, bottom: Int, right: Int)

    public static func uniform(_ amount: Int) -> Padding { .symmetric(height: amount, width: amount) }

    /// Resolves to (top, left, bottom, right) for an input size, kernel size and stride.
    func amounts(height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int)) -> (Int, Int, Int, Int) {
        switch self {
        case .valid: return (0, 0, 0, 0)
        case let .symmetric(h, w): return (h, w, h, w)
        case let .explicit(top, left, bottom, right): return (top, left, bottom, right)
        case .same:
            func split(_ size: Int, _ k: Int, _ s: Int) -> (Int, Int) {
                let out = (size + s - 1) / s
                let total = max((out - 1) * s + k - size, 0)
                return (total / 2, total - total / 2)
            }
            let (top, bottom) = split(height, kernel.0, stride.0)
            let (left, right) = split(width, kernel.1, stride.1)
            return (top, left, bottom, right)
        }
    }
}


/// The output geometry of a window sliding over an image.
package struct WindowGeometry {
    package var outputHeight: Int, outputWidth: Int
    package var padTop: Int, padLeft: Int
    /// The padding after the input as resolved (what ceil mode adds beyond it is not included).
    package var padBottom: Int, padRight: Int

    package init(layer: String, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool = false,
         adapting: Bool = false) throws {
        guard inputShape.count == 4 else {
            throw ShapeError(layer: layer, "expects an N x C x H x W input, got \(inputShape.shapeText())")
        }
        let h = inputShape[2], w = inputShape[3]
        var (top, left, bottom, right) = padding.amounts(height: h, width: w, kernel: kernel, stride: stride)
        if adapting {
            let same = Padding.same.amounts(height: h, width: w, kernel: kernel, stride: stride)
            if h + top + bottom < kernel.0 { (top, bottom) = (same.0, same.2) }
            if w + left + right < kernel.1 { (left, right) = (same.1, same.3) }
        }
        guard [top, left, bottom, right].allSatisfy({ $0 >= 0 }), max(top, bottom) < kernel.0, max(left, right) < kernel.1 else {
            throw ShapeError(layer: layer, "padding (\(top), \(left), \(bottom), \(right)) must be non-negative and smaller than the \(kernel.0)x\(kernel.1) window")
        }
        func out(_ size: Int, _ k: Int, _ s: Int, _ before: Int, _ after: Int) -> Int {
            let span = size + before + after - k
            guard span >= 0 else { return 0 }
            var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
            // As in PyTorch: with ceil mode the last window must start inside the input or the leading padding.
            if ceilMode && (o - 1) * s >= size + before { o -= 1 }
            return o
        }
        outputHeight = out(h, kernel.0, stride.0, top, bottom)
        outputWidth = out(w, kernel.1, stride.1, left, right)
        padTop = top
        padLeft = left
        padBottom = bottom
        padRight = right
        guard outputHeight > 0 && outputWidth > 0 else {
            throw ShapeError(layer: layer, "a \(kernel.0)x\(kernel.1) window does not fit a \(h)x\(w) input")
        }
    }
}

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
    var allowsDirectKernels = true
    /// Whether Winograd (F(4x4, 3x3) or F(2x2, 5x5)) may serve this layer (stride 1, one group): forward and both gradients.
    var allowsWinograd = true
    /// Pads as "same" where the window would not fit the input (`EngineOptions.adaptsWindowsToSmallInputs`, read when
    /// the layer is made): networks built for a smaller input than their own (CIFAR's 32x32 for a 224 network) adapt
    /// as Keras's applications do, a window keeping its stride wherever it fits and giving ceil(input / stride)
    /// where it would not fit the (padded) input.
    public let adaptsToSmallInputs = EngineOptions.current.adaptsWindowsToSmallInputs
    /// Whether the output is written rectified, for the ReLU after this layer (see `ReLUFusing`).
    var fusesReLU = false
    let appliesReLUDerivative = false

    private var input: Tensor?
    private var output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
    private var columns: [Tensor] = [], columnGradients: [Tensor] = [], scratch: [Tensor] = []
    private var weightGradients: [Tensor?] = [], biasGradients: [Tensor] = []
    private var winogradFilter: Tensor?
    /// Each group's weights packed once per pass for the GEMM (W in forward, W^T in backward), when the batch is split
    /// over the threads and each image's GEMM would otherwise pack them again.
    private var packedWeights: [Tensor?] = []

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

    /// Whether the input itself is the column matrix (1x1 kernel, stride 1, no padding).
    private var isPointwise: Bool {
        kernelSize == (1, 1) && stride == (1, 1) && padding.amounts(height: 1, width: 1, kernel: (1, 1), stride: (1, 1)) == (0, 0, 0, 0)
    }

    /// Whether the direct kernels (no lowering) serve this input: stride 1, no padding, one group, few taps.
    private func usesDirectKernels(_ inputShape: [Int], _ g: WindowGeometry) -> Bool {
        guard allowsDirectKernels, groups == 1, stride == (1, 1), g.padTop == 0, g.padLeft == 0,
              inputShape[2] - kernelSize.height + 1 == g.outputHeight, inputShape[3] - kernelSize.width + 1 == g.outputWidth
        else { return false }
        return cnn_conv2d_direct_available(Int32(inputChannels), Int32(kernelSize.height), Int32(kernelSize.width), Int32(g.outputWidth)) != 0
    }

    /// How a batch is lowered. The batch is split into `chunks` contiguous shares, one per thread (or, for a batch
    /// smaller than the thread count, one share whose GEMMs use `gemmThreads`). Within a share, `span` images at a
    /// time are laid side by side in one column matrix and go through one GEMM: for small outputs (LeNet's C5 has
    /// one output position per image) a single image's GEMM is too thin to fill the register tiles.
    ///
    /// The other way round, an image whose column matrix would exceed about 1 MB (GoogLeNet's conv1: 147 x 12,544) is
    /// lowered `band` output rows at a time, so that the GEMM reads each band's columns from the caches just after
    /// im2col wrote them; `band` is the output height otherwise.
    private func plan(batch: Int, k: Int, oh: Int, ow: Int) -> (chunks: Int, gemmThreads: Int, span: Int, band: Int) {
        let threads = Parallel.threads, p = oh * ow
        let (chunks, gemmThreads) = batch >= threads ? (threads, 1) : (1, threads)
        guard !isPointwise else { return (chunks, gemmThreads, 1, oh) }
        let share = (batch + chunks - 1) / chunks
        // Keep a column matrix within about 1 MB, and only batch images whose own GEMM is narrow.
        let span = p >= 4096 ? 1 : Swift.max(1, Swift.min(share, (1 << 18) / Swift.max(k * p, 1)))
        let band = span == 1 && k * p > 1 << 18 ? Swift.max(1, Swift.min(oh, (1 << 18) / Swift.max(k * ow, 1))) : oh
        return (chunks, gemmThreads, span, band)
    }

    /// The column matrix [K, rows * OW] of output rows `firstRow ..< firstRow + rows` of one image in `group`.
    private func lowerBand(_ x: UnsafeMutablePointer<Float>, shape: [Int], geometry g: WindowGeometry, image: Int, group: Int,
                           firstRow: Int, rows: Int, buffer: Tensor) -> UnsafeMutablePointer<Float> {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let cg = c / groups
        // Output row r of the band is output row firstRow + r: the same window with the padding moved up.
        cnn_im2col(x + (image * c + group * cg) * h * w, Int32(cg), Int32(h), Int32(w), Int32(kernelSize.height),
                   Int32(kernelSize.width), Int32(stride.height), Int32(stride.width), Int32(g.padTop - firstRow * stride.height),
                   Int32(g.padLeft), Int32(rows), Int32(g.outputWidth), buffer.data, Int32(rows * g.outputWidth))
        return buffer.data
    }

    /// The column matrix [K, count * P] of images `first ..< first + count` in `group`, the images side by side:
    /// the input itself for a 1x1 stride-1 kernel (no `buffer`), otherwise im2col of each image into `buffer`.
    private func columnMatrix(_ x: UnsafeMutablePointer<Float>, shape: [Int], geometry g: WindowGeometry, images first: Int,
                              count: Int, group: Int, buffer: Tensor?) -> UnsafeMutablePointer<Float> {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let cg = c / groups, p = g.outputHeight * g.outputWidth
        guard let buffer else { return x + (first * c + group * cg) * h * w }
        let col = buffer.data
        for i in 0..<count {
            cnn_im2col(x + ((first + i) * c + group * cg) * h * w, Int32(cg), Int32(h), Int32(w), Int32(kernelSize.height),
                       Int32(kernelSize.width), Int32(stride.height), Int32(stride.width), Int32(g.padTop), Int32(g.padLeft),
                       Int32(g.outputHeight), Int32(g.outputWidth), col + i * p, Int32(count * p))
        }
        return col
    }

    /// Whether Winograd serves this input: a 3x3 or 5x5 stride-1 kernel in one group, with enough channels on both
    /// sides for the 36 GEMMs to be worth their transforms (a first layer's 3 input channels are not), and an output
    /// of at least 8x8 (on GoogLeNet's 7x7 maps a quarter of the tiles' outputs fall outside, and it was slower).
    private func usesWinograd(_ inputShape: [Int], _ g: WindowGeometry) -> Bool {
        allowsWinograd && EngineOptions.current.winograd && groups == 1 && kernelSize.height == kernelSize.width
            && cnn_winograd_available(Int32(kernelSize.height)) != 0 && stride == (1, 1)
            && inputChannels >= 16 && outputChannels >= 16 && g.outputHeight >= 8 && g.outputWidth >= 8
    }

    /// y = the Winograd convolution of x [N, C, H, W]; with `inputGradient`, the input gradient of dY instead
    /// (the 180-degree-turned filter with channels exchanged, and the padding that undoes the forward's).
    private func winograd(_ x: Tensor, geometry g: WindowGeometry, into y: Tensor, inputGradient: Bool) {
        let (c, co) = inputGradient ? (outputChannels, inputChannels) : (inputChannels, outputChannels)
        let r = kernelSize.height
        let u = Tensor.reuse(&winogradFilter, shape: [Int(cnn_winograd_filter_size(Int32(c), Int32(co)))])
        cnn_winograd_transform_filter(weight.data, Int32(outputChannels), Int32(inputChannels), Int32(r), inputGradient ? 1 : 0, u.data)
        let (top, left) = inputGradient ? (r - 1 - g.padTop, r - 1 - g.padLeft) : (g.padTop, g.padLeft)
        cnn_winograd_conv(x.data, Int32(x.shape[0]), Int32(c), Int32(x.shape[2]), Int32(x.shape[3]), u.data,
                          inputGradient ? nil : bias?.value.data, !inputGradient && fusesReLU ? 1 : 0, Int32(co), Int32(r), Int32(top), Int32(left),
                          Int32(y.shape[2]), Int32(y.shape[3]), y.data, Int32(Parallel.threads))
    }

    /// Each group's W_g [cog, K] (or W_g^T [K, cog] when `transposed`) packed for `Gemm.multiply(packedA:)`, when
    /// the batch is split over the threads (`gemmThreads` 1), so that every image's GEMM uses it; nil otherwise.
    private func packWeights(transposed: Bool, gemmThreads: Int, m: Int, k: Int) -> [UnsafePointer<Float>]? {
        guard gemmThreads == 1 else { return nil }
        if packedWeights.count != groups { packedWeights = Array(repeating: nil, count: groups) }
        let cog = outputChannels / groups, fanIn = (inputChannels / groups) * kernelSize.height * kernelSize.width
        return (0..<groups).map { group in
            Gemm.pack(transposeA: transposed, m: m, k: k, a: weight.data + group * cog * fanIn, lda: fanIn, into: &packedWeights[group])
        }
    }

    /// C = W_g B (forward) or W_g^T B (`transposed`: the input gradient's columns) for `group`, n columns, with the
    /// weights packed once by `packWeights` (`packed`) or packed inside the GEMM.
    private func multiplyByWeights(transposed: Bool, packed: [UnsafePointer<Float>]?, group: Int, n: Int, b: UnsafePointer<Float>,
                                   ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, gemmThreads: Int) {
        let cog = outputChannels / groups, k = (inputChannels / groups) * kernelSize.height * kernelSize.width
        let (rows, depth) = transposed ? (k, cog) : (cog, k)
        if let packed {
            Gemm.multiply(packedA: packed[group], m: rows, n: n, k: depth, b: b, ldb: ldb, c: c, ldc: ldc, threads: 1)
        } else {
            Gemm.multiply(transposeA: transposed, m: rows, n: n, k: depth, a: weight.data + group * cog * k, lda: k, b: b, ldb: ldb,
                          c: c, ldc: ldc, threads: gemmThreads)
        }
    }

    private func buffers(_ list: inout [Tensor], count: Int, shape: [Int]) {
        if list.count != count || list.first?.shape != shape { list = (0..<count).map { _ in Tensor(shape: shape) } }
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let g = try! geometry(input.shape)
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let y = Tensor.reuse(&output, shape: [n, outputChannels, oh, ow])
        self.input = input
        let (cg, cog, co) = (c / groups, outputChannels / groups, outputChannels)
        let (kh, kw) = kernelSize
        let k = cg * kh * kw, p = oh * ow
        let pointwise = isPointwise
        let (chunks, gemmThreads, span, band) = plan(batch: n, k: k, oh: oh, ow: ow)
        let x = input.data, wt = weight.data, out = y.data
        let biasData = bias?.value.data
        let relu: Int32 = fusesReLU ? 1 : 0
        /// The bias and the fused ReLU over `count` images from `first` (one pass, or none).
        func finish(_ first: Int, _ count: Int) {
            cnn_add_channel_bias(out + first * co * p, biasData, Int32(count), Int32(co), Int32(p), relu)
        }
        if usesDirectKernels(input.shape, g) {
            Parallel.forEachChunk(n, chunks: chunks) { _, images in
                for image in images {
                    cnn_conv2d_direct_forward(x + image * c * h * w, Int32(c), Int32(h), Int32(w), wt, biasData, relu, Int32(co),
                                              Int32(kh), Int32(kw), Int32(oh), Int32(ow), out + image * co * p)
                }
            }
            return y
        }
        if usesWinograd(input.shape, g) {
            winograd(input, geometry: g, into: y, inputGradient: false)
            return y
        }
        if coversWholeInput(input.shape, g) {
            // The kernel covers the whole unpadded input (LeNet's conv3): a fully connected layer, Y [N, CO] = X [N, K] W^T,
            // with no column matrix at all (im2col would copy K single values per image).
            Gemm.multiply(transposeB: true, m: n, n: co, k: k, a: x, lda: k, b: wt, ldb: k, c: out, ldc: co)
            finish(0, n)
            return y
        }
        if !pointwise { buffers(&columns, count: chunks, shape: [k, band < oh ? band * ow : span * p]) }
        if span > 1 { buffers(&scratch, count: chunks, shape: [cog, span * p]) }
        let packed = packWeights(transposed: false, gemmThreads: gemmThreads, m: cog, k: k)
        Parallel.forEachChunk(n, chunks: chunks) { chunk, images in
            if band < oh {
                // Band by band of output rows: Y_g[:, band] = W_g x the band's columns, written straight into y.
                for image in images {
                    for group in 0..<groups {
                        let target = out + (image * co + group * cog) * p
                        for firstRow in Swift.stride(from: 0, to: oh, by: band) {
                            let rows = Swift.min(band, oh - firstRow), width = rows * ow
                            let col = lowerBand(x, shape: input.shape, geometry: g, image: image, group: group, firstRow: firstRow,
                                                rows: rows, buffer: columns[chunk])
                            multiplyByWeights(transposed: false, packed: packed, group: group, n: width, b: col, ldb: width,
                                              c: target + firstRow * ow, ldc: p, gemmThreads: gemmThreads)
                        }
                    }
                    finish(image, 1)
                }
                return
            }
            for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: span) {
                let count = Swift.min(span, images.upperBound - first), ld = count * p
                for group in 0..<groups {
                    let col = columnMatrix(x, shape: input.shape, geometry: g, images: first, count: count, group: group,
                                           buffer: pointwise ? nil : columns[chunk])
                    // Y_g [cog, count * P] = W_g [cog, K] x col; written straight into y for one image.
                    let target = count == 1 ? out + (first * co + group * cog) * p : scratch[chunk].data
                    multiplyByWeights(transposed: false, packed: packed, group: group, n: ld, b: col, ldb: ld, c: target, ldc: ld,
                                      gemmThreads: gemmThreads)
                    if count > 1 {
                        // [cog, count, P] to [count, co, P]: a transpose of P-long rows (single values for LeNet's conv3).
                        for i in 0..<count {
                            let destination = out + ((first + i) * co + group * cog) * p
                            for o in 0..<cog {
                                let row = target + o * ld + i * p, into = destination + o * p
                                for j in 0..<p { into[j] = row[j] }
                            }
                        }
                    }
                }
                finish(first, count)
            }
        }
        return y
    }

    /// Whether the kernel covers the whole unpadded input, one output position per image (LeNet's conv3): then the
    /// layer is a fully connected one over the flattened image and runs as one GEMM over the batch.
    private func coversWholeInput(_ shape: [Int], _ g: WindowGeometry) -> Bool {
        groups == 1 && kernelSize.height == shape[2] && kernelSize.width == shape[3] && g.outputHeight == 1 && g.outputWidth == 1
            && g.padTop == 0 && g.padLeft == 0
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input else { fatalError("Conv2D.backward before forward") }
        let g = try! geometry(input.shape)
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (cg, cog, co) = (c / groups, outputChannels / groups, outputChannels)
        let (kh, kw) = kernelSize
        let k = cg * kh * kw, p = oh * ow
        let pointwise = isPointwise
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        if coversWholeInput(input.shape, g) {
            // dW [CO, K] += dY^T X; db += the columns' sums of dY [N, CO]; dX [N, K] = dY W.
            let dy = outputGradient.data
            Gemm.multiply(transposeA: true, m: co, n: k, k: n, a: dy, lda: co, b: input.data, ldb: k, beta: 1,
                          c: weight.gradient.data, ldc: k)
            if let bias { cnn_accumulate_channel_sums(dy, bias.gradient.data, Int32(n), Int32(co), 1) }
            if computesInputGradient {
                Gemm.multiply(m: n, n: k, k: co, a: dy, lda: co, b: weight.data, ldb: k, c: dx.data, ldc: k)
            }
            return dx
        }
        if usesWinograd(input.shape, g) {
            // Both gradients over the whole batch in the transformed domain; db sums dY.
            let dy = outputGradient.data
            if let bias { cnn_accumulate_channel_sums(dy, bias.gradient.data, Int32(n), Int32(co), Int32(p)) }
            cnn_winograd_weight_gradient(input.data, Int32(n), Int32(c), Int32(h), Int32(w), dy, Int32(co), Int32(kh), Int32(g.padTop),
                                         Int32(g.padLeft), Int32(oh), Int32(ow), weight.gradient.data, Int32(Parallel.threads))
            if computesInputGradient { winograd(outputGradient, geometry: g, into: dx, inputGradient: true) }
            return dx
        }
        let (chunks, gemmThreads, span, band) = plan(batch: n, k: k, oh: oh, ow: ow)
        if !pointwise {
            buffers(&columns, count: chunks, shape: [k, band < oh ? band * ow : span * p])
            buffers(&columnGradients, count: chunks, shape: [k, band < oh ? band * ow : span * p])
        }
        if span > 1 { buffers(&scratch, count: chunks, shape: [cog, span * p]) }
        // Per-chunk gradient accumulators, summed in chunk order afterwards: the result does not depend on timing.
        // The weights' accumulators come from the gradient pool and go back to it at the end: one layer's at a time.
        if weightGradients.count != chunks { weightGradients = Array(repeating: nil, count: chunks) }
        let partialWeights = (0..<chunks).map { Tensor.reuseGradient(&weightGradients[$0], shape: weight.shape) }
        buffers(&biasGradients, count: chunks, shape: [co])
        let x = input.data, dy = outputGradient.data, dxData = dx.data
        let needDX = computesInputGradient
        let direct = usesDirectKernels(input.shape, g)
        let packed = needDX ? packWeights(transposed: true, gemmThreads: gemmThreads, m: k, k: cog) : nil
        Parallel.forEachChunk(n, chunks: chunks) { chunk, images in
            let dw = partialWeights[chunk].data, db = biasGradients[chunk].data
            partialWeights[chunk].zero()
            biasGradients[chunk].zero()
            cnn_accumulate_channel_sums(dy + images.lowerBound * co * p, db, Int32(images.count), Int32(co), Int32(p))
            if direct {
                for image in images {
                    cnn_conv2d_direct_weight_gradient(x + image * c * h * w, Int32(c), Int32(h), Int32(w), dy + image * co * p,
                                                      Int32(co), Int32(kh), Int32(kw), Int32(oh), Int32(ow), dw)
                }
                guard needDX else { return }
            }
            if band < oh {
                // Band by band of output rows: dW_g += dY_g[:, band] x the band's columns^T; dX gets the band's col2im.
                for image in images {
                    for group in 0..<groups {
                        let dyg = dy + (image * co + group * cog) * p
                        let dxg = dxData + (image * c + group * cg) * h * w
                        if needDX { dxg.update(repeating: 0, count: cg * h * w) }
                        for firstRow in Swift.stride(from: 0, to: oh, by: band) {
                            let rows = Swift.min(band, oh - firstRow), width = rows * ow
                            let bandDY = dyg + firstRow * ow
                            if !direct {
                                let col = lowerBand(x, shape: input.shape, geometry: g, image: image, group: group, firstRow: firstRow,
                                                    rows: rows, buffer: columns[chunk])
                                Gemm.multiply(transposeB: true, m: cog, n: k, k: width, a: bandDY, lda: p, b: col, ldb: width,
                                              beta: 1, c: dw + group * cog * k, ldc: k, threads: gemmThreads)
                            }
                            guard needDX else { continue }
                            let dcol = columnGradients[chunk].data
                            multiplyByWeights(transposed: true, packed: packed, group: group, n: width, b: bandDY, ldb: p, c: dcol,
                                              ldc: width, gemmThreads: gemmThreads)
                            cnn_col2im(dcol, Int32(cg), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(stride.height), Int32(stride.width),
                                       Int32(g.padTop - firstRow * stride.height), Int32(g.padLeft), Int32(rows), Int32(ow), dxg,
                                       Int32(width))
                        }
                    }
                }
                return
            }
            for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: span) {
                let count = Swift.min(span, images.upperBound - first), ld = count * p
                for group in 0..<groups {
                    // dY_g as [cog, count * P]: gathered from the images when there are several.
                    var dyg = dy + (first * co + group * cog) * p
                    if count > 1 {
                        let gathered = scratch[chunk].data
                        for i in 0..<count {
                            for o in 0..<cog {
                                (gathered + o * ld + i * p).update(from: dy + ((first + i) * co + group * cog + o) * p, count: p)
                            }
                        }
                        dyg = gathered
                    }
                    let col = columnMatrix(x, shape: input.shape, geometry: g, images: first, count: count, group: group,
                                           buffer: pointwise ? nil : columns[chunk])
                    // dW_g += dY_g [cog, count * P] x col^T [count * P, K] (unless the direct kernel did it)
                    if !direct {
                        Gemm.multiply(transposeB: true, m: cog, n: k, k: ld, a: dyg, lda: ld, b: col, ldb: ld,
                                      beta: 1, c: dw + group * cog * k, ldc: k, threads: gemmThreads)
                    }
                    guard needDX else { continue }
                    // dcol = W_g^T [K, cog] x dY_g, then scattered back onto each image.
                    if pointwise {
                        let target = dxData + (first * c + group * cg) * h * w
                        multiplyByWeights(transposed: true, packed: packed, group: group, n: p, b: dyg, ldb: p, c: target, ldc: p,
                                          gemmThreads: gemmThreads)
                    } else {
                        let dcol = columnGradients[chunk].data
                        multiplyByWeights(transposed: true, packed: packed, group: group, n: ld, b: dyg, ldb: ld, c: dcol, ldc: ld,
                                          gemmThreads: gemmThreads)
                        for i in 0..<count {
                            let dxg = dxData + ((first + i) * c + group * cg) * h * w
                            dxg.update(repeating: 0, count: cg * h * w)
                            cnn_col2im(dcol + i * p, Int32(cg), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(stride.height),
                                       Int32(stride.width), Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow), dxg, Int32(ld))
                        }
                    }
                }
            }
        }
        accumulate(partialWeights, into: weight.gradient)
        for chunk in 0..<chunks { Tensor.releaseGradient(&weightGradients[chunk]) }
        if let bias { accumulate(biasGradients, into: bias.gradient) }
        return dx
    }
}

/// Adds each of `parts` into `target`, in order.
func accumulate(_ parts: [Tensor], into target: Tensor) {
    for part in parts { cnn_add(target.data, part.data, target.count) }
}
