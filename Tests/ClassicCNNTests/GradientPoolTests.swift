// Gradient buffers shared through `GradientPool` and given back as soon as they are read: training with the pool
// gives the same values, bit for bit, as every layer keeping its own buffers, in the networks whose gradients take
// every path (Concat branches, auxiliary heads, scaled residuals, the Inception modules' wrappers, dropout).
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Gradient pool", .serialized)
struct GradientPoolTests {
    /// The loss of two training steps and every parameter after them, at 32 x 32 with batch 2.
    static func train(_ name: String, pooled: Bool) throws -> [[Float]] {
        try EngineOptions.with({ $0.poolsGradients = pooled }) { try trainTwoSteps(name) }
    }

    static func trainTwoSteps(_ name: String) throws -> [[Float]] {
        let model = try ModelZoo.make(name, inputSize: 32, classes: 10, seed: 5)
        let optimizer = SGD(learningRate: 0.01, momentum: 0.9)
        var losses: [Float] = []
        for step in 0..<2 {
            let batch = randomTensor([2, 3, 32, 32], seed: UInt64(10 + step))
            losses.append(model.trainStep(batch: batch, labels: [3, 8], optimizer: optimizer).loss)
        }
        return [losses] + model.parameters.map(\.parameter.value.values)
    }

    @Test("training with the pool equals training without, bit for bit",
          arguments: ["googlenet-torchvision", "inception-v3", "inception-resnet-v1", "alexnet-cifar"])
    func poolChangesNoValue(_ name: String) throws {
        let pooled = try Self.train(name, pooled: true), kept = try Self.train(name, pooled: false)
        #expect(pooled.count == kept.count)
        for (index, (a, b)) in zip(pooled, kept).enumerated() {
            let same = a.map(\.bitPattern) == b.map(\.bitPattern)
            #expect(same, "\(name): tensor \(index) differs")
        }
    }

    @Test func aLayerGivesItsBufferBackAndTakesOneAgain() {
        let conv = Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3)
        var rng = RandomGenerator(seed: 1)
        conv.resetParameters(using: &rng)
        let x = randomTensor([1, 3, 13, 11], seed: 2)
        let y = conv.forward(x, training: true)
        let first = conv.backward(randomTensor(y.shape, seed: 3)).values
        conv.releaseGradients()
        conv.releaseGradients()  // a second release gives nothing back twice
        let again = conv.backward(randomTensor(y.shape, seed: 3)).values
        #expect(first.map(\.bitPattern) == again.map(\.bitPattern), "a buffer from the pool holds old values; the layer must overwrite them")
    }
}
