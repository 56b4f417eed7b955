// The image transforms against torchvision and TensorFlow (fixtures written by
// Scripts/reference/transforms_fixture.py into Tests/Fixtures/transforms), and the random ones for their
// distributions, their seeding and their argument checks.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

/// The fixture script's input: 37 wide, 29 high, RGB, pixel(y, x, c) = (29 x + 47 y + 80 c + (7 x y mod 31)) mod 256.
private func formulaImage(channels: Int = 3) -> Image {
    var pixels: [UInt8] = []
    for y in 0 ..< 29 {
        for x in 0 ..< 37 {
            for c in 0 ..< channels { pixels.append(UInt8((29 * x + 47 * y + 80 * c + (7 * x * y) % 31) % 256)) }
        }
    }
    return Image(width: 37, height: 29, channels: channels, pixels: pixels)
}

private struct Fixture {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/transforms").path
    let fields: [String: Any]

    init(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/\(name)"))
        fields = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func integer(_ key: String) throws -> Int { try #require(fields[key] as? Int) }

    func bytes(_ key: String) throws -> [UInt8] { try Self.decode(try #require(fields[key] as? String)) }

    func byteArrays(_ key: String) throws -> [[UInt8]] { try #require(fields[key] as? [String]).map(Self.decode) }

    /// Little-endian float32.
    func floats(_ key: String) throws -> [Float] {
        let raw = try bytes(key)
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }

    static func decode(_ base64: String) throws -> [UInt8] { [UInt8](try #require(Data(base64Encoded: base64))) }
}

private func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) values against \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite("Transforms against torchvision and TensorFlow")
struct TransformReferenceTests {
    // Tolerance of the float paths: 1e-4 of a level (values 0-255). Window positions and weights are computed in
    // float32 in the same order of operations as PyTorch (antialiased) and TensorFlow (not), so what is left is the
    // order of the float32 sums (and TF's lerp form): a few units in the last place of values up to 255, whose ulp
    // is 1.5e-5. Measured: 3.1e-5 (two ulps) against torchvision and against TensorFlow. Weights computed in double
    // instead of float32 already differ from TensorFlow by 5e-4, so the check sees the arithmetic, not only the method.
    static let floatTolerance: Float = 1e-4

    @Test func shrinkingMatchesTorchvisionAntialiased() throws {
        let fixture = try Fixture("resize_16x12.json")
        let (width, height) = (try fixture.integer("width"), try fixture.integer("height"))
        let image = formulaImage()
        let values = image.resampledValues(width: width, height: height, antialias: true)
        let difference = largestDifference(values, try fixture.floats("float32"))
        #expect(difference <= Self.floatTolerance, "largest difference from torchvision (float32): \(difference)")
        // The public, rounded result against torchvision on uint8 (its fixed-point path, within 0.5 of its float
        // result here): at most one level apart, where a value lies at a half. Measured: all 576 values equal.
        let ours = try image.resized(width: width, height: height)
        let theirs = try fixture.bytes("uint8")
        #expect(ours.width == width && ours.height == height && ours.pixels.count == theirs.count)
        let levels = zip(ours.pixels, theirs).map { abs(Int($0) - Int($1)) }
        #expect(levels.max()! <= 1)
        // Without antialiasing the result must differ (the input has sharp edges): the filter width matters.
        let plain = image.resampledValues(width: width, height: height, antialias: false)
        #expect(largestDifference(plain, try fixture.floats("float32")) > 5)
    }

    @Test func enlargingMatchesTorchvision() throws {
        // The fixture holds torchvision's float32 result rounded to whole levels (to stay small): ours, unrounded,
        // must lie within half a level of it (plus the float tolerance).
        let fixture = try Fixture("resize_61x47.json")
        let (width, height) = (try fixture.integer("width"), try fixture.integer("height"))
        let values = formulaImage().resampledValues(width: width, height: height, antialias: true)
        let difference = largestDifference(values, try fixture.bytes("rounded_float").map(Float.init))
        #expect(difference <= 0.5 + Self.floatTolerance, "largest difference from torchvision's rounded values: \(difference)")
        // Enlarging is plain bilinear: antialiasing changes nothing.
        #expect(values == formulaImage().resampledValues(width: width, height: height, antialias: false))
    }

    @Test func shorterSideMatchesTorchvision() throws {
        let fixture = try Fixture("resize_shorter_20.json")
        let image = formulaImage()
        let size = try image.sizeWithShorterSide(20)
        #expect(size == (try fixture.integer("width"), try fixture.integer("height")))
        #expect(size == (25, 20)) // int(20 * 37 / 29) = int(25.5)
        let difference = largestDifference(image.resampledValues(width: 25, height: 20, antialias: true),
                                           try fixture.floats("float32"))
        #expect(difference <= Self.floatTolerance, "largest difference from torchvision: \(difference)")
        let resized = try image.resized(shorterSide: 20)
        #expect(resized.width == 25 && resized.height == 20)
    }

    @Test(arguments: [("resize_with_pad_20x20.json", 3), ("resize_with_pad_grey_40x40.json", 1)])
    func resizeWithPadMatchesTensorFlow(_ name: String, channels: Int) throws {
        let fixture = try Fixture(name)
        let (width, height) = (try fixture.integer("width"), try fixture.integer("height"))
        #expect(try fixture.integer("channels") == channels)
        let image = formulaImage(channels: channels)
        let values = try image.resizedWithPadValues(width: width, height: height)
        let expected = try fixture.floats("float32")
        let difference = largestDifference(values, expected)
        #expect(difference <= Self.floatTolerance, "\(name): largest difference from TensorFlow: \(difference)")
        // The padding is in the same place: zero exactly where TensorFlow has zero (the input has no zero pixel
        // whose neighbourhood is all zero, so inside the picture nothing is exactly zero).
        #expect(zip(values, expected).allSatisfy { ($0 == 0) == ($1 == 0) })
        let rounded = try image.resizedWithPad(width: width, height: height)
        #expect(rounded.width == width && rounded.height == height && rounded.channels == channels)
    }

    @Test func resizeWithPadPlacesThePictureAsTensorFlowDoes() throws {
        // 37x29 into 20x20: ratio 1.85, the picture becomes 20x15 (15.68 rounded down) at row 2 (2.16 rounded down).
        let padded = try formulaImage().resizedWithPadValues(width: 20, height: 20)
        let rowIsZero = (0 ..< 20).map { y in padded[(y * 20 * 3) ..< ((y + 1) * 20 * 3)].allSatisfy { $0 == 0 } }
        #expect(rowIsZero == [true, true] + Array(repeating: false, count: 15) + [true, true, true])
    }

    @Test func tenCropsMatchTorchvision() throws {
        let fixture = try Fixture("ten_crop_16x12.json")
        let (width, height) = (try fixture.integer("width"), try fixture.integer("height"))
        let crops = try formulaImage().tenCrops(width: width, height: height)
        let expected = try fixture.byteArrays("uint8")
        #expect(crops.count == 10 && expected.count == 10)
        for (index, (crop, pixels)) in zip(crops, expected).enumerated() {
            #expect(crop.width == width && crop.height == height)
            #expect(crop.pixels == pixels, "crop \(index) differs from torchvision's")
        }
        // The centre crop is the fifth; margins 21 and 17 put it at (10, 8), Python's round half to even.
        #expect(try formulaImage().centreCropped(width: width, height: height) == crops[4])
        #expect(try formulaImage().cropped(x: 10, y: 8, width: width, height: height) == crops[4])
    }
}

@Suite("Transforms: crops, flips, normalisation")
struct TransformTests {
    @Test func cropsAreWindowsOfTheImage() throws {
        let image = formulaImage()
        let crop = try image.cropped(x: 3, y: 5, width: 4, height: 2)
        for y in 0 ..< 2 {
            for x in 0 ..< 4 {
                for c in 0 ..< 3 {
                    #expect(crop.pixels[(y * 4 + x) * 3 + c] == image.pixels[((y + 5) * 37 + x + 3) * 3 + c])
                }
            }
        }
        #expect(try image.cropped(x: 0, y: 0, width: 37, height: 29) == image)
        #expect(try image.centreCropped(width: 37, height: 29) == image)
        // Margins 3 and 5: offsets round(1.5) = 2 and round(2.5) = 2.
        #expect(try image.centreCropped(width: 34, height: 24) == image.cropped(x: 2, y: 2, width: 34, height: 24))
    }

    @Test func randomCropsReachEveryPositionAndFollowTheSeed() throws {
        let image = formulaImage()
        var positions = Set<[Int]>()
        var generator = RandomGenerator(seed: 7)
        for _ in 0 ..< 400 {
            let crop = try image.randomlyCropped(width: 35, height: 27, using: &generator)
            let matches = (0 ... 2).flatMap { y in (0 ... 2).map { x in [x, y] } }
                .filter { try! image.cropped(x: $0[0], y: $0[1], width: 35, height: 27) == crop }
            #expect(matches.count == 1)
            positions.formUnion(matches)
        }
        #expect(positions.count == 9)
        var first = RandomGenerator(seed: 3), second = RandomGenerator(seed: 3)
        for _ in 0 ..< 20 {
            #expect(try image.randomlyCropped(width: 16, height: 16, using: &first)
                    == image.randomlyCropped(width: 16, height: 16, using: &second))
        }
    }

    @Test func flipsMirrorAndHappenHalfTheTime() {
        let image = Image(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        #expect(image.flippedHorizontally().pixels == [3, 2, 1, 6, 5, 4])
        let rgb = formulaImage()
        #expect(rgb.flippedHorizontally().flippedHorizontally() == rgb)
        #expect(Array(rgb.flippedHorizontally().pixels[0 ..< 3]) == Array(rgb.pixels[36 * 3 ..< 37 * 3]))
        var generator = RandomGenerator(seed: 11)
        let flips = (0 ..< 2000).filter { _ in image.randomlyFlipped(using: &generator) != image }.count
        // Binomial(2000, 1/2): standard deviation 22; 100 is 4.5 of them.
        #expect(abs(flips - 1000) < 100, "\(flips) flips in 2000")
    }

    @Test func normalisationIsPerChannelInTheModelsLayout() throws {
        let image = Image(width: 2, height: 1, channels: 3, pixels: [0, 51, 255, 255, 102, 0])
        let values = try image.normalized(mean: [0.5, 0.2, 0], standardDeviation: [0.5, 0.1, 2])
        // Planes: red (0 and 1 -> -1 and 1), green (0.2 and 0.4 -> 0 and 2), blue (1 and 0 -> 0.5 and 0).
        let expected: [Float] = [-1, 1, 0, 2, 0.5, 0]
        #expect(largestDifference(values, expected) < 1e-6)
    }

    @Test func badArgumentsAreErrorsThatSayWhat() {
        let image = formulaImage()
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        var generator = RandomGenerator(seed: 0)
        #expect(message { try image.cropped(x: 30, y: 0, width: 8, height: 8) }.contains("does not fit in a 37x29 image"))
        #expect(message { try image.centreCropped(width: 38, height: 10) }.contains("38x10 is larger than the 37x29 image"))
        #expect(message { try image.randomlyCropped(width: 10, height: 30, using: &generator) }.contains("larger than"))
        #expect(message { try image.tenCrops(width: 0, height: 5) }.contains("must be positive, not 0x5"))
        #expect(message { try image.resized(width: 0, height: 5) }.contains("resize: the output size must be positive"))
        #expect(message { try image.resized(shorterSide: -1) }.contains("shorter side must be positive"))
        #expect(message { try Image(width: 0, height: 0, channels: 1, pixels: []).resized(width: 4, height: 4) }
                .contains("the image is empty"))
        #expect(message { try Image(width: 1000, height: 1, channels: 1, pixels: .init(repeating: 1, count: 1000))
            .resizedWithPad(width: 10, height: 10) }.contains("would be 10x0 pixels"))
        #expect(message { try image.normalized(mean: [0.5], standardDeviation: [0.5]) }.contains("3 channels"))
        #expect(message { try image.normalized(mean: [0, 0, 0], standardDeviation: [1, 0, 1]) }.contains("positive"))
        #expect(message { try image.grey().addingPCAColourNoise(.imageNet, using: &generator) }.contains("not 3 (RGB)"))
        #expect(message { try ColourPCA(images: [image.grey()]) }.contains("image 0 has 1 channel(s)"))
        #expect(message { try ColourPCA(images: [Image]()) }.contains("no pixels"))
        #expect(message { try Augmentation.none.apply(image, outputSize: 0, using: &generator) }.contains("positive"))
        #expect(message { try Augmentation.alexnet(.imageNet).apply(image.grey(), outputSize: 8, using: &generator) }
                .contains("RGB"))
    }
}

@Suite("Transforms: AlexNet's PCA colour noise and the papers' recipes")
struct AugmentationTests {
    /// Pixels at mean 128 plus or minus 40 (1, 1, 1), 30 (1, -1, 0) and 10 (1, 1, -2), each of the six equally
    /// often: the covariance has eigenvalues 40^2 = 1600, 30^2 * 2/3 = 600 and 10^2 * 6/3 = 200 (in levels^2,
    /// divisor N), along the unit vectors of those three orthogonal directions.
    static func knownCovarianceImages() -> [Image] {
        let directions: [[Int]] = [[40, 40, 40], [30, -30, 0], [10, 10, -20]]
        let pixels = directions.flatMap { d in [d.map { 128 + $0 }, d.map { 128 - $0 }] }
        // Two images, 3x1 each, and the six colours spread over them several times over.
        let first = (pixels + pixels[0 ..< 3]).flatMap { $0.map(UInt8.init) }
        let second = (Array(pixels[3 ..< 6]) + pixels).flatMap { $0.map(UInt8.init) }
        return [Image(width: 9, height: 1, channels: 3, pixels: first), Image(width: 3, height: 3, channels: 3, pixels: second)]
    }

    @Test func eigenDecompositionOfAKnownCovariance() throws {
        let pca = try ColourPCA(images: Self.knownCovarianceImages())
        let unit = 255.0 * 255.0
        let expectedValues = [1600 / unit, 600 / unit, 200 / unit]
        #expect(zip(pca.eigenvalues, expectedValues).allSatisfy { abs($0 - $1) < 1e-12 }, "\(pca.eigenvalues)")
        let third = (1.0 / 3).squareRoot(), half = 0.5.squareRoot(), sixth = (1.0 / 6).squareRoot()
        let expectedVectors = [[third, third, third], [half, -half, 0], [-sixth, -sixth, 2 * sixth]]
        for (vector, expected) in zip(pca.eigenvectors, expectedVectors) {
            // Up to sign (the second has two components of equal size, so rounding may pick either to be positive).
            let sign = vector[0] * expected[0] + vector[1] * expected[1] + vector[2] * expected[2] < 0 ? -1.0 : 1.0
            #expect(zip(vector, expected).allSatisfy { abs(sign * $0 - $1) < 1e-12 }, "\(vector) against \(expected)")
            // The convention: the largest component is positive.
            #expect(vector.max { abs($0) < abs($1) }! > 0)
        }
    }

    @Test func jacobiReconstructsASymmetricMatrix() throws {
        // A dense symmetric matrix with distinct eigenvalues: V diag(l) V^T gives it back, V is orthonormal.
        let matrix: [[Double]] = [[4, -2, 0.5], [-2, 3, 1.25], [0.5, 1.25, -1]]
        let pca = try ColourPCA(covariance: matrix)
        for i in 0 ..< 3 {
            for j in 0 ..< 3 {
                let rebuilt = (0 ..< 3).reduce(0) { $0 + pca.eigenvectors[$1][i] * pca.eigenvalues[$1] * pca.eigenvectors[$1][j] }
                #expect(abs(rebuilt - matrix[i][j]) < 1e-12)
                let dot = (0 ..< 3).reduce(0) { $0 + pca.eigenvectors[i][$1] * pca.eigenvectors[j][$1] }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-12)
            }
        }
        #expect(pca.eigenvalues == pca.eigenvalues.sorted(by: >))
        // The trace is kept: 4 + 3 - 1.
        #expect(abs(pca.eigenvalues.reduce(0, +) - 6) < 1e-12)
        // A matrix that is already diagonal needs no rotation.
        let diagonal = try ColourPCA(covariance: [[1, 0, 0], [0, 3, 0], [0, 0, 2]])
        #expect(diagonal.eigenvalues == [3, 2, 1])
        #expect(diagonal.eigenvectors == [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    }

    @Test func colourNoiseIsTheSameShiftOnEveryPixel() throws {
        let pca = try ColourPCA(images: Self.knownCovarianceImages())
        // a = (1, 0, 0): the shift is l1 p1 = 1600 / 255^2 along (1, 1, 1) / sqrt 3, i.e. 1600 / 255 / sqrt 3 levels.
        let shift = pca.shift(alphas: [1, 0, 0])
        let levels = 1600 / 255 / 3.0.squareRoot()
        #expect(shift.allSatisfy { abs($0 * 255 - levels) < 1e-9 })
        let image = Image(width: 2, height: 1, channels: 3, pixels: [0, 100, 250, 10, 20, 30])
        #expect(try image.addingColourShift(shift).pixels == [4, 104, 254, 14, 24, 34]) // 3.62 levels, rounded; clamped
        #expect(try image.addingColourShift([0.02, -0.5, 0]).pixels == [5, 0, 250, 15, 0, 30])
        // The random noise: all pixels move by the same vector; its size follows a ~ N(0, 0.1).
        var generator = RandomGenerator(seed: 5)
        let grey = Image(width: 4, height: 4, channels: 3, pixels: .init(repeating: 128, count: 48))
        let noisy = try grey.addingPCAColourNoise(.imageNet, using: &generator)
        #expect(Set(stride(from: 0, to: 48, by: 3).map { Array(noisy.pixels[$0 ..< $0 + 3]) }).count == 1)
        var spread = 0.0
        for _ in 0 ..< 2000 { spread += pow(ColourPCA.imageNet.randomShift(using: &generator)[0] * 255, 2) }
        // Red's variance: sum_i (p_i[0] * 0.1 * l_i)^2, dominated by 0.5675 * 0.02175 * 255 = 3.15 levels.
        let expected = (0 ..< 3).reduce(0.0) { $0 + pow(ColourPCA.imageNet.eigenvectors[$1][0] * 0.1 * ColourPCA.imageNet.eigenvalues[$1] * 255, 2) }
        #expect(abs(spread / 2000 / expected - 1) < 0.1, "variance \(spread / 2000) against \(expected)")
    }

    @Test func alexnetRecipeIsACropOfTheRescaledImageFlippedAndShifted() throws {
        // CIFAR-sized input at 224: resize to 256, a random 224 window, a flip, the PCA shift. With a zero
        // colour noise the output must be one of the 33 x 33 windows of the 256x256 image or of its mirror.
        let cifar = try formulaImage().resized(width: 32, height: 32)
        let silent = try ColourPCA(eigenvalues: [0, 0, 0], eigenvectors: [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
        let rescaled = try cifar.resized(width: 256, height: 256), mirror = rescaled.flippedHorizontally()
        var generator = RandomGenerator(seed: 1)
        var mirrored = 0
        for _ in 0 ..< 6 {
            let output = try Augmentation.alexnet(silent).apply(cifar, outputSize: 224, using: &generator)
            #expect(output.width == 224 && output.height == 224 && output.channels == 3)
            let windows = (0 ... 32).flatMap { y in (0 ... 32).map { x in (x, y) } }
            let direct = windows.contains { isWindow(output, of: rescaled, x: $0.0, y: $0.1) }
            let flipped = windows.contains { isWindow(output, of: mirror, x: $0.0, y: $0.1) }
            #expect(direct || flipped)
            if flipped && !direct { mirrored += 1 }
        }
        #expect(mirrored > 0 && mirrored < 6)
        // A non-square image keeps its aspect ratio: shorter side to 256, the central 256x256.
        let wide = try formulaImage().resized(width: 64, height: 32)
        #expect(try Augmentation.alexnet(silent).apply(wide, outputSize: 224, using: &generator).width == 224)
    }

    @Test(arguments: [Augmentation.none, .flip, .alexnet(.imageNet), .vgg(colourShift: nil), .vgg(colourShift: .imageNet), .crop(padding: 4),
                            .cutout(padding: 4, size: 16, fill: [1, 2, 3])])
    func augmentationsAreDeterministicAndSized(_ augmentation: Augmentation) throws {
        let image = formulaImage()
        var first = RandomGenerator(seed: 42), second = RandomGenerator(seed: 42), other = RandomGenerator(seed: 43)
        var differs = false
        for _ in 0 ..< 8 {
            let a = try augmentation.apply(image, outputSize: 64, using: &first)
            let b = try augmentation.apply(image, outputSize: 64, using: &second)
            let c = try augmentation.apply(image, outputSize: 64, using: &other)
            #expect(a == b)
            #expect(a.width == 64 && a.height == 64 && a.channels == 3)
            differs = differs || a != c
        }
        #expect(differs == (augmentation != .none))
        #expect(first.state == second.state)
    }

    /// torchvision's RandomCrop(32, padding=4) then RandomHorizontalFlip: a 32x32 window of the image inside a black
    /// border of 4, mirrored or not.
    @Test func cropIsItsDefinition() throws {
        let image = try formulaImage().resized(width: 32, height: 32)
        let padded = image.padded(by: 4)
        #expect(padded.width == 40 && padded.height == 40)
        #expect(padded.pixels[0..<(40 * 4 * 3)].allSatisfy { $0 == 0 })
        #expect(try padded.cropped(x: 4, y: 4, width: 32, height: 32) == image)
        var offsets = Set<Int>()
        for seed: UInt64 in 0 ..< 40 {
            var generator = RandomGenerator(seed: seed), spelledOut = generator
            let output = try Augmentation.crop(padding: 4).apply(image, outputSize: 32, using: &generator)
            let y = spelledOut.integer(below: 9), x = spelledOut.integer(below: 9)
            let window = try padded.cropped(x: x, y: y, width: 32, height: 32)
            #expect(output == window.randomlyFlipped(using: &spelledOut))
            offsets.insert(y * 9 + x)
        }
        #expect(offsets.count > 20, "the windows should move over the 9 x 9 offsets")
        let none = ImageDataset(name: "none", channels: 3, height: 1, width: 1, pixels: [], labels: [], classNames: [])
        #expect(try Augmentation.named("crop:2", for: none) == .crop(padding: 2))
        #expect(throws: TransformError.self) { try Augmentation.checkName("crop:x") }
        #expect(throws: TransformError.self) { try Augmentation.checkName("cutout:") }
        #expect(throws: TransformError.self) { try Augmentation.checkName("cutout:8:x") }
        #expect(throws: TransformError.self) { try Augmentation.checkName("cutouts") }
    }

    /// DeVries & Taylor's cutout: the crop's image with a size x size square around a random centre, clipped at the
    /// border, set to the fill colour; the fill of `named` is the data's mean colour.
    @Test func cutoutIsItsDefinition() throws {
        var clippedGenerator = RandomGenerator(seed: 0)
        let image = try formulaImage().resized(width: 32, height: 32)
        let fill: [UInt8] = [200, 100, 50]
        var clipped = 0
        for seed: UInt64 in 0 ..< 40 {
            var generator = RandomGenerator(seed: seed), spelledOut = generator
            let output = try Augmentation.cutout(padding: 4, size: 16, fill: fill).apply(image, outputSize: 32, using: &generator)
            let cropped = try Augmentation.crop(padding: 4).apply(image, outputSize: 32, using: &spelledOut)
            let y = spelledOut.integer(below: 32), x = spelledOut.integer(below: 32)
            var expected = cropped.pixels
            var filled = 0
            for row in 0 ..< 32 where row >= y - 8 && row < y + 8 {
                for column in 0 ..< 32 where column >= x - 8 && column < x + 8 {
                    expected.replaceSubrange((row * 32 + column) * 3 ..< (row * 32 + column) * 3 + 3, with: fill)
                    filled += 1
                }
            }
            #expect(output.pixels == expected)
            #expect(filled <= 256 && filled >= 64)
            if filled < 256 { clipped += 1 }
        }
        #expect(clipped > 0 && clipped < 40, "some squares should cross the border, some not")
        let grey = ImageDataset(name: "grey", channels: 3, height: 2, width: 1, pixels: [10, 20, 20, 40, 31, 60], // planar
                                labels: [0], classNames: ["a"])
        #expect(try Augmentation.named("cutout", for: grey) == .cutout(padding: 4, size: 16, fill: [15, 30, 46]))
        #expect(try Augmentation.named("cutout:8:2", for: grey) == .cutout(padding: 2, size: 8, fill: [15, 30, 46]))
        #expect(Augmentation.cutout(padding: 4, size: 8, fill: [0]).name == "cutout:8")
        #expect(throws: TransformError.self) {
            try Augmentation.cutout(padding: 4, size: 8, fill: [0]).apply(image, outputSize: 32, using: &clippedGenerator)
        }
    }

    @Test func vggIsItsDefinition() throws {
        // The recipe spelled out with the same generator: S = 256 + a draw below 257 (so 256...512 at 224), the
        // shorter side resized to S, a random 224 window, a random flip, then the colour shift if asked for.
        let image = formulaImage()
        for seed: UInt64 in 0 ..< 4 {
            var generator = RandomGenerator(seed: seed), spelledOut = generator
            let output = try Augmentation.vgg(colourShift: .imageNet).apply(image, outputSize: 224, using: &generator)
            let side = 256 + spelledOut.integer(below: 257)
            let expected = try image.resized(shorterSide: side)
                .randomlyCropped(width: 224, height: 224, using: &spelledOut)
                .randomlyFlipped(using: &spelledOut)
                .addingPCAColourNoise(.imageNet, using: &spelledOut)
            #expect(output == expected, "seed \(seed), S = \(side)")
            #expect(generator.state == spelledOut.state)
        }
    }
}

/// Whether `window` is the part of `image` whose top left pixel is (x, y) (compared in place, row by row).
private func isWindow(_ window: Image, of image: Image, x: Int, y: Int) -> Bool {
    let row = window.width * window.channels
    for line in 0 ..< window.height {
        let start = ((y + line) * image.width + x) * image.channels
        if !image.pixels[start ..< start + row].elementsEqual(window.pixels[line * row ..< (line + 1) * row]) { return false }
    }
    return true
}

@Suite("Augmentation in the loader")
struct LoaderAugmentationTests {
    static func batches(_ dataset: ImageDataset, augmentation: Augmentation?, seed: UInt64, epoch: Int, startBatch: Int = 0) -> [[Float]] {
        let loader = BatchLoader(dataset: dataset, batchSize: 4, inputSize: 40, format: .unit(channels: 3), shuffleSeed: seed,
                                 epoch: epoch, startBatch: startBatch, augmentation: augmentation)
        defer { loader.stop() }
        var result: [[Float]] = []
        while let batch = loader.next() { result.append(batch.images.values) }
        return result
    }

    @Test func sameSeedSameImagesAndAResumedEpochContinuesIt() throws {
        let cifar = try CIFAR10.load(.test, from: sharedDataRoot() + "/cifar-10-batches-bin").prefix(12)
        let alexnet = try #require(try Augmentation.named("alexnet", for: cifar))
        let first = Self.batches(cifar, augmentation: alexnet, seed: 3, epoch: 1)
        #expect(first.count == 3)
        #expect(Self.batches(cifar, augmentation: alexnet, seed: 3, epoch: 1) == first)
        #expect(Self.batches(cifar, augmentation: alexnet, seed: 3, epoch: 1, startBatch: 1) == Array(first.dropFirst()))
        #expect(Self.batches(cifar, augmentation: alexnet, seed: 3, epoch: 2) != first, "another epoch, other crops")
        #expect(Self.batches(cifar, augmentation: alexnet, seed: 4, epoch: 1) != first)
        #expect(Self.batches(cifar, augmentation: nil, seed: 3, epoch: 1) != first)
        #expect(first.joined().allSatisfy { $0.isFinite })
    }

    @Test func augmentationsByName() throws {
        let cifar = try CIFAR10.load(.test, from: sharedDataRoot() + "/cifar-10-batches-bin").prefix(50)
        #expect(try Augmentation.named("none", for: cifar) == nil)
        #expect(try Augmentation.named("flip", for: cifar) == .flip)
        #expect(try Augmentation.named("vgg", for: cifar)?.name == "vgg")
        #expect(throws: TransformError.self) { try Augmentation.named("mixup", for: cifar) }
        let mnist = try MNIST.load(.test, from: sharedDataRoot() + "/mnist").prefix(10)
        #expect(throws: TransformError.self) { try Augmentation.named("alexnet", for: mnist) }
    }
}

@Suite("Ten-crop evaluation")
struct TenCropEvaluationTests {
    /// runTenCrop batches the 10 crops of several images together; image by image, crop by crop, the same figures.
    @Test func equalsTheCropsOneByOne() throws {
        let cifar = try CIFAR10.load(.test, from: sharedDataRoot() + "/cifar-10-batches-bin").prefix(3)
        let model = try ModelZoo.make("vgg11", inputSize: 32, classes: 10, seed: 9)
        let report = try Evaluation.runTenCrop(model: model, dataset: cifar, imagesPerBatch: 2)
        var loss = 0.0
        var predictions: [Int] = []
        for index in 0..<cifar.count {
            let square = try cifar.image(at: index).resized(shorterSide: 37).centreCropped(width: 37, height: 37)
            var mean = [Double](repeating: 0, count: 10)
            for crop in try square.tenCrops(width: 32, height: 32) {
                let values = (0..<3).flatMap { c in (0..<(32 * 32)).map { p in Float(crop.pixels[p * 3 + c]) / 255 } }
                let format = model.inputFormat
                let input = Tensor(shape: [1, 3, 32, 32], values: values.enumerated().map { i, v in
                    v * format.scale[i / 1024] + format.offset[i / 1024]
                })
                let probabilities = model.loss.probabilities(output: model.forward(input))[0]
                for j in 0..<10 { mean[j] += Double(probabilities[j]) / 10 }
            }
            loss -= log(mean[Int(cifar.labels[index])])
            predictions.append(mean.indices.max { mean[$0] < mean[$1] }!)
        }
        #expect(abs(report.loss - loss / 3) < 1e-5, "\(report.loss) vs \(loss / 3)")
        #expect(report.count == 3)
        #expect(report.confusionMatrix.joined().reduce(0, +) == 3)
        for (index, predicted) in predictions.enumerated() {
            #expect(report.confusionMatrix[Int(cifar.labels[index])][predicted] >= 1)
        }
    }
}
