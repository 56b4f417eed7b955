// The CIFAR-10 binary reader on the real files and on broken ones, and the loader's resizing.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("CIFAR-10 and resizing")
struct CIFARTests {
    static func directory() throws -> String { try sharedDataRoot() + "/cifar-10-batches-bin" }

    @Test func realFilesHaveFiveThousandAndOneThousandImagesPerClass() throws {
        let train = try CIFAR10.load(.train, from: Self.directory()), test = try CIFAR10.load(.test, from: Self.directory())
        #expect(train.count == 50_000 && test.count == 10_000)
        #expect(train.channels == 3 && train.height == 32 && train.width == 32)
        #expect((0...9).map { c in train.labels.filter { $0 == c }.count } == Array(repeating: 5_000, count: 10))
        #expect((0...9).map { c in test.labels.filter { $0 == c }.count } == Array(repeating: 1_000, count: 10))
        #expect(test.classNames == CIFAR10.defaultClassNames)
    }

    @Test func theFirstTestRecordIsTheSamplePicture() throws {
        // samples/cifar-test-0000-automobile.png was cut from test record 0: the same pixels, planar here, HWC there.
        let test = try CIFAR10.load(.test, from: Self.directory())
        #expect(test.classNames[Int(test.labels[0])] == "automobile")
        let image = try Image.load(path: try sharedDataRoot() + "/samples/cifar-test-0000-automobile.png")
        #expect(image.width == 32 && image.height == 32 && image.channels == 3)
        let planar = (0..<3).flatMap { c in (0..<1024).map { image.pixels[$0 * 3 + c] } }
        #expect(Array(test.pixels[0..<3072]) == planar)
    }

    @Test func brokenBatchesAreReportedByFile() throws {
        let source = try Self.directory()
        let folder = freshDirectory("cifar")
        for name in CIFAR10.Split.train.files + CIFAR10.Split.test.files {
            try FileManager.default.copyItem(atPath: "\(source)/\(name)", toPath: "\(folder)/\(name)")
        }
        // Truncated: one byte short.
        let test = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/test_batch.bin"))
        try test.prefix(test.count - 1).write(to: URL(fileURLWithPath: "\(folder)/test_batch.bin"))
        #expect { try CIFAR10.load(.test, from: folder) } throws: { "\($0)".contains("test_batch.bin") && "\($0)".contains("whole number") }
        // A label out of range.
        var bad = test
        bad[3073] = 12
        try bad.write(to: URL(fileURLWithPath: "\(folder)/test_batch.bin"))
        #expect { try CIFAR10.load(.test, from: folder) } throws: { "\($0)".contains("record 1 has label 12") }
        // A missing batch.
        try FileManager.default.removeItem(atPath: "\(folder)/data_batch_3.bin")
        #expect { try CIFAR10.load(.train, from: folder) } throws: { "\($0)".contains("data_batch_3.bin") }
        #expect { try DataLocator.cifar10Directory(dataDirectory: folder) } throws: { "\($0)".contains(folder) }
    }

    @Test func bilinearResizingWithHalfPixelCentres() {
        // 2x2 -> 4x4: PyTorch's interpolate(mode="bilinear", align_corners=False) gives, for [[0, 255], [255, 255]]:
        // rows [0, 63.75, 191.25, 255], [63.75, 111.5625, 207.1875, 255], [191.25, 207.1875, 239.0625, 255], [255]*4.
        let dataset = ImageDataset(name: "tiny", channels: 1, height: 2, width: 2, pixels: [0, 255, 255, 255], labels: [0], classNames: ["a"])
        let loader = BatchLoader(dataset: dataset, batchSize: 1, inputSize: 4, format: .unit(channels: 1), shuffleSeed: nil)
        let batch = loader.next()!
        let expected: [Float] = [0, 63.75, 191.25, 255, 63.75, 111.5625, 207.1875, 255, 191.25, 207.1875, 239.0625, 255, 255, 255, 255, 255]
        #expect(zip(batch.images.values, expected).allSatisfy { abs($0 * 255 - $1) < 1e-3 })
        // The same image padded instead (LeNet's fitting): centred, background around it.
        let padded = BatchLoader(dataset: dataset, batchSize: 1, inputSize: 4, format: .unit(channels: 1, fitting: .pad), shuffleSeed: nil)
        #expect(padded.next()!.images.values.map { $0 * 255 } == [0, 0, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 0, 0])
    }
}
