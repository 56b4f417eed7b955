import ArgumentParser
import ClassicCNN
import Foundation

struct ShowData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show-data",
        abstract: "Draw a grid of sample images of a dataset, each with its class name under it.",
        discussion: """
        Without --seed the first --count images of the split are shown, with it a sample drawn by the seed. \
        With --augment each cell shows the image as stored (left) and as the training loader augments it (right), \
        at the dataset's own size (224 for an image folder), the augmentation seeded by --seed (default 0).
        """)

    @Option(help: "The dataset: mnist, cifar10 or the path of an image folder (one sub-folder per class).") var dataset: String
    @Option(help: "How many images to show (1...400); 100 makes a 10x10 grid.") var count = 100
    @Option(help: "The split: train or test (for an image folder: its training or validation images).") var split = "train"
    @Option(help: "Draw the images at random, by this seed (default: the first ones).") var seed: UInt64?
    @Option(help: "Show each image beside its augmented copy: none, flip, alexnet or vgg.") var augment = "none"
    @Option(help: "The side in pixels of each image in the grid.") var cellSize = 64
    @Option(help: "The picture to write (.png).") var output = "grid.png"
    @OptionGroup var data: DataOptions
    @OptionGroup var folder: ImageFolderOptions

    func validate() throws {
        if !(1...400).contains(count) { throw ValidationError("--count must be in 1...400, got \(count)") }
        if !["train", "test"].contains(split) { throw ValidationError("--split must be train or test, got '\(split)'") }
        try validateAugmentation(augment)
        if !(8...512).contains(cellSize) { throw ValidationError("--cell-size must be in 8...512, got \(cellSize)") }
        if (output as NSString).pathExtension.lowercased() != "png" {
            throw ValidationError("--output \(output): unknown extension '.\((output as NSString).pathExtension)'; use .png")
        }
    }

    func run() throws {
        let images: ImageDataset
        if Datasets.isImageFolder(dataset) {
            let sets = try loadTrainingData(dataset, channels: 3, seed: seed ?? 0, folder: folder, dataDirectory: data.dataDir)
            guard let chosen = split == "train" ? sets.training : sets.validation else {
                throw CommandError(description: "\(dataset): no validation images (see --validation-fraction)")
            }
            images = chosen
        } else {
            images = try Datasets.load(dataset, split: split == "train" ? .train : .test, dataDirectory: data.dataDir)
        }
        guard images.count > 0 else { throw CommandError(description: "\(dataset): no images in the \(split) split") }
        var indices = Array(0..<images.count)
        if let seed {
            var generator = RandomGenerator(seed: seed)
            indices.shuffle(using: &generator)
        }
        indices = Array(indices.prefix(count))

        let augmentation: Augmentation?
        do { augmentation = try Augmentation.named(augment, for: images) } catch let error as TransformError {
            throw CommandError(description: "\(error)")
        }
        var generator = RandomGenerator(seed: seed ?? 0)
        let size = images.height > 0 ? max(images.height, images.width) : 224
        let cells = try indices.map { index in
            let picture = try images.image(at: index)
            let label = Int(images.labels[index])
            let name = label < images.classNames.count ? images.classNames[label] : String(label)
            guard let augmentation else { return GridCell(pictures: [picture], label: name) }
            return GridCell(pictures: [picture, try augmentation.apply(picture, outputSize: size, using: &generator)], label: name)
        }
        let columns = Int(Double(cells.count).squareRoot().rounded(.up))
        try Pictures.grid(cells, columns: columns, cellSize: cellSize).writePNG(path: output)
        print("Wrote \(output) (\(cells.count) images of \(images.name)\(augmentation.map { ", augmented by \($0.name)" } ?? ""))")
    }
}
