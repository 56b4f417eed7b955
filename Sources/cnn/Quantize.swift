import ArgumentParser
import ClassicCNN
import Foundation

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post-training int8 quantisation: calibrate a checkpoint's convolutions on training images, write a quantised checkpoint.",
        discussion: """
            Each convolution's input is calibrated on --images training images (the smallest and largest value, as ONNX \
            Runtime's MinMax) and quantised to unsigned bytes; its weights to seven-bit signed integers, one scale per \
            output channel. `cnn evaluate`, `predict` and `bench --checkpoint` then run the convolutions in int8 (AVX-512 \
            VNNI, AVX2 or portable C, with the same integers on each). The output keeps the float weights beside the \
            scales, so it is also the float model. Unless --no-compare, the float and int8 predictions of the test images \
            are compared.
            """)

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String
    @Option(help: "Where to write the quantised checkpoint (not the input).") var output: String
    @Option(help: "The dataset whose training images calibrate (default: the one the checkpoint was trained on).") var calibration: String?
    @Option(help: "Training images to calibrate on.") var images = 512
    @Option(help: "Images per batch.") var batchSize = 64
    @Flag(help: "Do not compare float and int8 predictions on the test images.") var noCompare = false
    @Option(help: "Compare on the first N test images only (default: all).") var limit: Int?
    @Flag(help: "Replace --output if it exists.") var overwrite = false
    @OptionGroup var data: DataOptions
    @OptionGroup var folder: ImageFolderOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try validateBatchSize(batchSize)
        if images < 1 { throw ValidationError("--images must be at least 1, got \(images)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        let (input, out) = (URL(fileURLWithPath: checkpoint).resolvingSymlinksInPath().path,
                            URL(fileURLWithPath: output).resolvingSymlinksInPath().path)
        if input == out { throw ValidationError("--output is the input checkpoint; write the quantised one beside it") }
    }

    func run() throws {
        runtime.apply()
        if FileManager.default.fileExists(atPath: output) && !overwrite {
            throw CommandError(description: "\(output) exists; --overwrite replaces it")
        }
        let (model, info, _) = try Checkpoint.load(path: checkpoint)
        model.removeQuantization()
        let name = calibration ?? info.dataset
        let (training, validation) = try loadTrainingData(name, channels: model.configuration.inputChannels, seed: info.seed,
                                                          folder: folder, dataDirectory: data.dataDir)
        try Evaluation.checkLabels(of: training, fit: model)
        let loader = BatchLoader(dataset: training, batchSize: batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: nil, limit: images)
        defer { loader.stop() }
        let started = Date()
        // Streamed: each batch is run before the next is asked for, so no more than the loader's slots are in memory.
        let quantized = model.quantize(calibration: AnySequence { AnyIterator { loader.next()?.images } })
        if let failure = loader.failure { throw failure }
        guard quantized > 0 else { throw CommandError(description: "\(model.name) has no convolution that int8 inference can serve") }
        let seconds = Date().timeIntervalSince(started)
        print("\(model.name): \(quantized) of \(model.convolutions.count) convolutions quantised to int8, calibrated on "
            + "\(min(images, training.count).grouped) \(name) training images in \(String(format: "%.1f", seconds)) s "
            + "(int8 kernel: \(InstructionSet.int8Kernel))")

        var saved = info
        saved.trainingState = nil
        saved.extraTensors = model.quantizationTensors
        try Checkpoint.save(model: model, optimizer: nil, info: saved, to: output)
        print("wrote \(output)")

        guard !noCompare else { return }
        let testSet: ImageDataset
        if Datasets.isImageFolder(name) {
            guard let validation, validation.count > 0 else {
                print("(no held-out images in \(name) to compare float and int8 on)")
                return
            }
            testSet = validation
        } else {
            testSet = try Datasets.load(name, split: .test, dataDirectory: data.dataDir)
        }
        let comparison = try Evaluation.compareInt8(model: model, dataset: testSet, batchSize: batchSize, limit: limit)
        print("on \(comparison.count.grouped) test images: float \(String(format: "%.2f%%", comparison.floatAccuracy * 100)), "
            + "int8 \(String(format: "%.2f%%", comparison.int8Accuracy * 100)), "
            + "the same top-1 class for \(String(format: "%.2f%%", comparison.agreement * 100))")
    }
}
