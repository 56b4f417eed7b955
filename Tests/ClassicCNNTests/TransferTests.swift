// Transfer learning: weights loaded by name and shape into a network with other classes, frozen layers, and the
// fine-tuning experiment of the README (MNIST digits 0-4, then 5-9 with the features frozen).
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Transfer learning")
struct TransferTests {
    static func mnist(_ split: MNIST.Split) throws -> ImageDataset { try MNIST.load(split, from: sharedDataRoot() + "/mnist") }

    @Test func matchingTensorsLoadAndANewClassifierKeepsItsInitialisation() throws {
        let trained = try ModelZoo.make("lenet5", seed: 1)
        let directory = freshDirectory("init")
        try Checkpoint.save(model: trained, optimizer: nil, info: CheckpointInfo(model: "lenet5", configuration: trained.configuration,
                                                                                 epoch: 1, dataset: "mnist"), to: directory + "/a.safetensors")
        let five = try ModelZoo.make("lenet5", classes: 5, seed: 9)
        let fresh = five.parameters.map { $0.parameter.value }
        let report = try five.loadMatching(try SafeTensors.read(path: directory + "/a.safetensors").tensors)
        #expect(report.initialized == ["fc2.weight", "fc2.bias"])
        #expect(report.skipped.map(\.name) == ["fc2.weight", "fc2.bias"] && report.skipped[0].reason.contains("[10, 84]"))
        #expect(report.loaded.count == five.parameters.count - 2)
        for ((name, parameter), (original, freshValue)) in zip(five.parameters, zip(trained.parameters, fresh)) {
            if name.hasPrefix("fc2") {
                #expect(parameter.value == freshValue)
            } else {
                #expect(parameter.value == original.parameter.value, "\(name) was not loaded")
            }
        }
        // Nothing in common: refused with the reason.
        let alien = [NamedTensor(name: "features.0.weight", shape: [1], values: [0])]
        #expect { try five.loadMatching(alien) } throws: { "\($0)".contains("none of the file's 1 tensors fits") }
    }

    /// A small network with batch norm: frozen convolution and batch norm keep their weights and statistics bit for bit,
    /// get no gradient (backward stops before them), and the classifier learns.
    @Test func frozenLayersStayAsTheyAreAndCostNoGradients() throws {
        func make() -> Model {
            let network = Sequential([
                Conv2D(inputChannels: 1, outputChannels: 4, kernelSize: 3).named("conv"), BatchNorm2D(channels: 4).named("bn"),
                ReLU().named("relu"), Flatten().named("flatten"), Linear(inputFeatures: 4 * 6 * 6, outputFeatures: 3).named("fc"),
            ])
            let model = Model(name: "small", configuration: ModelConfiguration(inputSize: 8, classes: 3, inputChannels: 1),
                              network: network, loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 1))
            model.initialize(seed: 3)
            return model
        }
        let model = make()
        #expect(try model.freeze(["conv", "bn"]) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"])
        #expect(model.trainableParameterCount == 4 * 36 * 3 + 3 && model.parameterCount == model.trainableParameterCount + 40 + 8)
        let before = model.parameters.map { $0.parameter.value.values }
        let optimizer = SGD(learningRate: 0.1, momentum: 0.9)
        for step in 0..<5 {
            model.trainStep(batch: randomTensor([4, 1, 8, 8], seed: UInt64(step)), labels: [0, 1, 2, 1], optimizer: optimizer)
        }
        for ((name, parameter), old) in zip(model.parameters, before) {
            if name.hasPrefix("fc") {
                #expect(parameter.value.values != old, "\(name) should learn")
            } else {
                #expect(parameter.value.values == old, "\(name) is frozen but changed")
                #expect(parameter.gradient.values.allSatisfy { $0 == 0 }, "\(name) got a gradient")
            }
        }
        #expect(throws: ConfigurationError.self) { try make().freeze(["features"]) }
        // Prefixes match whole path components: "con" is not "conv".
        #expect(throws: ConfigurationError.self) { try make().freeze(["con"]) }
    }

    /// The README's experiment (Benchmarks/FineTune measures it over seeds and step counts): LeNet-5 trained on digits
    /// 0-4, then given 5-9 with a new classifier. Starting from its weights beats starting from scratch for the same
    /// steps; with the convolutions frozen it learns too, at a fraction of the cost per step.
    @Test func fineTuningBeatsTrainingFromScratchOnNewDigits() throws {
        let train = try Self.mnist(.train), test = try Self.mnist(.test)
        let firstTrain = try train.selecting(classes: [0, 1, 2, 3, 4])
        let secondTrain = try train.selecting(classes: [5, 6, 7, 8, 9]), secondTest = try test.selecting(classes: [5, 6, 7, 8, 9])
        #expect(secondTest.count == 4_861 && secondTest.classNames.first == "5")
        var options = TrainingOptions()
        options.epochs = 1
        options.seed = 1
        let base = try ModelZoo.make("lenet5", classes: 5, seed: 1)
        try Trainer(model: base, optimizer: Adam(), trainingSet: firstTrain, validationSet: nil, options: options).fit()
        let features = base.parameters.filter { !$0.name.hasPrefix("fc2") }
            .map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) }

        options.stepsPerEpoch = 100
        func accuracy(loading: [NamedTensor], frozen: [String]) throws -> Double {
            let model = try ModelZoo.make("lenet5", classes: 5, seed: 2)
            if !loading.isEmpty { try model.loadMatching(loading) }
            options.frozen = frozen
            try Trainer(model: model, optimizer: Adam(), trainingSet: secondTrain, validationSet: nil, options: options).fit()
            if !frozen.isEmpty { #expect(model.parameters[0].parameter.gradient.values.allSatisfy { $0 == 0 }, "conv1 got a gradient") }
            return try Evaluation.run(model: model, dataset: secondTest).accuracy
        }
        let scratch = try accuracy(loading: [], frozen: [])
        let tuned = try accuracy(loading: features, frozen: [])
        let frozen = try accuracy(loading: features.filter { $0.name.hasPrefix("conv") }, frozen: ["conv1", "conv2", "conv3"])
        #expect(tuned > scratch, "from digits 0-4 \(tuned), from scratch \(scratch)")
        #expect(frozen > 0.75, "with the convolutions frozen \(frozen)")
    }
}
