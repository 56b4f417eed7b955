import ArgumentParser
import ClassicCNN
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint: loss, accuracy, per-class accuracy and the confusion matrix.")

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String
    @Option(help: "The dataset (default: the one the checkpoint was trained on).") var dataset: String?
    @Option(help: "Images per batch.") var batchSize = 256
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Evaluate only the first N test images (default: all).") var limit: Int?
    @Flag(help: "AlexNet's testing: the four corner crops, the centre crop and their mirrors, softmax averaged.") var tenCrop = false
    @Flag(help: "Average each image's softmax with its mirror's (test-time flips, at the input size).") var flip = false
    @Flag(help: "VGG only: evaluate densely (section 3.2), the classifier as convolutions over the whole image.") var dense = false
    @Option(help: "With --dense: the image size (default: the checkpoint's).") var inputSize: Int?
    @Option(help: ArgumentHelp("For an image folder: val (the part held out from training: its val/ or test/ folder, or the seeded "
        + "split of --validation-fraction) or all (every image; a folder with val/ or test/: that folder). Default: val for the "
        + "folder the checkpoint was trained on, all for any other.", valueName: "part"))
    var split: String?
    @OptionGroup var data: DataOptions
    @OptionGroup var folder: ImageFolderOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try validateBatchSize(batchSize)
        if inputSize != nil && !dense { throw ValidationError("--input-size is for --dense evaluation") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if [tenCrop, dense, flip].filter({ $0 }).count > 1 {
            throw ValidationError("--ten-crop, --dense and --flip are ways of testing: choose one")
        }
        if let split, split != "val" && split != "all" { throw ValidationError("--split is val or all, not '\(split)'") }
    }

    struct Report: Encodable {
        let model: String, checkpoint: String, dataset: String, epoch: Int, images: Int
        /// Whether the convolutions computed in int8 (a checkpoint written by `cnn quantize`).
        let int8: Bool
        let loss: Double, accuracy: Double
        let per_class_accuracy: [String: Double]
        let confusion_matrix: [[Int]]
        let class_names: [String]
    }

    func run() throws {
        runtime.apply()
        var (model, info, _) = try Checkpoint.load(path: checkpoint)
        if dense {
            do { model = try VGG.denseEvaluation(of: model, inputSize: inputSize ?? model.configuration.inputSize) } catch let error as ConfigurationError {
                throw ValidationError("--dense: \(error)")
            }
        }
        let name = dataset ?? info.dataset
        let testSet: ImageDataset
        var part = "test"
        if Datasets.isImageFolder(name) {
            let trainedOn = URL(fileURLWithPath: name).standardized.path == URL(fileURLWithPath: info.dataset).standardized.path
            part = split ?? (trainedOn ? "val" : "all")
            var options = folder
            if part == "all" { options.validationFraction = 0 }
            // "val": the part held out as the training run held it out (its seed, --validation-fraction); "all": every
            // image, or the folder's own val/ or test/ folder.
            let (training, validation) = try loadTrainingData(name, channels: model.configuration.inputChannels, seed: info.seed,
                                                              folder: options, dataDirectory: data.dataDir)
            guard let chosen = part == "all" ? (validation ?? training) : validation, chosen.count > 0 else {
                throw CommandError(description: "\(name): no held-out images to evaluate (it has no val/ or test/ folder, and "
                    + "--validation-fraction \(folder.validationFraction) holds none out); --split all evaluates every image")
            }
            if !info.classNames.isEmpty && chosen.classNames != info.classNames {
                throw CommandError(description: "\(name): its class folders (\(chosen.classNames.joined(separator: ", "))) are not the "
                    + "checkpoint's classes (\(info.classNames.joined(separator: ", "))), so its labels would not mean the same")
            }
            testSet = chosen
        } else {
            testSet = try Datasets.load(name, split: .test, dataDirectory: data.dataDir)
        }
        try Evaluation.checkLabels(of: testSet, fit: model)
        let result = tenCrop ? try Evaluation.runTenCrop(model: model, dataset: testSet, limit: limit)
            : try Evaluation.run(model: model, dataset: testSet, batchSize: batchSize, limit: limit, mirrored: flip)
        let report = Report(
            model: model.name, checkpoint: checkpoint, dataset: name, epoch: info.epoch, images: result.count, int8: model.isQuantized,
            loss: result.loss, accuracy: result.accuracy,
            per_class_accuracy: Dictionary(uniqueKeysWithValues: zip(result.classNames, result.perClassAccuracy)),
            confusion_matrix: result.confusionMatrix, class_names: result.classNames)
        if json { return try printJSON(report) }
        let int8 = model.isQuantized ? ", int8 convolutions (\(InstructionSet.int8Kernel))" : ""
        print("\(model.name) (epoch \(info.epoch)\(int8)) on \(name) \(part == "all" ? "(every image)" : part): \(result.count.grouped) images")
        print("loss: \(String(format: "%.4f", result.loss))  accuracy: \(String(format: "%.2f%%", result.accuracy * 100))")
        print("\nPer class:")
        for (className, accuracy) in zip(result.classNames, result.perClassAccuracy) {
            print("  \(className.rightPad(12)) \(String(format: "%6.2f%%", accuracy * 100))")
        }
        print("\nConfusion matrix (rows: true class, columns: predicted):")
        let width = max(5, (result.confusionMatrix.flatMap { $0 }.max() ?? 0).grouped.count + 1)
        print("".rightPad(12) + result.classNames.map { String($0.prefix(width - 1)).leftPad(width) }.joined())
        for (className, row) in zip(result.classNames, result.confusionMatrix) {
            print(String(className.prefix(11)).rightPad(12) + row.map { String($0).leftPad(width) }.joined())
        }
    }
}
