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

    /// The network and the dataset its classes come from.
    func network() throws -> (Model, dataset: String, classNames: [String]) {
        if let checkpoint {
            let (model, info, _) = try Checkpoint.load(path: checkpoint)
            return (model, info.dataset, info.classNames)
        }
        let descriptor = try ModelZoo.descriptor(named: model!)
        let network = try descriptor.make(inputSize: inputSize, classes: classes)
        do { try network.loadParameters(try SafeTensors.read(path: weights!).tensors) } catch let error as ConfigurationError {
            throw CommandError(description: "\(weights!): \(error)")
        }
        return (network, descriptor.defaultDataset, [])
    }

    func run() throws {
        runtime.apply()
        let (model, dataset, savedNames) = try network()
        let size = model.configuration.inputSize
        // Decode everything first, so a bad file stops the command before any output.
        let pictures = try images.map { try Image.load(path: $0) }
        let batch: Tensor
        if dataset == "mnist" {
            let digits = pictures.map(mnistStyleDigit)
            batch = Tensor(shape: [digits.count, 1, size, size], values: digits.flatMap { digit in
                Predict.place(digit, size: size, format: model.inputFormat)
            })
        } else {
            let inputs = pictures.map { Predict.input($0, for: model) }
            batch = Tensor(shape: [inputs.count] + model.inputShape, values: inputs.flatMap { $0 })
        }
        let probabilities = model.loss.probabilities(output: model.forward(batch))
        // The checkpoint's own names (an image folder's classes) first, else the dataset's known ones.
        let names = savedNames.count == model.configuration.classes ? savedNames
            : Predict.classNames(dataset: dataset, classes: model.configuration.classes)
        let results = zip(images, probabilities).map { file, row in
            Result(file: file, predictions: row.enumerated().sorted { $0.element > $1.element }.prefix(top).map {
                Prediction(class: $0.offset < names.count ? names[$0.offset] : String($0.offset), index: $0.offset,
                           probability: Double($0.element))
            })
        }
        if json { return try printJSON(results) }
        for result in results {
            let shown = result.predictions.map { "\($0.class) (\(String(format: "%.1f%%", $0.probability * 100)))" }
            print("\(result.file): " + shown.joined(separator: ", "))
        }
    }

    /// The class names of a model trained on `dataset` with `classes` classes: MNIST's digits, CIFAR-10's names, or
    /// ImageNet's for 1,000 classes; otherwise none (the index is shown).
    static func classNames(dataset: String, classes: Int) -> [String] {
        switch (dataset, classes) {
        case ("mnist", 10): return MNIST.classNames
        case ("cifar10", 10): return CIFAR10.defaultClassNames
        case (_, 1000): return ImageNet.classNames
        default: return []
        }
    }

    /// A picture as the model's input, prepared as its training images were: converted to its channels (grey luma, or
    /// grey repeated in R, G and B), then fitted to its input size and scaled by its input format, by the same loader.
    static func input(_ picture: Image, for model: Model) -> [Float] {
        let channels = model.configuration.inputChannels
        let source = picture.converted(toChannels: channels)
        let dataset = ImageDataset(name: "picture", channels: channels, height: source.height, width: source.width,
                                   pixels: source.planarPixels, labels: [0], classNames: [])
        let loader = BatchLoader(dataset: dataset, batchSize: 1, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: nil)
        defer { loader.stop() }
        return loader.next()!.images.values
    }

    /// A 28x28 digit in [0, 1], centred in the model's input and mapped by its input format.
    static func place(_ digit: [Float], size: Int, format: InputFormat) -> [Float] {
        let offset = (size - 28) / 2
        var plane = [Float](repeating: format.offset[0], count: size * size)
        for y in 0..<28 where y + offset >= 0 && y + offset < size {
            for x in 0..<28 where x + offset >= 0 && x + offset < size {
                plane[(y + offset) * size + x + offset] = digit[y * 28 + x] * format.scale[0] + format.offset[0]
            }
        }
        return plane
    }
}
