// End to end: `cnn show-data` and `cnn visualize` write PNGs that decode, have the expected size, are not blank and
// carry their labels; bad input gives a clear message.
import ClassicCNN
import Foundation
import Testing
import TestSupport

/// How many pixels of `image` are not white, and how many of them are near black (the labels' text).
func inkAndText(_ image: Image, rows: Range<Int>? = nil) -> (ink: Int, black: Int) {
    var ink = 0, black = 0
    for y in rows ?? 0..<image.height {
        for x in 0..<image.width {
            let i = (y * image.width + x) * image.channels
            let values = (0..<image.channels).map { Int(image.pixels[i + $0]) }
            if values.contains(where: { $0 < 255 }) { ink += 1 }
            if values.allSatisfy({ $0 == 0 }) { black += 1 }
        }
    }
    return (ink, black)
}

@Suite("cnn show-data and cnn visualize", .serialized)
struct PictureTests {
    // 10 columns of 64-pixel cells, 4 apart, with 8-pixel margins; rows of 64 + 15 (the label strip: the font's 9 rows
    // and 6 of space) + 4.
    static func gridSize(cells: Int, columns: Int, pictures: Int = 1) -> (width: Int, height: Int) {
        let cellWidth = pictures * 64 + (pictures - 1) * 4, rows = (cells + columns - 1) / columns
        return (16 + columns * cellWidth + (columns - 1) * 8, 16 + rows * 79 + (rows - 1) * 4)
    }

    /// The label strip under the first row of cells holds black text; the first cell's picture is not blank.
    static func expectLabelledGrid(_ image: Image, sourceLocation: SourceLocation = #_sourceLocation) {
        let strip = inkAndText(image, rows: 8 + 64 ..< 8 + 77)
        #expect(strip.black > 50, "no class names drawn under the first row: \(strip)", sourceLocation: sourceLocation)
        let cells = inkAndText(image, rows: 8 ..< 8 + 64)
        #expect(cells.ink > 10 * 64 * 8, "the first row of images is nearly blank: \(cells)", sourceLocation: sourceLocation)
    }

    @Test func mnistAndCIFARGrids() throws {
        let directory = scratch("show-data")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (dataset, extra) in [("mnist", [String]()), ("cifar10", ["--split", "test", "--seed", "3"])] {
            let png = directory + "/\(dataset).png"
            let run = try cnn(["show-data", "--dataset", dataset, "--output", png, "--data-dir", try sharedDataRoot()] + extra)
            #expect(run.status == 0, "\(run.error)")
            let image = try Image.load(path: png), expected = Self.gridSize(cells: 100, columns: 10)
            #expect(image.width == expected.width && image.height == expected.height && image.channels == 3)
            Self.expectLabelledGrid(image)
        }
    }

    @Test func augmentedCIFARShowsEachImageTwice() throws {
        let directory = scratch("show-data-augment"), png = directory + "/augmented.png"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try cnn(["show-data", "--dataset", "cifar10", "--count", "20", "--augment", "alexnet", "--seed", "1",
                           "--output", png, "--data-dir", try sharedDataRoot()])
        #expect(run.status == 0, "\(run.error)")
        let image = try Image.load(path: png), expected = Self.gridSize(cells: 20, columns: 5, pictures: 2)
        #expect(image.width == expected.width && image.height == expected.height)
        Self.expectLabelledGrid(image)
        // The augmented copy (right) differs from the original (left) in the first cell.
        var differing = 0
        for y in 8..<72 { for x in 8..<72 {
            let left = (y * image.width + x) * 3, right = left + 68 * 3
            if (0..<3).contains(where: { image.pixels[left + $0] != image.pixels[right + $0] }) { differing += 1 }
        } }
        #expect(differing > 500, "the augmented copy looks like the original: \(differing) pixels differ")
    }

    @Test func featureMapsAndFiltersOfLeNet() throws {
        let directory = scratch("visualize")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let train = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "20", "--validation-steps", "1",
                             "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()])
        #expect(train.status == 0, "\(train.error)")
        let checkpoint = directory + "/last.safetensors"
        // A "3" on white paper, as a user would draw it: dark ink, inverted by the MNIST-style preparation.
        var pixels = [UInt8](repeating: 255, count: 64 * 64)
        for y in 12..<52 { for x in 20..<44 where y < 16 || (y > 29 && y < 34 && x > 26) || y > 47 || x > 38 { pixels[y * 64 + x] = 0 } }
        let digit = directory + "/three.png"
        try Image(width: 64, height: 64, channels: 1, pixels: pixels).writePNG(path: digit)

        let maps = directory + "/maps.png"
        let run = try cnn(["visualize", "--checkpoint", checkpoint, digit, "--output", maps])
        #expect(run.status == 0, "\(run.error)")
        let image = try Image.load(path: maps)
        // Rows: input, conv1, pool1, conv2, pool2, conv3 (120 maps, 32 shown) at 48-pixel tiles, 4 apart.
        #expect(image.width == 16 + 32 * 52 - 4)
        #expect(image.height == 16 + 6 * (15 + 52 + 4))
        let drawn = inkAndText(image)
        #expect(drawn.ink > 6 * 48 * 48 && drawn.black > 200, "\(drawn)")
        #expect(inkAndText(image, rows: 8 ..< 15).black > 30, "the input row has no label")
        // conv3's 1x1 maps are normalised over the stage, so its tiles are not all one grey.
        let conv3Middle = 8 + 5 * 71 + 15 + 24
        let greys = Set((0..<32).map { image.pixels[(conv3Middle * image.width + 8 + $0 * 52 + 24) * 3] })
        #expect(greys.count >= 3, "conv3's maps are drawn in \(greys.count) grey(s)")

        let filters = directory + "/filters.png"
        let kernels = try cnn(["visualize", "--checkpoint", checkpoint, "--filters", "--output", filters])
        #expect(kernels.status == 0, "\(kernels.error)")
        let tiles = try Image.load(path: filters)
        // Six 5x5 kernels at 32 pixels.
        #expect(tiles.width == 16 + 6 * 36 - 4 && tiles.height == 16 + 15 + 36 + 4)
        #expect(inkAndText(tiles, rows: 8 + 15 ..< 8 + 15 + 32).ink > 6 * 32 * 16)
    }

    @Test func badInputGivesAClearError() throws {
        let directory = scratch("pictures-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = try sharedDataRoot()
        let unknown = try cnn(["show-data", "--dataset", "imagenet21k", "--output", directory + "/g.png", "--data-dir", data])
        expectCleanFailure(unknown, naming: "imagenet21k")
        let usage = try cnn(["show-data", "--dataset", "mnist", "--count", "0", "--output", directory + "/g.png"])
        expectCleanFailure(usage, naming: "--count")
        #expect(usage.status == 64)
        expectCleanFailure(try cnn(["show-data", "--dataset", "mnist", "--augment", "alexnet", "--output", directory + "/g.png",
                                    "--data-dir", data]), naming: "--augment alexnet")
        expectCleanFailure(try cnn(["show-data", "--dataset", "mnist", "--count", "4", "--output", directory + "/missing/g.png",
                                    "--data-dir", data]), naming: directory + "/missing/g.png")

        let notACheckpoint = directory + "/bogus.safetensors", notAnImage = directory + "/bogus.png"
        try "not a checkpoint".write(toFile: notACheckpoint, atomically: true, encoding: .utf8)
        try "not an image".write(toFile: notAnImage, atomically: true, encoding: .utf8)
        expectCleanFailure(try cnn(["visualize", "--checkpoint", notACheckpoint, "--filters", "--output", directory + "/f.png"]),
                           naming: notACheckpoint)
        let missingImage = try cnn(["visualize", "--checkpoint", notACheckpoint, "--output", directory + "/f.png"])
        expectCleanFailure(missingImage, naming: "image")
        #expect(missingImage.status == 64)

        // A real checkpoint (untrained: two steps) for the image and output errors.
        let train = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
                             "--checkpoint-dir", directory, "--data-dir", data])
        #expect(train.status == 0, "\(train.error)")
        let checkpoint = directory + "/last.safetensors"
        expectCleanFailure(try cnn(["visualize", "--checkpoint", checkpoint, notAnImage, "--output", directory + "/m.png"]),
                           naming: notAnImage)
        expectCleanFailure(try cnn(["visualize", "--checkpoint", checkpoint, "--filters", "--output", directory + "/missing/f.png"]),
                           naming: directory + "/missing/f.png")
    }
}
