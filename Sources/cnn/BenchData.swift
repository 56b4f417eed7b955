import ArgumentParser
import ClassicCNN
import Foundation

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-data",
        abstract: "Measure the data loader alone: images/s delivered (read, decoded, resized, normalised) and peak memory.")

    @Option(help: "mnist, cifar10 or the path of an image folder.") var dataset = "cifar10"
    @Option(help: "The side the images are resized to.") var inputSize = 224
    @Option(help: "Images per batch.") var batchSize = 32
    @Option(help: "Channels of the images delivered (default: the dataset's; 3 for an image folder).") var channels: Int?
    @Option(help: "Batches timed (default: one epoch of the training set, at most 100).") var batches: Int?
    @Option(help: "Augmentation applied as in training: none, flip, alexnet or vgg.") var augment = "none"
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var data: DataOptions

    func validate() throws {
        try validateBatchSize(batchSize)
        if !(1...ModelDescriptor.maximumInputSize).contains(inputSize) {
            throw ValidationError("--input-size must be in 1...\(ModelDescriptor.maximumInputSize), got \(inputSize)")
        }
        if let channels, channels != 1 && channels != 3 { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
        if let batches, batches < 1 { throw ValidationError("--batches must be at least 1, got \(batches)") }
    }

    struct Report: Encodable {
        let dataset: String, input_size: Int, batch_size: Int, channels: Int, images: Int
        let seconds: Double, images_per_second: Double, peak_resident_megabytes: Int?
    }

    func run() throws {
        let set: ImageDataset
        if Datasets.isImageFolder(dataset) {
            set = try ImageFolder.load(dataset, channels: channels ?? 3, validationFraction: 0, seed: 0, skipBadImages: true) {
                printError("skipping \($0)")
            }.training
        } else {
            set = try Datasets.load(dataset, split: .train, dataDirectory: data.dataDir)
            if let channels, channels != set.channels {
                throw ValidationError("--channels: \(dataset) has \(set.channels)-channel images")
            }
        }
        let limit = min(set.count, (batches ?? 100) * batchSize)
        let augmentation: Augmentation?
        do { augmentation = try Augmentation.named(augment, for: set) } catch let error as TransformError {
            throw CommandError(description: "\(error)")
        }
        let loader = BatchLoader(dataset: set, batchSize: batchSize, inputSize: inputSize, format: .unit(channels: set.channels),
                                 shuffleSeed: 0, limit: limit, augmentation: augmentation)
        defer { loader.stop() }
        // Timed from the first batch: the loader starts working when it is made, and one batch ahead is all it keeps.
        var images = 0, checksum: Float = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while let batch = loader.next() {
            images += batch.labels.count
            checksum += batch.images[0] // touch the batch, as a training step would
        }
        if let failure = loader.failure { throw CommandError(description: "\(failure)") }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let report = Report(dataset: dataset, input_size: inputSize, batch_size: batchSize, channels: set.channels, images: images,
                            seconds: seconds, images_per_second: Double(images) / max(seconds, 1e-9),
                            peak_resident_megabytes: ResidentMemory.current().map { $0.peak >> 20 })
        if json { return try printJSON(report) }
        print("\(dataset) at \(inputSize) px, batch \(batchSize): \(images) images in \(String(format: "%.2f", seconds)) s = "
              + "\(String(format: "%.0f", report.images_per_second)) images/s (one loader thread); peak memory "
              + (report.peak_resident_megabytes.map { "\($0) MB" } ?? "unknown"))
        _ = checksum
    }
}
