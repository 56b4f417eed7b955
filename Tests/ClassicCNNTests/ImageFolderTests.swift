// Image folders as datasets: listing and checking, the seeded split, the bad inputs a user meets, and the on-demand
// loader checked against the in-memory one on the same pixels.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Image folders")
struct ImageFolderTests {
    /// A w x h image whose every pixel is `value` in each channel.
    static func solid(_ width: Int, _ height: Int, channels: Int, value: UInt8) -> Image {
        Image(width: width, height: height, channels: channels, pixels: Array(repeating: value, count: width * height * channels))
    }

    /// A small image with a pattern that depends on `seed`, so that every file differs.
    static func patterned(_ width: Int, _ height: Int, channels: Int, seed: Int) -> Image {
        Image(width: width, height: height, channels: channels,
              pixels: (0..<(width * height * channels)).map { UInt8(truncatingIfNeeded: $0 * 7 + seed * 31) })
    }

    static func makeFolder(_ root: String, _ classes: [String: [(String, Image)]]) throws {
        for (name, images) in classes {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            for (file, image) in images { try image.writePNG(path: "\(root)/\(name)/\(file)") }
        }
    }

    @Test func readsClassFoldersOfAnySizeAndKindAtTheModelsChannels() throws {
        let root = freshDirectory("folder")
        try Self.makeFolder(root, [
            "zebra": [("grey.png", Self.solid(5, 3, channels: 1, value: 200)), ("rgb.png", Self.solid(40, 20, channels: 3, value: 10))],
            "ant": [("a.png", Self.solid(8, 8, channels: 3, value: 100))],
        ])
        try FileManager.default.copyItem(atPath: try sharedDataRoot() + "/samples/cifar-test-0003-ship.jpg", toPath: "\(root)/ant/ship.JPG")
        // Not images by their names: ignored, as are hidden files.
        try Data("notes".utf8).write(to: URL(fileURLWithPath: "\(root)/ant/README.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(root)/zebra/.hidden.png"))

        let (training, validation) = try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false)
        #expect(validation == nil)
        #expect(training.classNames == ["ant", "zebra"])
        #expect(training.count == 4 && training.labels == [0, 0, 1, 1])
        #expect(training.channels == 3 && training.source != nil && training.pixels.isEmpty)

        // Through the loader at 4x4: a solid image stays solid whatever its size; grey becomes three equal planes.
        let loader = BatchLoader(dataset: training, batchSize: 4, inputSize: 4, format: .unit(channels: 3), shuffleSeed: nil)
        let batch = try #require(loader.next())
        #expect(batch.images.shape == [4, 3, 4, 4])
        let values = batch.images.values, size = 3 * 16
        #expect(values[0..<size].allSatisfy { abs($0 * 255 - 100) < 1e-3 })                          // ant/a.png
        #expect(values[(2 * size)..<(3 * size)].allSatisfy { abs($0 * 255 - 200) < 1e-3 })            // zebra/grey.png
        #expect(values[(3 * size)..<(4 * size)].allSatisfy { abs($0 * 255 - 10) < 1e-3 })             // zebra/rgb.png
        #expect(loader.failure == nil)

        // The same folder for a grey model: colour becomes its luma.
        let grey = try ImageFolder.load(root, channels: 1, validationFraction: 0, seed: 0, skipBadImages: false).training
        let greyBatch = try #require(BatchLoader(dataset: grey, batchSize: 4, inputSize: 2, format: .unit(channels: 1), shuffleSeed: nil).next())
        #expect(greyBatch.images.shape == [4, 1, 2, 2])
        #expect(greyBatch.images.values[12..<16].allSatisfy { abs($0 * 255 - 10) < 1e-3 })
    }

    @Test func theOnDemandLoaderGivesWhatTheInMemoryLoaderGivesOnTheSamePixels() throws {
        // Five 6x5 RGB images as files and as bytes in memory: the same batches, shuffled by the same seed, resized the same.
        let root = freshDirectory("same")
        let images = (0..<5).map { Self.patterned(6, 5, channels: 3, seed: $0) }
        try Self.makeFolder(root, ["a": images.enumerated().map { ("\($0.offset).png", $0.element) }])
        let onDemand = try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false).training
        let planar = images.flatMap { image in (0..<3).flatMap { c in (0..<30).map { image.pixels[$0 * 3 + c] } } }
        let inMemory = ImageDataset(name: "same", channels: 3, height: 5, width: 6, pixels: planar, labels: [0, 0, 0, 0, 0], classNames: ["a"])
        for (size, fitting) in [(9, InputFormat.Fitting.resize), (8, .pad), (3, .resize)] {
            let format = InputFormat.unit(channels: 3, fitting: fitting)
            let a = BatchLoader(dataset: onDemand, batchSize: 2, inputSize: size, format: format, shuffleSeed: 7)
            let b = BatchLoader(dataset: inMemory, batchSize: 2, inputSize: size, format: format, shuffleSeed: 7)
            while let x = a.next() {
                let y = try #require(b.next())
                #expect(x.images.values == y.images.values && Array(x.labels) == Array(y.labels) && x.indices == y.indices)
            }
            #expect(b.next() == nil)
        }
    }

    @Test func theLoaderIsDeterministicForASeed() throws {
        let root = freshDirectory("seeded")
        try Self.makeFolder(root, [
            "a": (0..<6).map { ("\($0).png", Self.patterned(7, 9, channels: 3, seed: $0)) },
            "b": (0..<6).map { ("\($0).png", Self.patterned(9, 7, channels: 1, seed: $0 + 10)) },
        ])
        let data = try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false).training
        func epoch(seed: UInt64) -> ([Float], [Int32]) {
            let loader = BatchLoader(dataset: data, batchSize: 5, inputSize: 8, format: .unit(channels: 3), shuffleSeed: seed, epoch: 1)
            var values: [Float] = [], labels: [Int32] = []
            while let batch = loader.next() { values += batch.images.values; labels += Array(batch.labels) }
            return (values, labels)
        }
        let first = epoch(seed: 3), again = epoch(seed: 3), other = epoch(seed: 4)
        #expect(first.0 == again.0 && first.1 == again.1)
        #expect(first.0 != other.0)
        #expect(first.1.sorted() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    }

    @Test func theSplitIsStratifiedAndDecidedByTheSeed() throws {
        let labels = (0..<50).map { Int32($0 % 3) } // 17, 17 and 16 images
        let a = ImageFolder.split(labels: labels, validationFraction: 0.2, seed: 1)
        #expect(a == ImageFolder.split(labels: labels, validationFraction: 0.2, seed: 1))
        #expect(a != ImageFolder.split(labels: labels, validationFraction: 0.2, seed: 2))
        #expect(Set(a.training).isDisjoint(with: a.validation) && (a.training + a.validation).sorted() == Array(0..<50))
        #expect((0..<3).map { c in a.validation.filter { labels[$0] == c }.count } == [3, 3, 3])
        // A class of one image keeps it for training; fraction 0 holds nothing out.
        #expect(ImageFolder.split(labels: [0], validationFraction: 0.5, seed: 0).validation.isEmpty)
        #expect(ImageFolder.split(labels: labels, validationFraction: 0, seed: 0).validation.isEmpty)

        // On a folder: the same files for the same seed.
        let root = freshDirectory("split")
        try Self.makeFolder(root, ["a": (0..<10).map { ("\($0).png", Self.patterned(4, 4, channels: 1, seed: $0)) }])
        func validationFiles(seed: UInt64) throws -> [Float] {
            let set = try #require(try ImageFolder.load(root, channels: 1, validationFraction: 0.3, seed: seed, skipBadImages: false).validation)
            #expect(set.count == 3)
            return try #require(BatchLoader(dataset: set, batchSize: 3, inputSize: 4, format: .unit(channels: 1), shuffleSeed: nil).next()).images.values
        }
        #expect(try validationFiles(seed: 5) == validationFiles(seed: 5))
    }

    @Test func trainAndValFoldersAreUsedAsTheyAre() throws {
        let root = freshDirectory("presplit")
        try Self.makeFolder("\(root)/train", ["cat": [("1.png", Self.solid(3, 3, channels: 3, value: 1))],
                                              "dog": [("1.png", Self.solid(3, 3, channels: 3, value: 2)), ("2.png", Self.solid(3, 3, channels: 3, value: 3))]])
        try Self.makeFolder("\(root)/val", ["dog": [("1.png", Self.solid(3, 3, channels: 3, value: 4))]])
        let (training, validation) = try ImageFolder.load(root, channels: 3, validationFraction: 0.5, seed: 0, skipBadImages: false)
        #expect(training.count == 3 && training.classNames == ["cat", "dog"])
        #expect(validation?.count == 1 && validation?.labels == [1])
        // A validation class that training does not have is an error naming it.
        try Self.makeFolder("\(root)/val", ["horse": [("1.png", Self.solid(3, 3, channels: 3, value: 4))]])
        #expect { try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false) } throws: {
            "\($0)".contains("\(root)/val/horse") && "\($0)".contains("not among the training classes")
        }
    }

    @Test func badFoldersAreReportedByName() throws {
        // No class folders (images directly in the folder).
        let flat = freshDirectory("flat")
        try Self.solid(2, 2, channels: 1, value: 0).writePNG(path: "\(flat)/a.png")
        #expect { try ImageFolder.load(flat, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false) } throws: {
            "\($0)".contains(flat) && "\($0)".contains("no class folders") && "\($0)".contains("1 images directly")
        }
        // An empty class folder (a text file does not count).
        let root = freshDirectory("emptyclass")
        try Self.makeFolder(root, ["a": [("1.png", Self.solid(2, 2, channels: 1, value: 0))], "b": []])
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(root)/b/notes.txt"))
        #expect { try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false) } throws: {
            "\($0)".contains("\(root)/b") && "\($0)".contains("empty class folder")
        }
        // Not there at all.
        #expect { try ImageFolder.load(root + "/missing", channels: 3, validationFraction: 0, seed: 0, skipBadImages: false) } throws: {
            "\($0)".contains("\(root)/missing") && "\($0)".contains("not a folder")
        }
    }

    @Test func badImagesStopTheLoadOrAreSkippedEachByName() throws {
        let root = freshDirectory("badimages")
        try Self.makeFolder(root, ["a": (0..<3).map { ("\($0).png", Self.patterned(5, 5, channels: 3, seed: $0)) },
                                   "b": [("0.png", Self.solid(4, 4, channels: 1, value: 9))]])
        try Data("this is text, not a picture".utf8).write(to: URL(fileURLWithPath: "\(root)/a/text.png"))
        let png = try Self.patterned(5, 5, channels: 3, seed: 9).pngData()
        try Data(png.prefix(png.count - 20)).write(to: URL(fileURLWithPath: "\(root)/b/cut.png"))
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: try sharedDataRoot() + "/samples/cifar-test-0014-frog.jpg"))
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: "\(root)/b/cut.jpg"))

        var reported: [String] = []
        #expect { try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false) { reported.append($0.path) } } throws: {
            "\($0)".contains("\(root)/a/text.png") && "\($0)".contains("not a PNG or JPEG") && "\($0)".contains("2 more bad images")
        }
        #expect(reported == ["\(root)/a/text.png", "\(root)/b/cut.jpg", "\(root)/b/cut.png"])

        var skipped: [ImageError] = []
        let (training, _) = try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: true) { skipped.append($0) }
        #expect(training.count == 4)
        #expect(skipped.map(\.path) == reported)
        #expect(skipped[1].reason.contains("truncated") && skipped[2].reason.contains("truncated"))
    }

    @Test func anImageSpoiledAfterTheCheckStopsTheLoaderWithItsName() throws {
        let root = freshDirectory("spoiled")
        try Self.makeFolder(root, ["a": (0..<4).map { ("\($0).png", Self.patterned(5, 5, channels: 3, seed: $0)) }])
        let data = try ImageFolder.load(root, channels: 3, validationFraction: 0, seed: 0, skipBadImages: false).training
        try Data("gone".utf8).write(to: URL(fileURLWithPath: "\(root)/a/3.png"))
        let loader = BatchLoader(dataset: data, batchSize: 2, inputSize: 4, format: .unit(channels: 3), shuffleSeed: nil)
        #expect(loader.next() != nil)
        #expect(loader.next() == nil)
        #expect("\(try #require(loader.failure))".contains("\(root)/a/3.png"))
    }
}

@Suite("Image headers")
struct ImageInfoTests {
    @Test func theHeaderGivesSizeAndChannelsWithoutDecoding() throws {
        let root = try sharedDataRoot() + "/samples"
        let jpeg = try Image.info(path: root + "/cifar-test-0003-ship.jpg")
        #expect(jpeg.width == 32 && jpeg.height == 32 && jpeg.channels == 3)
        let png = try Image.info(path: root + "/mnist-test-0000-label7.png")
        let decoded = try Image.load(path: root + "/mnist-test-0000-label7.png")
        #expect(png.width == decoded.width && png.height == decoded.height && png.channels == decoded.channels)
        let folder = freshDirectory("info")
        try Data([0x47, 0x49, 0x46, 0x38, 0x39, 0x61]).write(to: URL(fileURLWithPath: folder + "/x.png"))
        #expect { try Image.info(path: folder + "/x.png") } throws: { "\($0)".contains(folder + "/x.png") && "\($0)".contains("47 49 46 38") }
        try Data().write(to: URL(fileURLWithPath: folder + "/empty.jpg"))
        #expect { try Image.info(path: folder + "/empty.jpg") } throws: { "\($0)".contains("empty") }
    }
}
