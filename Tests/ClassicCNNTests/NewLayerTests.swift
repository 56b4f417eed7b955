// The layers of AlexNet, GoogLeNet and the Inception family: LocalResponseNorm, BatchNorm2D, Concat, GlobalAvgPool2D
// and Residual. Backward passes against finite differences, the LRN kernels against their naive twins, golden values
// small enough to check by hand, and LRN and batch normalisation against PyTorch (values produced by
// Scripts/reference/normalization_torch.py, quoted beside each literal).
import CNNKernels
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

/// Elements 0..<count as floats, mapped by `transform` (the `arange` inputs of the golden tests).
private func arange(_ shape: [Int], _ transform: (Float) -> Float = { $0 }) -> Tensor {
    Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { transform(Float($0)) })
}

/// The largest |a - b| / max(1, |b|).
private func maximumError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
}

/// Hides a layer from `gradientMismatches`'s initialisation (so that the values set by a test stay) and optionally
/// runs it in inference mode; its parameters are the wrapped layer's.
private final class Wrapped: Layer {
    let kind = "Wrapped"
    let layer: any Layer, inference: Bool
    init(_ layer: any Layer, inference: Bool = false) {
        self.layer = layer
        self.inference = inference
    }
    var ownParameters: [(name: String, parameter: Parameter)] { layer.namedParameters }
    func outputShape(for inputShape: [Int]) throws -> [Int] { try layer.outputShape(for: inputShape) }
    func forward(_ input: Tensor, training: Bool) -> Tensor { layer.forward(input, training: training && !inference) }
    func backward(_ outputGradient: Tensor) -> Tensor { layer.backward(outputGradient) }
}

@Suite("NewLayer gradients (finite differences)")
struct NewLayerGradientTests {
    static let normalizations: [(size: Int, alpha: Float, beta: Float, k: Float, divided: Bool)] = [
        (5, 1e-4, 0.75, 2, true),   // AlexNet, PyTorch / Caffe convention
        (5, 1e-4, 0.75, 2, false),  // AlexNet, the paper's convention
        (3, 0.5, 0.75, 1, true),
        (4, 0.8, 0.6, 1.5, false),  // even window, general power
        (2, 1, 0.5, 1, true),
        (1, 2, 0.75, 1, false),
        (6, 3, 0.75, 1, true),      // a window wider than the five channels
    ]

    @Test("LocalResponseNorm", arguments: 0..<normalizations.count)
    func localResponseNorm(_ index: Int) {
        let (size, alpha, beta, k, divided) = Self.normalizations[index]
        let layer = LocalResponseNorm(size: size, alpha: alpha, beta: beta, k: k, alphaIsDividedBySize: divided)
        let mismatches = gradientMismatches(layer, inputShape: [2, 5, 3, 3], epsilon: 1e-3, tolerance: 1e-2, samples: 40)
        #expect(mismatches.isEmpty, "\(Self.normalizations[index]): \(mismatches.prefix(3))")
    }

    @Test("BatchNorm2D in training", arguments: [(true, true), (false, false), (false, true), (true, false)])
    func batchNormTraining(_ flags: (Bool, Bool)) {
        let (scale, center) = flags
        let layer = BatchNorm2D(channels: 3, scale: scale, center: center)
        // A weight far from 1 and a non-zero bias, so that both enter the check.
        if let weight = layer.weight { weight.value = Tensor(shape: [3], values: [1.5, -0.7, 0.3]) }
        if let bias = layer.bias { bias.value = Tensor(shape: [3], values: [0.2, -1, 0.5]) }
        let mismatches = gradientMismatches(Wrapped(layer), inputShape: [4, 3, 3, 2], epsilon: 1e-3, tolerance: 1e-2, samples: 40)
        #expect(mismatches.isEmpty, "scale \(scale) center \(center): \(mismatches.prefix(3))")
    }

    @Test func batchNormInferenceBackward() {
        let layer = BatchNorm2D(channels: 2)
        layer.weight!.value = Tensor(shape: [2], values: [2, -0.5])
        layer.bias!.value = Tensor(shape: [2], values: [0.1, 0.3])
        layer.runningMean.value = Tensor(shape: [2], values: [0.2, -0.1])
        layer.runningVar.value = Tensor(shape: [2], values: [0.5, 2])
        let mismatches = gradientMismatches(Wrapped(layer, inference: true), inputShape: [3, 2, 2, 3], epsilon: 1e-3)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
        // Inference leaves the running statistics alone.
        #expect(layer.runningMean.value.values == [0.2, -0.1])
        #expect(layer.runningVar.value.values == [0.5, 2])
    }

    static let concatenations: [(String, () -> Concat, [Int], Bool)] = [
        ("two branches: 3x3 conv and 3x3 average pool", {
            Concat {
                Conv2D(inputChannels: 3, outputChannels: 5, kernelSize: 3, padding: .uniform(1))
                AvgPool2D(kernelSize: 3, stride: 1, padding: .uniform(1))
            }
        }, [2, 3, 5, 5], false),
        ("Inception-style: 1x1, 1x1 -> 3x3, 3x3 max pool -> 1x1", {
            Concat {
                Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 1)
                Sequential {
                    Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 1)
                    Tanh()
                    Conv2D(inputChannels: 2, outputChannels: 6, kernelSize: 3, padding: .uniform(1))
                }
                Sequential {
                    MaxPool2D(kernelSize: 3, stride: 1, padding: .uniform(1))
                    Conv2D(inputChannels: 3, outputChannels: 1, kernelSize: 1)
                }
            }
        }, [2, 3, 4, 5], true),
        ("reduction: stride-2 conv beside stride-2 max pool", {
            Concat {
                Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, stride: 2).named("conv")
                MaxPool2D(kernelSize: 3, stride: 2).named("pool")
            }
        }, [3, 2, 7, 7], true),
    ]

    @Test("Concat", arguments: 0..<concatenations.count)
    func concat(_ index: Int) {
        let (name, make, shape, hasMaxPool) = Self.concatenations[index]
        // With max pooling, a small step on spread-out inputs, so that no window's maximum changes.
        let mismatches = gradientMismatches(make(), inputShape: shape, epsilon: hasMaxPool ? 1e-3 : 1e-2, separated: hasMaxPool)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(3))")
    }

    @Test func globalAveragePooling() {
        #expect(gradientMismatches(GlobalAvgPool2D(), inputShape: [2, 3, 4, 5]).isEmpty)
        #expect(gradientMismatches(GlobalAvgPool2D(keepDimensions: true), inputShape: [3, 2, 3, 3]).isEmpty)
    }

    @Test(arguments: [Float(1), 0.17])
    func residual(_ scale: Float) {
        let layer = Residual(scale: scale) {
            Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: .uniform(1))
            Tanh()
            Conv2D(inputChannels: 4, outputChannels: 3, kernelSize: 1)
        }
        let mismatches = gradientMismatches(layer, inputShape: [2, 3, 4, 4])
        #expect(mismatches.isEmpty, "scale \(scale): \(mismatches.prefix(3))")
    }

    /// An Inception-ResNet block in miniature: branches concatenated, projected, scaled and added.
    @Test func residualAroundConcat() {
        let layer = Residual(scale: 0.2) {
            Concat {
                Conv2D(inputChannels: 4, outputChannels: 2, kernelSize: 1)
                Sequential {
                    Conv2D(inputChannels: 4, outputChannels: 2, kernelSize: 1)
                    Tanh()
                    Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: .uniform(1))
                }
            }
            Conv2D(inputChannels: 5, outputChannels: 4, kernelSize: 1)
        }
        let mismatches = gradientMismatches(layer, inputShape: [2, 4, 3, 3])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
    }
}

@Suite("NewLayer kernels against their naive twins")
struct NewLayerKernelTests {
    @Test("LRN forward and backward equal the naive loops", arguments: [Float(0.75), 0.5, 0.6])
    func lrn(_ beta: Float) {
        let (n, c, p) = (3, 9, 7 * 5)
        // Inputs in [-3, 3) with a large channel now and then (the hard case of a sliding window sum).
        var x = randomTensor([n * c * p], seed: 21).values.map { 3 * $0 }
        for i in stride(from: 0, to: x.count, by: 7 * p) { x[i] = 40 }
        let dy = randomTensor([n * c * p], seed: 22).values
        for size in 1...11 {
            for (alpha, k): (Float, Float) in [(1e-4 / Float(size), 2), (0.3, 1), (2, 0.5)] {
                var y = [Float](repeating: 0, count: x.count), s = y, yNaive = y, sNaive = y, dx = y, dxNaive = y
                cnn_lrn_forward(x, Int32(n), Int32(c), Int32(p), Int32(size), alpha, beta, k, &y, &s)
                cnn_lrn_forward_naive(x, Int32(n), Int32(c), Int32(p), Int32(size), alpha, beta, k, &yNaive, &sNaive)
                #expect(maximumError(y, yNaive) < 1e-6, "y: size \(size) alpha \(alpha) beta \(beta)")
                #expect(maximumError(s, sNaive) < 1e-6, "scale: size \(size) alpha \(alpha) beta \(beta)")
                cnn_lrn_backward(x, yNaive, sNaive, dy, Int32(n), Int32(c), Int32(p), Int32(size), alpha, beta, &dx)
                cnn_lrn_backward_naive(x, yNaive, sNaive, dy, Int32(n), Int32(c), Int32(p), Int32(size), alpha, beta, &dxNaive)
                #expect(maximumError(dx, dxNaive) < 1e-6, "dx: size \(size) alpha \(alpha) beta \(beta)")
            }
        }
    }

    /// The layer splits the batch across threads; the result must not change.
    @Test func lrnLayerIsIndependentOfTheThreadCount() {
        let x = randomTensor([5, 8, 4, 4], seed: 3)
        let one = EngineOptions(threads: 1).run { Tensor(copying: LocalResponseNorm(size: 3, alpha: 0.5).forward(x, training: true)) }
        let four = EngineOptions(threads: 4).run { LocalResponseNorm(size: 3, alpha: 0.5).forward(x, training: true) }
        #expect(one == four)
    }
}

@Suite("NewLayer values")
struct NewLayerValueTests {
    // ---- LocalResponseNorm ----

    /// One position, channels [1, 2, 3], window 3, beta 1, k 1, and a sum coefficient of 1 (alpha 3 divided by the
    /// size, or alpha 1 in the paper's convention): s = 1 + [0+1+4, 1+4+9, 4+9+0] = [6, 15, 14], y = [1/6, 2/15, 3/14].
    @Test func lrnByHand() {
        let x = Tensor(shape: [1, 3, 1, 1], values: [1, 2, 3])
        let expected: [Float] = [1.0 / 6, 2.0 / 15, 3.0 / 14]
        let pytorch = LocalResponseNorm(size: 3, alpha: 3, beta: 1, k: 1)
        let paper = LocalResponseNorm(size: 3, alpha: 1, beta: 1, k: 1, alphaIsDividedBySize: false)
        #expect(maximumError(pytorch(x).values, expected) < 1e-6)
        #expect(maximumError(paper(x).values, expected) < 1e-6)
    }

    /// An even window has one more channel before the centre than after: size 2 on channels [1, 2, 3] sums
    /// [0+1, 1+4, 4+9]; alpha 2 / size 2 = 1, beta 1, k 1: y = [1/2, 2/6, 3/14].
    @Test func lrnEvenWindowByHand() {
        let y = LocalResponseNorm(size: 2, alpha: 2, beta: 1, k: 1)(Tensor(shape: [1, 3, 1, 1], values: [1, 2, 3]))
        #expect(maximumError(y.values, [1.0 / 2, 2.0 / 6, 3.0 / 14]) < 1e-6)
    }

    /// Against torch.nn.LocalResponseNorm on a [1, 6, 2, 2] input (Scripts/reference/normalization_torch.py):
    ///
    ///     big = (torch.arange(24, dtype=torch.float32) - 11) * 2.5
    ///     small = (torch.arange(24, dtype=torch.float32) - 11) / 4
    ///     nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(big.reshape(1, 6, 2, 2))      # alexnet
    ///     nn.LocalResponseNorm(4, alpha=0.5, beta=0.6, k=1.0)(small.reshape(1, 6, 2, 2))      # even
    ///     nn.LocalResponseNorm(3, alpha=0.2 * 3, beta=0.75, k=2.0)(small.reshape(1, 6, 2, 2)) # paper, alpha 0.2
    @Test func lrnAgainstPyTorch() {
        let big = arange([1, 6, 2, 2]) { ($0 - 11) * 2.5 }, small = arange([1, 6, 2, 2]) { ($0 - 11) / 4 }
        let alexnet: [Float] = [-16.215727, -14.768278, -13.311868, -11.847671, -10.318621, -8.8593206, -7.392385, -5.9194179,
                                -4.4171481, -2.9481773, -1.4751143, 0, 1.4751143, 2.9481773, 4.4171481, 5.8800087, 7.392385,
                                8.8593206, 10.318621, 11.768714, 13.311868, 14.768278, 16.215727, 17.65307]
        let even: [Float] = [-1.6562616, -1.6192117, -1.5666752, -1.494576, -1.0353353, -0.96280062, -0.86815101, -0.74728799,
                             -0.44285017, -0.31809339, -0.16975872, 0, 0.18469897, 0.37364399, 0.55409688, 0.71478784,
                             0.84879357, 0.95428014, 1.0333171, 1.0900097, 1.5626719, 1.6046678, 1.6269554, 1.6350145]
        let paper: [Float] = [-0.95008993, -0.93710601, -0.91377395, -0.87738264, -0.59252375, -0.55663157, -0.50622553,
                              -0.43869132, -0.3524079, -0.24777922, -0.12815382, 0, 0.12815382, 0.24777922, 0.3524079,
                              0.43869132, 0.50622553, 0.55663157, 0.59252375, 0.61673564, 0.91377395, 0.93710601,
                              0.95008993, 0.95510882]
        #expect(maximumError(LocalResponseNorm()(big).values, alexnet) < 1e-5)
        #expect(maximumError(LocalResponseNorm(size: 4, alpha: 0.5, beta: 0.6, k: 1)(small).values, even) < 1e-5)
        #expect(maximumError(LocalResponseNorm(size: 3, alpha: 0.2, beta: 0.75, k: 2, alphaIsDividedBySize: false)(small).values, paper) < 1e-5)
    }

    // ---- BatchNorm2D ----

    /// x = arange(8) as [2, 2, 1, 2]: channel 0 holds {0, 1, 4, 5}, channel 1 {2, 3, 6, 7}. Both have variance
    /// 17/4 (biased) and 17/3 (unbiased); the means are 2.5 and 4.5.
    @Test func batchNormByHand() {
        let layer = BatchNorm2D(channels: 2)
        let x = arange([2, 2, 1, 2])
        let y = layer.forward(x, training: true)
        let deviation = (Float(17) / 4 + 1e-5).squareRoot()
        let expected: [Float] = [-2.5, -1.5, -2.5, -1.5, 1.5, 2.5, 1.5, 2.5].map { $0 / deviation }
        #expect(maximumError(y.values, expected) < 1e-6)
        // running = 0.9 * running + 0.1 * batch, with the unbiased variance.
        #expect(maximumError(layer.runningMean.value.values, [0.25, 0.45]) < 1e-7)
        #expect(maximumError(layer.runningVar.value.values, [0.9 + 0.1 * 17 / 3, 0.9 + 0.1 * 17 / 3]) < 1e-6)
        // Inference uses the running statistics, not the batch's.
        let inference = layer.forward(x, training: false).values
        let runningDeviation = (Float(0.9 + 0.1 * 17 / 3) + 1e-5).squareRoot()
        let means: [Float] = [0.25, 0.25, 0.45, 0.45, 0.25, 0.25, 0.45, 0.45]
        #expect(maximumError(inference, zip(x.values, means).map { ($0 - $1) / runningDeviation }) < 1e-6)
        // A second training step compounds: 0.9 * 0.25 + 0.1 * 2.5.
        _ = layer.forward(x, training: true)
        #expect(maximumError(layer.runningMean.value.values, [0.9 * 0.25 + 0.25, 0.9 * 0.45 + 0.45]) < 1e-6)
    }

    /// Against torch.nn.BatchNorm2d(2) (Scripts/reference/normalization_torch.py):
    ///
    ///     x = ((torch.arange(24) * 7 % 11 - 5) / 4).float().reshape(3, 2, 2, 2).requires_grad_()
    ///     r = ((torch.arange(24) % 5 - 2) / 2).float().reshape(3, 2, 2, 2)
    ///     bn = nn.BatchNorm2d(2); bn.weight = [1.5, -0.5]; bn.bias = [0.25, -1.0]
    ///     y = bn(x); (y * r).sum().backward()            # train y, dx, dweight, dbias, running after 1
    ///     bn(x.detach() * 2 + 1)                          # running after 2
    ///     bn.eval(); bn(x.detach())                       # eval y
    @Test func batchNormAgainstPyTorch() {
        let layer = BatchNorm2D(channels: 2)
        layer.weight!.value = Tensor(shape: [2], values: [1.5, -0.5])
        layer.bias!.value = Tensor(shape: [2], values: [0.25, -1])
        let x = arange([3, 2, 2, 2]) { (Float(Int($0) * 7 % 11) - 5) / 4 }
        let r = arange([3, 2, 2, 2]) { (Float(Int($0) % 5) - 2) / 2 }

        let y = layer.forward(x, training: true)
        #expect(maximumError(y.values, [-1.5690049, 1.4869232, -0.25932139, 2.7966068, -1.0740753, -0.36295187, -1.6074179,
                                        -0.89629447, -1.1324437, 1.9234844, 0.17723978, -1.5690049, -1.2518562, -0.54073274,
                                        -1.7851988, -1.0740753, -0.69588256, 2.3600457, 0.61380094, -1.1324437, -1.4296371,
                                        -0.71851361, -0.0073901415, -1.2518562]) < 1e-5)
        let dx = layer.backward(r)
        #expect(maximumError(dx.values, [-1.3096894, -1.1699799, 0.12223548, 0.26194495, -0.75763714, 0.54224169, 0.40082428,
                                         -0.077105656, 1.2049043, 1.3446139, -1.7287824, -0.43656713, -0.015921548, -0.49385148,
                                         -0.63526887, 0.66460991, -0.64611363, -0.5064041, 0.78581125, 2.0780265, 0.72579396,
                                         0.24786402, -0.23006591, -0.3714833]) < 1e-5)
        #expect(maximumError(layer.weight!.gradient.values, [2.4738467, 1.451877]) < 1e-5)
        #expect(maximumError(layer.bias!.gradient.values, [0, -1]) < 1e-5)
        #expect(maximumError(layer.runningMean.value.values, [-0.020833334, 0.014583333]) < 1e-6)
        #expect(maximumError(layer.runningVar.value.values, [0.98049241, 0.9539299]) < 1e-6)

        _ = layer.forward(arange([3, 2, 2, 2]) { (Float(Int($0) * 7 % 11) - 5) / 4 * 2 + 1 }, training: true)
        #expect(maximumError(layer.runningMean.value.values, [0.039583333, 0.14229167]) < 1e-6)
        #expect(maximumError(layer.runningVar.value.values, [1.2044128, 1.0742567]) < 1e-6)

        #expect(maximumError(layer.forward(x, training: false).values,
                             [-1.5125896, 0.87929285, -0.48749709, 1.9043853, -1.0519593, -0.56955189, -1.4137648, -0.93135744,
                              -1.170892, 1.2209903, -0.14579959, -1.5125896, -1.1725612, -0.69015372, -1.5343667, -1.0519593,
                              -0.82919455, 1.5626879, 0.19589789, -1.170892, -1.2931629, -0.81075561, -0.32834822,
                              -1.1725612]) < 1e-5)
    }

    /// torchvision's names; the running statistics are saved but neither counted as trainable nor touched by an optimizer.
    @Test func batchNormParameters() throws {
        let layer = BatchNorm2D(channels: 3)
        #expect(layer.namedParameters.map(\.name) == ["weight", "bias", "running_mean", "running_var"])
        #expect(layer.namedParameters.map(\.parameter.isTrainable) == [true, true, false, false])
        #expect(BatchNorm2D(channels: 3, scale: false).namedParameters.map(\.name) == ["bias", "running_mean", "running_var"])
        #expect(BatchNorm2D(channels: 3, affine: false).namedParameters.map(\.name) == ["running_mean", "running_var"])

        let net = Sequential { BatchNorm2D(channels: 3).named("bn1") }
        var rows: [SummaryRow] = []
        _ = try net.summarize(inputShape: [1, 3, 2, 2], path: "", into: &rows)
        #expect(rows.map(\.name) == ["bn1"])
        #expect(rows[0].parameters == 6 && rows[0].fixedParameters == 6)

        _ = layer.forward(randomTensor([4, 3, 2, 2], seed: 9), training: true)
        for (_, parameter) in layer.namedParameters {
            parameter.gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 1) }
        }
        let runningMean = Tensor(copying: layer.runningMean.value), runningVar = Tensor(copying: layer.runningVar.value)
        SGD(learningRate: 0.5, momentum: 0.9, weightDecay: 0.1).step(layer.namedParameters)
        Adam().step(layer.namedParameters)
        #expect(layer.runningMean.value == runningMean && layer.runningVar.value == runningVar)
        #expect(layer.weight!.value.values != [1, 1, 1])
    }

    // ---- Concat ----

    /// x = arange(8) - 4 as [2, 2, 1, 2], concatenated with ReLU(x): per image, x's two channels then ReLU's two.
    /// With dy = 1, dx = 1 + (x > 0).
    @Test func concatByHand() throws {
        let layer = Concat {
            Sequential {}
            ReLU()
        }
        let x = arange([2, 2, 1, 2]) { $0 - 4 }
        let y = layer.forward(x, training: true)
        #expect(y.shape == [2, 4, 1, 2])
        #expect(y.values == [-4, -3, -2, -1, 0, 0, 0, 0, 0, 1, 2, 3, 0, 1, 2, 3])
        let dx = layer.backward(Tensor(shape: [2, 4, 1, 2], repeating: 1))
        #expect(dx.values == [1, 1, 1, 1, 1, 2, 2, 2])
        #expect(layer.children.map(\.name) == ["branch1", "branch2"])
    }

    @Test func concatShapesAndSummary() throws {
        let layer = Concat {
            Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 1)
            Sequential {
                Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 1)
                ReLU()
                Conv2D(inputChannels: 2, outputChannels: 5, kernelSize: 3, padding: .uniform(1))
            }
            MaxPool2D(kernelSize: 3, stride: 1, padding: .uniform(1)).named("pool")
        }
        #expect(try layer.outputShape(for: [7, 3, 6, 6]) == [7, 12, 6, 6])
        #expect(layer.namedParameters.map(\.name) == ["branch1.weight", "branch1.bias", "branch2.0.weight", "branch2.0.bias",
                                                      "branch2.2.weight", "branch2.2.bias"])
        let net = Sequential { layer.named("inception") }
        var rows: [SummaryRow] = []
        let shape = try net.summarize(inputShape: [1, 3, 6, 6], path: "", into: &rows)
        #expect(shape == [1, 12, 6, 6])
        #expect(rows.map(\.name) == ["inception.branch1", "inception.branch2.0", "inception.branch2.1", "inception.branch2.2",
                                     "inception.pool", "inception"])
        #expect(rows.last!.kind == "Concat" && rows.last!.outputShape == [1, 12, 6, 6])
        let parameters: Int = rows.reduce(0) { $0 + $1.parameters }
        #expect(parameters == 16 + 8 + 95)  // 3*4 + 4, 3*2 + 2, 2*5*9 + 5
        // Branches that disagree on the spatial size.
        let mismatched = Concat {
            Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3)
            MaxPool2D(kernelSize: 3, stride: 1, padding: .uniform(1))
        }
        #expect(throws: ShapeError.self) { try mismatched.outputShape(for: [1, 3, 6, 6]) }
    }

    // ---- GlobalAvgPool2D ----

    /// arange(12) as [1, 3, 2, 2]: the channel means are 1.5, 5.5, 9.5.
    @Test func globalAveragePoolingByHand() throws {
        let x = arange([1, 3, 2, 2])
        #expect(GlobalAvgPool2D()(x) == Tensor(shape: [1, 3], values: [1.5, 5.5, 9.5]))
        let keep = GlobalAvgPool2D(keepDimensions: true)
        #expect(keep.forward(x, training: true) == Tensor(shape: [1, 3, 1, 1], values: [1.5, 5.5, 9.5]))
        #expect(keep.backward(Tensor(shape: [1, 3, 1, 1], values: [4, 8, -4])).values == [1, 1, 1, 1, 2, 2, 2, 2, -1, -1, -1, -1])
        #expect(try GlobalAvgPool2D().outputShape(for: [8, 1024, 7, 7]) == [8, 1024])
        #expect(throws: ShapeError.self) { try GlobalAvgPool2D().outputShape(for: [8, 1024]) }
    }

    // ---- Residual ----

    /// y = x + 0.5 ReLU(x) on arange(6) - 3; dx = dy (1 + 0.5 (x > 0)).
    @Test func residualByHand() throws {
        let layer = Residual(scale: 0.5) { ReLU() }
        let x = arange([1, 1, 2, 3]) { $0 - 3 }
        #expect(layer.forward(x, training: true).values == [-3, -2, -1, 0, 1.5, 3])
        #expect(layer.backward(Tensor(shape: [1, 1, 2, 3], repeating: 2)).values == [2, 2, 2, 2, 3, 3])
    }

    @Test func residualShapesAndNames() throws {
        let layer = Residual(scale: 0.1) {
            Conv2D(inputChannels: 4, outputChannels: 4, kernelSize: 3, padding: .uniform(1)).named("conv2d")
            ReLU()
        }
        #expect(layer.namedParameters.map(\.name) == ["conv2d.weight", "conv2d.bias"])
        var rows: [SummaryRow] = []
        #expect(try Sequential { layer.named("block") }.summarize(inputShape: [1, 4, 5, 5], path: "", into: &rows) == [1, 4, 5, 5])
        #expect(rows.map(\.name) == ["block.conv2d", "block.1", "block"])
        let widening = Residual { Conv2D(inputChannels: 4, outputChannels: 8, kernelSize: 1) }
        #expect(throws: ShapeError.self) { try widening.outputShape(for: [1, 4, 5, 5]) }
    }
}
