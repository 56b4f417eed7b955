import ArgumentParser
import ClassicCNN
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify image files (PNG or JPEG, any size, grey or colour) with a checkpoint.",
        discussion: """
        For MNIST models each picture is prepared as MNIST was made: dark ink on light paper is inverted, the \
        digit is cropped, scaled into 20x20 and centred by its centre of mass in 28x28, then padded to the input.
        """)

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String
    @Option(help: "How many classes to show per image.") var top = 3
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "Image files.") var images: [String]
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1, got \(top)") }
        if images.isEmpty { throw ValidationError("give at least one image file") }
    }

    struct Prediction: Encodable { let `class`: String; let index: Int; let probability: Double }
    struct Result: Encodable { let file: String; let predictions: [Prediction] }

    func run() throws {
        runtime.apply()
        let (model, info, _) = try Checkpoint.load(path: checkpoint)
        guard info.dataset == "mnist" else {
            throw CommandError(description: "\(checkpoint): predicting with a \(info.dataset) model is not supported yet (MNIST models only)")
        }
        // Decode everything first, so a bad file stops the command before any output.
        let digits = try images.map { try mnistStyleDigit(Image.load(path: $0)) }
        let size = model.configuration.inputSize
        let batch = Tensor(shape: [digits.count, 1, size, size], values: digits.flatMap { digit in
            Predict.place(digit, size: size, format: model.inputFormat)
        })
        let probabilities = model.loss.probabilities(output: model.forward(batch))
        let names = MNIST.classNames
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
