// How a convolution computes for one input shape, decided once per shape: which algorithm serves the forward pass
// and which the backward pass, and how a lowered batch is split over the threads. The algorithms themselves, one
// forward and backward pair each, are in ConvolutionAlgorithms.swift.
import CNNKernels

package struct ConvolutionPlan: Equatable {
    package enum Algorithm: Equatable, CaseIterable {
        /// The direct kernels, without lowering: stride 1, no padding, one group, few taps (LeNet's C1). Backward,
        /// the weight gradient is direct and the input gradient lowered.
        case direct
        /// The kernels vectorised over 16 output channels, on AVX2: stride 1, no padding, one group, fewer than 16
        /// input channels with 76 to 512 taps, at least 16 output channels (LeNet's conv2, where lowering costs as
        /// much as the GEMM). Backward, the weight gradient is direct and the input gradient lowered.
        case directChannels
        /// Winograd's minimal filtering, F(4x4, 3x3) or F(2x2, 5x5): stride 1, one group, at least 16 channels in and
        /// out, an output of at least 8x8. Forward, input gradient and weight gradient in the transformed domain.
        case winograd
        /// The kernel covers the whole unpadded input (LeNet's conv3): a fully connected layer over the flattened
        /// image, one GEMM over the batch with no column matrix.
        case fullyConnected
        /// im2col + GEMM per image (the input itself for a 1x1 stride-1 kernel), several small images side by side
        /// in one GEMM or one large image in bands of output rows: any convolution.
        case lowered
    }

    let inputShape: [Int]
    package let geometry: WindowGeometry
    package let forward: Algorithm
    /// `.direct` and `.directChannels` here mean the lowered backward pass with a direct weight gradient.
    package let backward: Algorithm
    /// What the plan was made for: the thread count, whether Winograd was allowed, the algorithm a test forced.
    let threads: Int, winogradAllowed: Bool, forced: Algorithm?

    /// How a lowered batch is split. The batch goes in `chunks` contiguous shares, one per thread (or, for a batch
    /// smaller than the thread count, one share whose GEMMs use `gemmThreads`). Within a share, `span` images at a
    /// time are laid side by side in one column matrix and go through one GEMM: for small outputs (LeNet's C5 has
    /// one output position per image) a single image's GEMM is too thin to fill the register tiles. The other way
    /// round, an image whose column matrix would exceed about 1 MB (GoogLeNet's conv1: 147 x 12,544) is lowered
    /// `band` output rows at a time, so that the GEMM reads each band's columns from the caches just after im2col
    /// wrote them; `band` is the output height otherwise.
    package let chunks: Int, gemmThreads: Int, span: Int, band: Int
    /// The input itself is the column matrix (1x1 kernel, stride 1, no padding).
    package let pointwise: Bool

    var batch: Int { inputShape[0] }
    /// K = (C / G) * KH * KW, the rows of a column matrix.
    let k: Int

    init(_ conv: Conv2D, inputShape: [Int], geometry g: WindowGeometry, options: EngineOptions) {
        self.inputShape = inputShape
        geometry = g
        threads = options.threads
        winogradAllowed = conv.allowsWinograd && options.winograd
        forced = conv.forcedAlgorithm
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        k = conv.inputChannels / conv.groups * conv.kernelSize.height * conv.kernelSize.width
        pointwise = conv.kernelSize == (1, 1) && conv.stride == (1, 1)
            && conv.padding.amounts(height: 1, width: 1, kernel: (1, 1), stride: (1, 1)) == (0, 0, 0, 0)

        let allowed = winogradAllowed
        let applicable = Set(Algorithm.allCases.filter {
            Self.applies($0, to: conv, inputShape: inputShape, geometry: g, winogradAllowed: allowed)
        })
        if let forced = conv.forcedAlgorithm {
            precondition(applicable.contains(forced), "\(forced) does not apply to this convolution")
            forward = forced
            backward = forced
        } else {
            // The forward pass prefers the direct kernels, the backward pass the fully connected GEMMs and Winograd.
            forward = [.direct, .directChannels, .winograd, .fullyConnected].first(where: applicable.contains) ?? .lowered
            backward = [.fullyConnected, .winograd, .direct, .directChannels].first(where: applicable.contains) ?? .lowered
        }

        let p = oh * ow
        (chunks, gemmThreads) = inputShape[0] >= threads ? (threads, 1) : (1, threads)
        if pointwise {
            (span, band) = (1, oh)
        } else {
            let share = (inputShape[0] + chunks - 1) / chunks
            if p <= 64 && k * p * share <= 1 << 23 {
                // Small maps (VGG's 512 channels at 4x4 and 2x2 on CIFAR-10): a few images' GEMM is a few dozen
                // columns wide and, backward, a weight-gradient product only as deep as their positions, which
                // reads and writes the whole dW each time. The share goes through one GEMM instead while its column
                // matrix stays within 32 MB.
                span = share
            } else {
                // Keep a column matrix within about 1 MB, and only batch images whose own GEMM is narrow.
                span = p >= 4096 ? 1 : Swift.max(1, Swift.min(share, (1 << 18) / Swift.max(k * p, 1)))
            }
            if span == 1 && k * p > 1 << 18 {
                // Within about 1 MB, but at least 256 columns wide (a GEMM narrower than that runs far below its
                // peak: Inception v3's 3x3 stride-2 on 35x35 with 288 channels, K = 2,592, went 5 rows of 17 at a
                // time), then evened out so that the last band is not a sliver.
                let rows = Swift.min(oh, Swift.max((1 << 18) / Swift.max(k * ow, 1), (256 + ow - 1) / ow, 1))
                let bands = (oh + rows - 1) / rows
                band = (oh + bands - 1) / bands
            } else {
                band = oh
            }
        }
    }

    /// What both direct algorithms need: direct kernels allowed, one group, stride 1 and no padding on any side.
    private static func unpaddedUnitStride(_ conv: Conv2D, inputShape: [Int], geometry g: WindowGeometry) -> Bool {
        conv.allowsDirectKernels && conv.groups == 1 && conv.stride == (1, 1) && g.padTop == 0 && g.padLeft == 0
            && inputShape[2] - conv.kernelSize.height + 1 == g.outputHeight
            && inputShape[3] - conv.kernelSize.width + 1 == g.outputWidth
    }

    /// Whether `algorithm` can compute `conv` on `inputShape` (`.lowered` always can).
    package static func applies(_ algorithm: Algorithm, to conv: Conv2D, inputShape: [Int], geometry g: WindowGeometry,
                        winogradAllowed: Bool) -> Bool {
        switch algorithm {
        case .direct:
            // Not 1x1: the input itself is then the GEMM's operand, which was 4 to 5 times faster (GoogLeNet's
            // 64-channel 1x1 on 56x56 maps at batch 1: 0.58 ms direct, 0.08 ms as a GEMM, AVX-512).
            guard unpaddedUnitStride(conv, inputShape: inputShape, geometry: g),
                  conv.kernelSize.height * conv.kernelSize.width > 1
            else { return false }
            return cnn_conv2d_direct_available(Int32(conv.inputChannels), Int32(conv.kernelSize.height),
                                               Int32(conv.kernelSize.width), Int32(g.outputWidth)) != 0
        case .directChannels:
            guard unpaddedUnitStride(conv, inputShape: inputShape, geometry: g) else { return false }
            return cnn_conv2d_direct_channels_available(Int32(conv.inputChannels), Int32(conv.kernelSize.height),
                                                        Int32(conv.kernelSize.width), Int32(conv.outputChannels)) != 0
        case .winograd:
            // Enough channels on both sides for the 36 GEMMs to be worth their transforms (a first layer's 3 input
            // channels are not), and an output of at least 8x8 (on GoogLeNet's 7x7 maps a quarter of the tiles'
            // outputs fall outside, and it was slower) or one that whole tiles cover (VGG's 4x4 maps on CIFAR-10:
            // one F(4x4, 3x3) tile per image, no output wasted).
            let tile = conv.kernelSize.height == 3 ? 4 : 2
            func fits(_ size: Int) -> Bool { size >= 8 || size % tile == 0 && size >= tile }
            return winogradAllowed && conv.groups == 1 && conv.kernelSize.height == conv.kernelSize.width
                && cnn_winograd_available(Int32(conv.kernelSize.height)) != 0 && conv.stride == (1, 1)
                && conv.inputChannels >= 16 && conv.outputChannels >= 16 && fits(g.outputHeight) && fits(g.outputWidth)
        case .fullyConnected:
            return conv.groups == 1 && conv.kernelSize.height == inputShape[2] && conv.kernelSize.width == inputShape[3]
                && g.outputHeight == 1 && g.outputWidth == 1 && g.padTop == 0 && g.padLeft == 0
        case .lowered:
            return true
        }
    }
}
