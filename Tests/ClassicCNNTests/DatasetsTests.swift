// The datasets by name: what `cnn train --dataset` looks up, as the library's `Datasets`.
import Foundation
import Testing
import TestSupport
import ClassicCNN

@Suite("Datasets by name")
struct DatasetsTests {
    @Test func builtInDatasetsLoadByName() throws {
        let root = try sharedDataRoot()
        let test = try Datasets.load("mnist", split: .test, dataDirectory: root)
        #expect(test.count == 10_000 && test.channels == 1)
        let (training, validation) = try Datasets.trainingData("cifar10", channels: 3, dataDirectory: root)
        #expect(training.count == 50_000 && validation?.count == 10_000 && training.classNames.first == "airplane")
    }

    @Test func anUnknownNameSaysWhatThereIs() {
        #expect(!Datasets.isImageFolder("mnist") && !Datasets.isImageFolder("cifar-10"))
        #expect(Datasets.isImageFolder("some/folder"))
        #expect { try Datasets.load("cifar-10", split: .train) } throws: { error in
            let text = "\(error)"
            return error is UnknownDatasetError && text.contains("did you mean cifar10?") && text.contains("mnist, cifar10")
        }
    }

    @Test func anImageFolderSplitsBySeed() throws {
        let root = freshDirectory("datasets-folder")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (label, name) in ["cats", "dogs"].enumerated() {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            for i in 0..<10 {
                try Image(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: UInt8(label * 100 + i), count: 48))
                    .writePNG(path: "\(root)/\(name)/\(i).png")
            }
        }
        let (training, validation) = try Datasets.trainingData(root, channels: 3, seed: 5, validationFraction: 0.2)
        #expect(training.count == 16 && validation?.count == 4 && training.classNames == ["cats", "dogs"])
    }
}
