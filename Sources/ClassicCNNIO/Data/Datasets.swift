// The datasets by name, as the model zoo has the networks by name: "mnist", "cifar10", or the path of an image
// folder. What `cnn train --dataset NAME` loads is `Datasets.trainingData(NAME, ...)`.
import ClassicCNNEngine
import Foundation

/// A dataset name that is neither built in nor an existing folder.
public struct UnknownDatasetError: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        let suggestion = closestName(to: name, among: Datasets.builtIn).map { "; did you mean \($0)?" } ?? ""
        return "unknown dataset '\(name)'\(suggestion) Available: \(Datasets.builtIn.joined(separator: ", ")), or the path of an image folder"
    }
}

public enum Datasets {
    /// The datasets known by name. They are looked for where `DataLocator` says (the data directory, `CNN_DATA_DIR`,
    /// the repository's `Data/`, the cache), and downloaded into the cache as a last resort.
    public static let builtIn = ["mnist", "cifar10"]

    public enum Split: String, Sendable { case train, test }

    /// Whether `name` is an image folder's path rather than a built-in dataset.
    public static func isImageFolder(_ name: String) -> Bool {
        !builtIn.contains(name) && (name.contains("/") || FileManager.default.fileExists(atPath: name))
    }

    /// One split of a built-in dataset.
    ///
    /// - Throws: `UnknownDatasetError` for another name; `DataError` for files that are missing or wrong.
    public static func load(_ name: String, split: Split, dataDirectory: String? = nil) throws -> ImageDataset {
        switch name {
        case "mnist":
            return try MNIST.load(split == .train ? .train : .test, from: try DataLocator.mnistDirectory(dataDirectory: dataDirectory))
        case "cifar10":
            return try CIFAR10.load(split == .train ? .train : .test, from: try DataLocator.cifar10Directory(dataDirectory: dataDirectory))
        default:
            throw UnknownDatasetError(name: name)
        }
    }

    /// The training and validation sets of a run: a built-in dataset's train and test splits, or an image folder's
    /// (its `train/` and `val/` folders, or a seeded split of `validationFraction` of each class), read as images of
    /// `channels` channels.
    ///
    /// - Throws: `ImageFolder.BadImages` for a folder with bad images, unless `skipBadImages` (then `onBadImage`
    ///   hears of each); the errors of `load(_:split:dataDirectory:)` and `ImageFolder.load`.
    public static func trainingData(_ name: String, channels: Int, seed: UInt64 = 0, validationFraction: Double = 0.1,
                                    skipBadImages: Bool = false, dataDirectory: String? = nil,
                                    onBadImage: (ImageError) -> Void = { _ in }) throws -> (training: ImageDataset, validation: ImageDataset?) {
        guard isImageFolder(name) else {
            return (try load(name, split: .train, dataDirectory: dataDirectory), try load(name, split: .test, dataDirectory: dataDirectory))
        }
        return try ImageFolder.load(name, channels: channels, validationFraction: validationFraction, seed: seed,
                                    skipBadImages: skipBadImages, onBadImage: onBadImage)
    }
}
