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
    @Option(help: "With --model: a safetensors state dict (torchvision's names for the networks in its layout).") var weights: String?
    @Option(help: "With --model: the number of classes (default: the network's own).") var classes: Int?
    @Option(help: "With --model: the input size (default: the network's own).") var inputSize: Int?
    @Option(help: "How many classes to show per image.") var top = 3
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "Image files.") var images: [String]
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1, got \(top)") }
        if images.isEmpty { throw ValidationError("give at least one image file") }
        switch (checkpoint, model, weights) {
        case (.some, nil, nil), (nil, .some, .some): break
        default: throw ValidationError("give either --checkpoint, or --model with --weights")
        }
        if let model { do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") } }
    }

    struct Prediction: Encodable { let `class`: String; let index: Int; let probability: Double }
    struct Result: Encodable { let file: String; let predictions: [Prediction] }

    /// The network, the dataset its classes come from, and its classes' names.
    func network() throws -> (Model, dataset: String, classNames: [String]) {
        if let checkpoint {
            let (model, info, _) = try Checkpoint.load(path: checkpoint)
            return (model, info.dataset, info.knownClassNames)
        }
        let descriptor = try ModelZoo.descriptor(named: model!)
        let network = try descriptor.make(inputSize: inputSize, classes: classes)
        do { try network.loadParameters(try SafeTensors.read(path: weights!).tensors) } catch let error as ConfigurationError {
            throw CommandError(description: "\(weights!): \(error)")
        }
        return (network, descriptor.defaultDataset, knownClassNames(dataset: descriptor.defaultDataset, classes: network.configuration.classes))
    }

    func run() throws {
        runtime.apply()
        let (model, dataset, names) = try network()
        // Decode everything first, so a bad file stops the command before any output.
        let pictures = try images.map { try Image.load(path: $0) }
        let predictions = model.predict(pictures, top: top, classNames: names, preparation: dataset == "mnist" ? .mnistDigit : .fitted)
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
