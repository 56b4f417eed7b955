// Every layer's backward pass against finite differences of its forward pass.
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Layer gradients (finite differences)")
struct LayerGradientTests {
    static let convolutions: [(String, () -> Conv2D, [Int])] = [
        ("3x3", { Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3) }, [2, 3, 7, 6]),
        ("5x5 stride 2 padding 2", { Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 5, stride: 2, padding: .uniform(2)) }, [3, 2, 9, 9]),
        ("groups 2", { Conv2D(inputChannels: 4, outputChannels: 6, kernelSize: 3, padding: .uniform(1), groups: 2) }, [2, 4, 5, 5]),
        ("1x1 pointwise", { Conv2D(inputChannels: 5, outputChannels: 3, kernelSize: 1) }, [2, 5, 4, 3]),
        ("1x3 same", { Conv2D(inputChannels: 2, outputChannels: 2, kernelSize: (1, 3), padding: .same) }, [1, 2, 5, 6]),
        ("4x4 stride 4 same, no bias", { Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 4, stride: 4, padding: .same, bias: false) }, [2, 2, 10, 11]),
        ("batch 1", { Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: 3, stride: 2) }, [1, 3, 8, 8]),
        // The kernel covers the whole input (LeNet's C5/conv3): the one-GEMM fully connected path.
        ("kernel = input", { Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 5) }, [3, 3, 5, 5]),
        ("kernel = input, no bias", { Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: (3, 4), bias: false) }, [2, 2, 3, 4]),
    ]

    @Test("Conv2D", arguments: 0..<convolutions.count)
    func conv(_ index: Int) {
        let (name, make, shape) = Self.convolutions[index]
        let layer = make()
        let mismatches = gradientMismatches(layer, inputShape: shape)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(3))")
    }

    @Test func linear() {
        #expect(gradientMismatches(Linear(inputFeatures: 7, outputFeatures: 5), inputShape: [3, 7]).isEmpty)
        // Rank-4 input read as [N, features].
        #expect(gradientMismatches(Linear(inputFeatures: 12, outputFeatures: 4), inputShape: [2, 3, 2, 2]).isEmpty)
    }

    @Test(arguments: ["relu", "sigmoid", "tanh", "scaledTanh"])
    func activations(_ name: String) {
        let layer: any Layer = switch name {
        case "relu": ReLU()
        case "sigmoid": Sigmoid()
        case "tanh": Tanh()
        default: ScaledTanh()
        }
        let mismatches = gradientMismatches(layer, inputShape: [2, 3, 4, 5], epsilon: 1e-3)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(3))")
    }

    @Test func maxPoolingOverlapping() {
        #expect(gradientMismatches(MaxPool2D(kernelSize: 3, stride: 2), inputShape: [2, 3, 9, 9], epsilon: 1e-3, separated: true).isEmpty)
        #expect(gradientMismatches(MaxPool2D(kernelSize: 3, stride: 2, padding: .uniform(1), ceilMode: true),
                                   inputShape: [1, 2, 8, 8], epsilon: 1e-3, separated: true).isEmpty)
    }

    @Test func averagePooling() {
        #expect(gradientMismatches(AvgPool2D(kernelSize: 2), inputShape: [2, 3, 6, 6]).isEmpty)
        #expect(gradientMismatches(AvgPool2D(kernelSize: 3, stride: 2, padding: .uniform(1)), inputShape: [1, 2, 7, 7]).isEmpty)
        #expect(gradientMismatches(AvgPool2D(kernelSize: 3, stride: 1, padding: .uniform(1), countIncludesPadding: false),
                                   inputShape: [1, 2, 5, 5]).isEmpty)
    }

    @Test func flatten() {
        #expect(gradientMismatches(Sequential { Flatten(); Linear(inputFeatures: 24, outputFeatures: 3) }, inputShape: [2, 2, 3, 4]).isEmpty)
    }

    @Test func dropoutWithAFixedMask() {
        let layer = Dropout(rate: 0.4)
        let mismatches = gradientMismatches(layer, inputShape: [3, 20], prepare: { layer.rng = RandomGenerator(seed: 5) })
        #expect(mismatches.isEmpty)
        // And inference is the identity.
        let x = randomTensor([2, 5], seed: 3)
        #expect(layer.forward(x, training: false) == x)
    }

    @Test func adaptiveAveragePooling() {
        // PyTorch's windows for 14 -> 4: [0, 4), [3, 7), [7, 11), [10, 14).
        #expect((0..<4).map { AdaptiveAvgPool2D.window($0, size: 14, count: 4) } == [0..<4, 3..<7, 7..<11, 10..<14])
        #expect(gradientMismatches(AdaptiveAvgPool2D(outputSize: (4, 3)), inputShape: [2, 2, 14, 9]).isEmpty)
    }

    /// An auxiliary head's loss (times its weight) reaches the shared layers: the gradient of
    /// L = CE(main) + 0.3 CE(aux) with respect to the first convolution, against finite differences.
    @Test func auxiliaryClassifierAddsItsWeightedLoss() throws {
        let conv = Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3)
        let network = Sequential {
            conv
            ReLU()
            AuxiliaryClassifier(weight: 0.3) { Flatten(); Linear(inputFeatures: 3 * 4 * 4, outputFeatures: 5) }.named("aux")
            Flatten()
            Linear(inputFeatures: 3 * 4 * 4, outputFeatures: 5)
        }
        let model = Model(name: "tiny", configuration: ModelConfiguration(inputSize: 6, classes: 5, inputChannels: 2),
                          network: network, loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 2))
        model.initialize(seed: 3)
        let x = randomTensor([3, 2, 6, 6], seed: 4)
        let labels: [Int32] = [0, 4, 2]
        func totalLoss() -> Double {
            _ = model.network.forward(x, training: true)
            let main = labels.withUnsafeBufferPointer { model.loss.evaluate(output: model.network.forward(x, training: true), labels: $0, computeGradient: false) }
            let aux = labels.withUnsafeBufferPointer { model.auxiliaries[0].evaluateLoss(labels: $0) }
            return Double(main + aux) / 3
        }
        #expect(model.auxiliaries.count == 1 && model.parameterCount - model.inferenceParameterCount == 3 * 16 * 5 + 5)
        for (_, p) in model.parameters { p.zeroGradient() }
        let output = model.network.forward(x, training: true)
        _ = labels.withUnsafeBufferPointer { model.loss.evaluate(output: output, labels: $0, computeGradient: true) }
        _ = labels.withUnsafeBufferPointer { model.auxiliaries[0].evaluateLoss(labels: $0) }
        _ = model.network.backward(model.loss.gradient)
        let analytic = Tensor(copying: conv.weight.gradient)
        let epsilon: Float = 1e-3
        for i in Swift.stride(from: 0, to: conv.weight.count, by: 7) {
            let original = conv.weight.value[i]
            conv.weight.value[i] = original + epsilon
            let plus = totalLoss()
            conv.weight.value[i] = original - epsilon
            let minus = totalLoss()
            conv.weight.value[i] = original
            let numeric = (plus - minus) / Double(2 * epsilon)
            #expect(abs(numeric - Double(analytic[i])) < 2e-3 * max(1, abs(numeric)), "weight[\(i)]: \(analytic[i]) vs \(numeric)")
        }
        // At inference the head is skipped and costs nothing.
        _ = model.forward(x)
        #expect(model.auxiliaries[0].output == nil)
    }

    @Test func subsampling() {
        #expect(gradientMismatches(Subsampling(channels: 3), inputShape: [2, 3, 6, 8]).isEmpty)
    }

    @Test func partiallyConnectedConvolution() {
        let layer = PartiallyConnectedConv2D(inputChannels: 6, table: LeNet5.c3Connections, kernelSize: 5)
        let mismatches = gradientMismatches(layer, inputShape: [2, 6, 14, 14])
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
    }

    @Test func euclideanRBF() {
        #expect(gradientMismatches(EuclideanRBF(centres: LeNet5.rbfCentres), inputShape: [3, 84]).isEmpty)
        #expect(gradientMismatches(EuclideanRBF(centres: randomTensor([4, 6], seed: 2), trainable: true), inputShape: [2, 6]).isEmpty)
    }

    /// Whole networks: the smooth 1998 network with the usual step; the ReLU / max-pool one with a step small enough
    /// that no unit crosses a kink or a pooling tie. (A model's first layer skips its input gradient.)
    @Test(arguments: [("lenet5-1998", Float(1e-2)), ("lenet5", Float(1e-4))])
    func wholeNetwork(_ name: String, _ epsilon: Float) throws {
        let model = try ModelZoo.make(name)
        let mismatches = gradientMismatches(model.network, inputShape: [2, 1, 32, 32], epsilon: epsilon, samples: 12, separated: true, checkInput: false)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(3))")
    }
}

@Suite("Loss gradients")
struct LossGradientTests {
    static let losses: [(String, () -> any ClassificationLoss)] = [
        ("softmax cross-entropy", { SoftmaxCrossEntropy() }),
        ("label smoothing 0.1", { SoftmaxCrossEntropy(labelSmoothing: 0.1) }),
        ("mean squared error", { MeanSquaredError() }),
        ("LeNet-5 RBF MAP", { RBFMaximumAPosteriori() }),
    ]

    @Test(arguments: 0..<losses.count)
    func lossGradient(_ index: Int) {
        let (name, make) = Self.losses[index]
        let loss = make()
        var output = randomTensor([4, 6], seed: 11)
        if name.contains("RBF") { output = Tensor(shape: output.shape, values: output.values.map { 3 * abs($0) }) }
        let labels: [Int32] = [0, 5, 2, 2]
        func mean(_ o: Tensor) -> Double {
            Double(labels.withUnsafeBufferPointer { loss.evaluate(output: o, labels: $0, computeGradient: false) }) / 4
        }
        _ = labels.withUnsafeBufferPointer { loss.evaluate(output: output, labels: $0, computeGradient: true) }
        let analytic = Tensor(copying: loss.gradient)
        let epsilon: Float = 1e-3
        for i in 0..<output.count {
            let original = output[i]
            output[i] = original + epsilon
            let plus = mean(output)
            output[i] = original - epsilon
            let minus = mean(output)
            output[i] = original
            let numeric = (plus - minus) / Double(2 * epsilon)
            #expect(abs(numeric - Double(analytic[i])) < 2e-3, "\(name) [\(i)]: \(analytic[i]) vs \(numeric)")
        }
    }

    @Test func softmaxCrossEntropyIsStableForHugeLogits() {
        let loss = SoftmaxCrossEntropy()
        let output = Tensor(shape: [1, 3], values: [1000, -1000, 0])
        let value = [Int32(1)].withUnsafeBufferPointer { loss.evaluate(output: output, labels: $0, computeGradient: true) }
        #expect(abs(value - 2000) < 1e-2)
        #expect(loss.gradient.values.allSatisfy { $0.isFinite })
    }
}
