// Batch norm folded into the convolution before it at inference (`Sequential.foldsBatchNorm`), and what the
// convolution keeps between inference calls (the Winograd filter, transformed and packed once per change of the
// weights): the same logits as the unfolded network within 1e-5 relative, on every network of the registry with
// batch norm, with running statistics far from their initial values; a change of the weights by any route is seen
// by the next call; training is unaffected.
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNZoo

@Suite("Batch norm folding")
struct FoldingTests {
    /// Every batch norm's scale, shift and running statistics drawn at random (variances in [0.25, 2.25)), and every
    /// convolution's bias, so that folding has something to fold.
    static func randomizeNorms(_ network: any Layer, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        for case let conv as Conv2D in network.allLayers {
            conv.bias?.value = Tensor(shape: [conv.outputChannels], values: (0..<conv.outputChannels).map { _ in rng.uniform(-0.2, 0.2) })
        }
        for case let norm as BatchNorm2D in network.allLayers {
            norm.runningMean.value = Tensor(shape: [norm.channels], values: (0..<norm.channels).map { _ in rng.uniform(-0.5, 0.5) })
            norm.runningVar.value = Tensor(shape: [norm.channels], values: (0..<norm.channels).map { _ in rng.uniform(0.25, 2.25) })
            norm.weight?.value = Tensor(shape: [norm.channels], values: (0..<norm.channels).map { _ in rng.uniform(0.5, 1.5) })
            norm.bias?.value = Tensor(shape: [norm.channels], values: (0..<norm.channels).map { _ in rng.uniform(-0.5, 0.5) })
        }
    }

    static func setFolding(_ network: any Layer, _ folds: Bool) {
        for case let sequential as Sequential in [network] + network.allLayers { sequential.foldsBatchNorm = folds }
    }

    /// The largest difference between two outputs, relative to the largest magnitude of the second.
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = b.values.map(abs).max() ?? 1
        return zip(a.values, b.values).map { abs($0 - $1) }.max()! / max(scale, 1e-30)
    }

    // (network, input size): each registry network with batch norm, at a small input to keep the suite quick.
    static let networks: [(String, Int)] = [
        ("vgg11-bn", 32), ("googlenet-torchvision", 64), ("inception-v2", 64), ("inception-v3", 75), ("inception-v4", 75),
        ("inception-resnet-v1", 75), ("inception-resnet-v2", 75),
    ]

    @Test("folded and unfolded networks give the same logits", arguments: 0..<networks.count)
    func foldedLogits(_ index: Int) throws {
        let (name, size) = Self.networks[index]
        let model = try ModelZoo.make(name, inputSize: size, classes: 10, seed: 7)
        let norms = model.network.allLayers.compactMap { $0 as? BatchNorm2D }
        #expect(!norms.isEmpty)
        Self.randomizeNorms(model.network, seed: 8)
        let x = randomTensor([2] + model.inputShape, seed: 9)
        Self.setFolding(model.network, false)
        let unfolded = Tensor(copying: model.forward(x))
        Self.setFolding(model.network, true)
        // Not vacuous: the batch norms that follow a convolution are folded, and those pass their input through.
        let folded = norms.filter(\.isFolded)
        #expect(folded.count * 10 >= norms.count * 9, "\(folded.count) of \(norms.count) batch norms folded")
        let y = model.forward(x)
        let error = Self.relativeError(y, unfolded)
        #expect(error <= 1e-5, "\(name): relative error \(error)")
        #expect(y.values != unfolded.values || name != "vgg11-bn", "the biases fold in: rounding differs somewhere")
    }

    @Test func theFoldedNormPassesItsInputThroughAtInferenceOnly() {
        let conv = Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, bias: false)
        let norm = BatchNorm2D(channels: 4)
        let network = Sequential { conv; norm; ReLU() }
        #expect(network.foldsBatchNorm && conv.foldedNorm === norm && norm.isFolded)
        Self.randomizeNorms(network, seed: 2)
        let x = randomTensor([2, 4, 5, 5], seed: 3)
        #expect(norm.forward(x, training: false).values == x.values)
        #expect(norm.forward(x, training: true).values != x.values)
        network.foldsBatchNorm = false
        #expect(conv.foldedNorm == nil && !norm.isFolded)
        #expect(norm.forward(x, training: false).values != x.values)
    }

    /// A network of the Winograd, lowered and pointwise convolutions with batch norms after them.
    static func smallNetwork() -> Model {
        let network = Sequential {
            Conv2D(inputChannels: 3, outputChannels: 16, kernelSize: 3, padding: .uniform(1))  // lowered (3 channels)
            BatchNorm2D(channels: 16)
            ReLU()
            Conv2D(inputChannels: 16, outputChannels: 16, kernelSize: 3, padding: .uniform(1), bias: false)  // Winograd
            BatchNorm2D(channels: 16)
            ReLU()
            Conv2D(inputChannels: 16, outputChannels: 8, kernelSize: 1)  // pointwise
            BatchNorm2D(channels: 8)
            GlobalAvgPool2D()
            Flatten()
            Linear(inputFeatures: 8, outputFeatures: 5)
        }
        let model = Model(name: "small", configuration: ModelConfiguration(inputSize: 12, classes: 5, inputChannels: 3),
                          network: network, loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 3))
        model.initialize(seed: 4)
        return model
    }

    /// A fresh network with `model`'s parameters: nothing kept from earlier calls.
    static func fresh(like model: Model) throws -> Model {
        let copy = smallNetwork()
        try copy.loadParameters(model.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) })
        return copy
    }

    @Test func inferenceSeesEveryChangeOfTheWeights() throws {
        let model = Self.smallNetwork()
        Self.randomizeNorms(model.network, seed: 5)
        let x = randomTensor([3, 3, 12, 12], seed: 6)
        let winograd = model.network.allLayers.compactMap { $0 as? Conv2D }[1]
        #expect(winograd.plan(for: [3, 16, 12, 12]).forward == .winograd)
        func check(_ what: String) throws {
            let kept = model.forward(x), expected = try Self.fresh(like: model).forward(x)
            #expect(kept.values.map(\.bitPattern) == expected.values.map(\.bitPattern), "after \(what)")
        }
        try check("the first call")
        let before = Tensor(copying: model.forward(x))
        // Assigned.
        winograd.weight.value = randomTensor(winograd.weight.shape, seed: 10)
        try check("an assignment")
        // Changed in place through a mutating method.
        winograd.weight.value.withUnsafeMutableBufferPointer { $0[0] += 1 }
        try check("a change in place")
        // Written through a pointer kept from elsewhere, then marked.
        let pointer = UnsafeMutablePointer(mutating: winograd.weight.value.withUnsafeBufferPointer { $0.baseAddress! })
        pointer[1] -= 1
        winograd.weight.markChanged()
        try check("a write marked as a change")
        // A training step, and the running statistics it moves.
        let labels: [Int32] = [0, 1, 2]
        model.trainStep(batch: x, labels: labels, optimizer: SGD(learningRate: 0.1, momentum: 0.9))
        try check("a training step")
        // A checkpoint's values.
        let other = Self.smallNetwork()
        other.initialize(seed: 11)
        try model.loadParameters(other.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) })
        try check("loading parameters")
        #expect(model.forward(x).values != before.values)
    }

    @Test func inferenceBetweenTrainingStepsChangesNothing() throws {
        let x = randomTensor([4, 3, 12, 12], seed: 12)
        let labels: [Int32] = [0, 1, 2, 3]
        func train(evaluating: Bool) -> [[Float]] {
            let model = Self.smallNetwork()
            let optimizer = SGD(learningRate: 0.05, momentum: 0.9)
            for _ in 0..<3 {
                if evaluating { _ = model.forward(x) }
                model.trainStep(batch: x, labels: labels, optimizer: optimizer)
            }
            return model.parameters.map(\.parameter.value.values)
        }
        let plain = train(evaluating: false), interleaved = train(evaluating: true)
        #expect(plain.map { $0.map(\.bitPattern) } == interleaved.map { $0.map(\.bitPattern) })
    }
}
