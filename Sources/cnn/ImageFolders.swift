// `cnn train --dataset PATH`: an image folder as the training and validation sets.
import ArgumentParser
import ClassicCNN
import Foundation

struct ImageFolderOptions: ParsableArguments {
    @Option(help: "For an image folder without train/ and val/ folders: the share of each class held out for validation, chosen by the run's seed (0: none).")
    var validationFraction = 0.1
    @Flag(help: "For an image folder: report each file that is not a usable image and go on without it (default: stop before any work).")
    var skipBadImages = false

    func validate() throws {
        if !(validationFraction >= 0 && validationFraction < 1) {
            throw ValidationError("--validation-fraction must be in [0, 1), got \(validationFraction)")
        }
    }
}


/// The training and validation sets of a run: a built-in dataset's train and test splits, or an image folder's
/// (its train/ and val/ folders, or a seeded split), read as images of `channels` channels.
func loadTrainingData(_ name: String, channels: Int, seed: UInt64, folder: ImageFolderOptions,
                      dataDirectory: String?) throws -> (training: ImageDataset, validation: ImageDataset?) {
    var reported = 0
    do {
        return try Datasets.trainingData(name, channels: channels, seed: seed, validationFraction: folder.validationFraction,
                                         skipBadImages: folder.skipBadImages, dataDirectory: dataDirectory) { bad in
            reported += 1
            if folder.skipBadImages { printError("skipping \(bad)") } else if reported <= 20 { printError("bad image: \(bad)") }
        }
    } catch let bad as ImageFolder.BadImages {
        throw CommandError(description: "\(bad); nothing was trained. Fix or remove them, or pass --skip-bad-images to train without them")
    }
}
