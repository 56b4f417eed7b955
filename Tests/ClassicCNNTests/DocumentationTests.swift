// The DocC articles' code (Sources/ClassicCNNEngine/ClassicCNNEngine.docc), run as tests so that it cannot fall
// behind the library. Only the amount of data and epochs differ from the articles, to keep the suite short.
import Foundation
import Testing
import ClassicCNN
import TestSupport

/// "Add a network of your own": the table and the builder, word for word.
enum TinyVGG {
    /// Output channels of each 3x3 convolution; nil is a 2x2 max pooling.
    static let table: [Int?] = [32, 32, nil, 64, 64, nil]
}

extension TinyVGG {
    static func network(_ configuration: ModelConfiguration) throws -> Model {
        var layers: [LayerEntry] = []
        var channels = configuration.inputChannels
        for (index, row) in table.enumerated() {
            if let outputs = row {
                layers.append(Conv2D(inputChannels: channels, outputChannels: outputs, kernelSize: 3,
                                     padding: .same).named("conv\(index)"))
                layers.append(ReLU().named("relu\(index)"))
                channels = outputs
            } else {
                layers.append(MaxPool2D(kernelSize: 2).named("pool\(index)"))
            }
        }
        let features = Sequential(layers)
        let input = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        let shape = try features.outputShape(for: input)
        let network = Sequential {
            features.named("features")
            Flatten().named("flatten")
            Linear(inputFeatures: shape.dropFirst().reduce(1, *), outputFeatures: configuration.classes).named("fc")
        }
        return Model(name: "tiny-vgg", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .unit(channels: configuration.inputChannels))
    }

    static let descriptor = ModelDescriptor(
        name: "tiny-vgg", title: "A small VGG for CIFAR-10", reference: "Simonyan and Zisserman 2014, cut down",
        defaultInputSize: 32, defaultClasses: 10, inputChannels: 3, defaultDataset: "cifar10",
        build: { try network($0) })
}

@Suite("Documentation articles", .serialized)
struct DocumentationTests {
    static var mnist: String { get throws { try sharedDataRoot() + "/mnist" } }

    @Test func trainLeNet5FromSwift() throws {
        let model = try ModelZoo.make("lenet5", seed: 0)
        let rows = try model.summary()
        #expect(rows.map(\.parameters).reduce(0, +) == 61_706 && model.parameterCount == 61_706)

        let train = try MNIST.load(.train, from: try Self.mnist).prefix(640)
        let test = try MNIST.load(.test, from: try Self.mnist).prefix(320)
        let directory = NSTemporaryDirectory() + "docs-lenet5-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let options = TrainingOptions(epochs: 2, batchSize: 32, checkpointDirectory: directory)
        let trainer = Trainer(model: model, optimizer: Adam(learningRate: 0.001), trainingSet: train,
                              validationSet: test, options: options)
        let epochs = try trainer.fit()
        #expect(epochs.count == 2 && epochs.last!.validationAccuracy! > 0.5)

        let report = try Evaluation.run(model: model, dataset: test)
        #expect(report.accuracy == epochs.last!.validationAccuracy!)

        var run = try SavedRun(path: directory + "/last.safetensors")
        #expect(run.state.epoch == 2 && run.datasetName == "mnist")
        run.options.epochs = 3
        let more = try Trainer(continuing: run, trainingSet: train, validationSet: test).fit()
        #expect(more.map(\.epoch) == [3])
    }

    @Test func addANetworkOfYourOwn() throws {
        let model = try TinyVGG.descriptor.make()
        model.initialize(seed: 1)
        #expect(model.parameterCount == 106_538)
        #expect(try model.summary().map(\.name).contains("features.conv0"))
        // A few CIFAR-10-sized steps (the article trains on CIFAR-10 itself).
        let pixels = (0..<64 * 3072).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let train = ImageDataset(name: "synthetic", channels: 3, height: 32, width: 32, pixels: pixels,
                                 labels: (0..<64).map { Int32($0 % 10) }, classNames: (0..<10).map(String.init))
        try Trainer(model: model, optimizer: SGD(learningRate: 0.01, momentum: 0.9), trainingSet: train,
                    validationSet: nil, options: TrainingOptions(epochs: 1, batchSize: 16)).fit()
    }
}
