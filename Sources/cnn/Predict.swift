import ArgumentParser
import ClassicCNN
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify image files (PNG or JPEG, any size, grey or colour) with a checkpoint.",
        discussion: """
        For MNIST models each picture is prepared as MNIST was made: dark ink on light paper is inverted, the \
        digit is cropped, scaled into 20x20 and centred by its centre of mass in 28x28, then padded to the input. \
        For the others it is converted to the model's channels and resized to its input as its training images were. \
        A 1000-class model shows ImageNet's class names, a CIFAR-10 model CIFAR-10's.
        """)

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String?
    @Option(help: "Instead of --checkpoint: a model name, with --weights.") var model: String?
    @Option(help: "With --model: a file of weights: safetensors, or PyTorch's .pth (torchvision's names for the networks in its layout).") var weights: String?
    @Flag(help: "With --model: torchvision's published ImageNet weights, fetched on first use (see `cnn weights list`).") var pretrained = false
    @Option(help: "With --model: the number of classes (default: the network's own).") var classes: Int?
    @Option(help: "With --model: the input size (default: the network's own).") var inputSize: Int?
    @Option(help: "How many classes to show per image.") var top = 3
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "Image files.") var images: [String]
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1, got \(top)") }
        if images.isEmpty { throw ValidationError("give at least one image file") }
        switch (checkpoint, model, weights, pretrained) {
        case (.some, nil, nil, false), (nil, .some, .some, false), (nil, .some, nil, true): break
        default: throw ValidationError("give either --checkpoint, or --model with --weights or --pretrained")
        }
        if let model { do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") } }
        if pretrained, let model {
            do { _ = try PretrainedWeights.named(model) } catch { throw ValidationError("--pretrained: \(error)") }
            if classes != nil || inputSize != nil { throw ValidationError("--pretrained takes the network as published: no --classes or --input-size") }
        }
    }

    struct Prediction: Encodable { let `class`: String; let index: Int; let probability: Double }
    struct Result: Encodable { let file: String; let predictions: [Prediction] }

    /// The network, how pictures are prepared for it, and its classes' names.
    func network() throws -> (Model, preparation: ImagePreparation, classNames: [String]) {
        if let checkpoint {
            let (model, info, _) = try Checkpoint.load(path: checkpoint)
            return (model, info.imagePreparation, info.knownClassNames)
        }
        let descriptor = try ModelZoo.descriptor(named: model!)
        if pretrained {
            let published = try PretrainedWeights.named(model!)
            let path = try fetchPretrained(published)
            let network = try descriptor.make()
            try network.loadWeights(path: path)
            network.inputFormat = published.inputFormat
            return (network, published.preparation, ImageNet.classNames)
        }
        let network = try descriptor.make(inputSize: inputSize, classes: classes)
        do { try network.loadWeights(path: weights!) } catch let error as ConfigurationError {
            throw CommandError(description: "\(weights!): \(error)")
        }
        let preparation: ImagePreparation = descriptor.defaultDataset == "mnist" ? .mnistDigit : .fitted
        return (network, preparation, knownClassNames(dataset: descriptor.defaultDataset, classes: network.configuration.classes))
    }

    func run() throws {
        runtime.apply()
        let (model, preparation, names) = try network()
        // Decode everything first, so a bad file stops the command before any output.
        let pictures = try images.map { try Image.load(path: $0) }
        let predictions = model.predict(pictures, top: top, classNames: names, preparation: preparation)
        let results = zip(images, predictions).map { file, best in
            Result(file: file, predictions: best.map { Prediction(class: $0.name, index: $0.index, probability: $0.probability) })
        }
        if json { return try printJSONLines(results) }
        for result in results {
            let shown = result.predictions.map { "\($0.class) (\(String(format: "%.1f%%", $0.probability * 100)))" }
            print("\(result.file): " + shown.joined(separator: ", "))
        }
    }
}
