// ReLUs fused into the layer before them (Conv2D, Linear, BatchNorm2D; see `ReLUFusing`): the same values, bit for
// bit, as the ReLUs run as layers of their own, on every convolution path (direct, Winograd, im2col, 1x1, whole
// input), inside Concat branches and a Residual body, with the ReLU last in a Sequential (whose gradient belongs to
// the caller and must not be written over); and batch normalisation's kernels against their naive twins.
import CNNKernels
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Fused activations")
struct FusionTests {
    /// One of each fusable pair, and each way a gradient reaches a fused ReLU.
    static func network() -> (Sequential, Residual) {
        let residual = Residual(scale: 1) {
            Conv2D(inputChannels: 16, outputChannels: 16, kernelSize: 3, padding: .uniform(1))  // Winograd, 8x8
            ReLU()  // last in the body: its gradient is the Residual's, read again after
        }
        let network = Sequential {
            Conv2D(inputChannels: 1, outputChannels: 8, kernelSize: 5)  // the direct kernel
            ReLU()
            MaxPool2D(kernelSize: 2)
            Conv2D(inputChannels: 8, outputChannels: 16, kernelSize: 3, padding: .uniform(1))  // im2col (8 input channels)
            ReLU()
            Conv2D(inputChannels: 16, outputChannels: 16, kernelSize: 3, padding: .uniform(1), bias: false)  // Winograd
            BatchNorm2D(channels: 16)
            ReLU()
            Concat {
                Sequential {
                    Conv2D(inputChannels: 16, outputChannels: 8, kernelSize: 1)  // pointwise
                    ReLU()
                }
                Sequential {
                    Conv2D(inputChannels: 16, outputChannels: 8, kernelSize: 3, stride: 2, padding: .uniform(1), bias: false)
                    BatchNorm2D(channels: 8)
                    ReLU()
                    Upsample()
                }
            }
            residual
            Conv2D(inputChannels: 16, outputChannels: 12, kernelSize: 8)  // covers the whole input: one GEMM
            ReLU()
            Flatten()
            Linear(inputFeatures: 12, outputFeatures: 10)
            ReLU()
            Linear(inputFeatures: 10, outputFeatures: 5)
            ReLU()  // last: the caller's gradient
        }
        return (network, residual)
    }

    /// The output, the input gradient and every parameter gradient, with the ReLUs fused or not.
    static func run(fused: Bool) -> [[Float]] {
        let (network, residual) = network()
        for case let sequential as Sequential in network.allLayers + [residual.body] { sequential.fusesActivations = fused }
        var rng = RandomGenerator(seed: 21)
        for layer in network.allLayers { (layer as? Initializable)?.resetParameters(using: &rng) }
        let x = randomTensor([3, 1, 20, 20], seed: 22)
        let y = network.forward(x, training: true)
        let dy = randomTensor(y.shape, seed: 23)
        let kept = dy.values
        let dx = network.backward(dy)
        #expect(zip(dy.values, kept).filter { $0 != $1 }.count == 0, "the caller's gradient must not be written over")
        return [y.values, dx.values] + network.namedParameters.map(\.parameter.gradient.values)
    }

    @Test func fusedReLUsGiveTheSameValuesBitForBit() {
        let fused = Self.run(fused: true), separate = Self.run(fused: false)
        #expect(fused.count == separate.count)
        for (index, (a, b)) in zip(fused, separate).enumerated() {
            #expect(a.count == b.count && zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count == 0, "tensor \(index) differs")
        }
        // Not vacuous: ReLUs cut off part of the output and of the gradients.
        #expect(fused[0].contains(0) && fused[0].contains { $0 > 0 })
        #expect(fused[1].contains { $0 != 0 })
    }

    @Test func sequentialsArrangeTheFusionAndTurnItOff() {
        let (network, _) = Self.network()
        let conv = network.layers[0] as! Conv2D, relu = network.layers[1] as! ReLU
        let norm = network.layers[6] as! BatchNorm2D, normReLU = network.layers[7] as! ReLU
        #expect(conv.fusesReLU && relu.fusion == .forward)
        #expect(norm.fusesReLU && normReLU.fusion == .full)
        network.fusesActivations = false
        #expect(!conv.fusesReLU && relu.fusion == .none && !norm.fusesReLU && normReLU.fusion == .none)
        // A ReLU after a layer that cannot take it stays a layer of its own.
        let pooled = Sequential { MaxPool2D(kernelSize: 2); ReLU() }
        #expect((pooled.layers[1] as! ReLU).fusion == .none)
    }

    @Test func featureMapsShowTheConvolutionBeforeItsReLU() throws {
        let model = try ModelZoo.make("lenet5", seed: 3)
        let image = randomTensor(model.inputShape, seed: 4)
        let maps = model.featureMaps(of: image)
        let first = try #require(maps.first)
        #expect(first.kind == "Conv2D" && first.maps.values.contains { $0 < 0 }, "a convolution's maps have negative values")
        let conv = try #require(model.network.allLayers.first { $0 is Conv2D } as? Conv2D)
        #expect(conv.fusesReLU, "the walk turns the fusion back on")
    }

    static let normShapes: [(n: Int, c: Int, p: Int)] = [(1, 1, 1), (2, 3, 17), (4, 5, 49), (3, 2, 16), (2, 4, 3136)]

    @Test("batch normalisation's sums equal their naive twins", arguments: 0..<normShapes.count)
    func batchNormKernels(_ index: Int) {
        let s = Self.normShapes[index]
        // An offset far from zero checks the shifted one-pass variance: at 300 a kernel without the shift fails by 1.5
        // to 9 times the tolerance (tried 2026-12-07); a review found that the earlier 50 let it pass.
        let x = randomTensor([s.n * s.c * s.p], seed: 31).values.map { $0 * 3 + 300 }
        let dy = randomTensor([x.count], seed: 32).values, y = randomTensor([x.count], seed: 33).values
        for c in 0..<s.c {
            var mean = 0.0, variance = 0.0, naiveMean = 0.0, naiveVariance = 0.0
            cnn_channel_moments(x, Int32(s.n), Int32(s.c), Int32(s.p), Int32(c), &mean, &variance)
            cnn_channel_moments_naive(x, Int32(s.n), Int32(s.c), Int32(s.p), Int32(c), &naiveMean, &naiveVariance)
            #expect(abs(mean - naiveMean) <= 1e-5 * abs(naiveMean))
            #expect(abs(variance - naiveVariance) <= 1e-4 * max(naiveVariance, 1e-3), "shape \(index), channel \(c)")
            for masked in [false, true] {
                var sum = 0.0, weighted = 0.0, naiveSum = 0.0, naiveWeighted = 0.0
                let inv = Float(1 / (naiveVariance + 1e-5).squareRoot())
                y.withUnsafeBufferPointer { yb in
                    let mask = masked ? yb.baseAddress : nil
                    cnn_bn_gradient_sums(x, dy, mask, Int32(s.n), Int32(s.c), Int32(s.p), Int32(c), Float(naiveMean), inv, &sum, &weighted)
                    cnn_bn_gradient_sums_naive(x, dy, mask, Int32(s.n), Int32(s.c), Int32(s.p), Int32(c), Float(naiveMean), inv,
                                               &naiveSum, &naiveWeighted)
                }
                #expect(abs(sum - naiveSum) <= 1e-4 * max(1, abs(naiveSum)))
                #expect(abs(weighted - naiveWeighted) <= 1e-4 * max(1, abs(naiveWeighted)))
            }
        }
    }
}

/// Nearest-neighbour 2x upsampling: brings the stride-2 branch back to its sibling's size in the test network.
private final class Upsample: Layer {
    let kind = "Upsample"
    private var inputShape: [Int] = []
    func outputShape(for inputShape: [Int]) throws -> [Int] { [inputShape[0], inputShape[1], inputShape[2] * 2, inputShape[3] * 2] }
    func forward(_ input: Tensor, training: Bool) -> Tensor {
        inputShape = input.shape
        let (planes, h, w) = (input.shape[0] * input.shape[1], input.shape[2], input.shape[3])
        var values = [Float](repeating: 0, count: planes * 4 * h * w)
        let x = input.values
        for q in 0..<planes { for i in 0..<(2 * h) { for j in 0..<(2 * w) { values[(q * 2 * h + i) * 2 * w + j] = x[(q * h + i / 2) * w + j / 2] } } }
        return Tensor(shape: try! outputShape(for: input.shape), values: values)
    }
    func backward(_ outputGradient: Tensor) -> Tensor {
        let (planes, h, w) = (inputShape[0] * inputShape[1], inputShape[2], inputShape[3])
        var values = [Float](repeating: 0, count: planes * h * w)
        let g = outputGradient.values
        for q in 0..<planes { for i in 0..<(2 * h) { for j in 0..<(2 * w) { values[(q * h + i / 2) * w + j / 2] += g[(q * 2 * h + i) * 2 * w + j] } } }
        return Tensor(shape: inputShape, values: values)
    }
}
