// Tests of image decoding (PNG in its many forms, JPEG), PNG encoding, error reporting, and
// MNIST-style digit preprocessing, on the sample images under $CNN_DATA_DIR/samples and on tiny
// PNG files built here byte by byte.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite struct ImageDecodingTests {
    @Test func decodesGreyPNG() throws {
        let image = try Image.load(path: sample("mnist-test-0000-label7.png"))
        #expect(image.width == 28 && image.height == 28 && image.channels == 1)
        #expect(image.pixels[0] == 0)
        #expect(image.pixels.max() == 255)
    }

    @Test func decodesRGBPNG() throws {
        let image = try Image.load(path: sample("cifar-test-0002-deer.png"))
        #expect(image.width == 32 && image.height == 32 && image.channels == 3)
        #expect(image.pixels.count == 32 * 32 * 3)
    }

    @Test func decodesJPEGCloseToThePNGOfTheSamePicture() throws {
        for name in ["cifar-test-0002-deer", "cifar-test-0003-ship", "cifar-test-0024-bird"] {
            let jpeg = try Image.load(path: sample(name + ".jpg"))
            let png = try Image.load(path: sample(name + ".png"))
            #expect(jpeg.width == png.width && jpeg.height == png.height && jpeg.channels == png.channels)
            let difference = meanAbsoluteDifference(jpeg.pixels.map(Float.init), png.pixels.map(Float.init))
            #expect(difference < 4, "\(name): JPEG differs from PNG by \(difference) levels on average")
        }
    }

    @Test func decodes16BitPNG() throws {
        // Grey, 16 bits: each sample becomes its high byte, rounded (no gamma change).
        let greySamples: [UInt16] = [0x0000, 0xFFFF, 0x8080, 0x1234]
        let grey = try Image.decode(
            makePNG(width: 4, height: 1, bitDepth: 16, colorType: 0, rows: [bigEndian(greySamples)]), name: "grey16")
        #expect(grey == Image(width: 4, height: 1, channels: 1, pixels: [0, 255, 128, 18]))

        let rgbSamples: [UInt16] = [0xFFFF, 0x0000, 0x8080]
        let rgb = try Image.decode(
            makePNG(width: 1, height: 1, bitDepth: 16, colorType: 2, rows: [bigEndian(rgbSamples)]), name: "rgb16")
        #expect(rgb == Image(width: 1, height: 1, channels: 3, pixels: [255, 0, 128]))
    }

    @Test func decodesPalettePNG() throws {
        // Red, blue, and a green made fully transparent by tRNS (so it shows the white background).
        let palette: [UInt8] = [255, 0, 0, 0, 0, 255, 0, 255, 0]
        let bytes = makePNG(width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[0, 1, 2]],
                            palette: palette, transparency: [255, 255, 0])
        let image = try Image.decode(bytes, name: "palette")
        #expect(image == Image(width: 3, height: 1, channels: 3, pixels: [255, 0, 0, 0, 0, 255, 255, 255, 255]))
    }

    @Test func decodesLowBitDepthGreyPNG() throws {
        // 1-bit grey: 0b1010_0000 is white, black, white, black.
        let bits = try Image.decode(makePNG(width: 4, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1010_0000]]),
                                    name: "grey1")
        #expect(bits == Image(width: 4, height: 1, channels: 1, pixels: [255, 0, 255, 0]))
    }

    @Test func compositesAlphaOverWhite() throws {
        // Grey + alpha: opaque 100, transparent 100.
        let greyAlpha = try Image.decode(
            makePNG(width: 2, height: 1, bitDepth: 8, colorType: 4, rows: [[100, 255, 100, 0]]), name: "grey+alpha")
        #expect(greyAlpha == Image(width: 2, height: 1, channels: 1, pixels: [100, 255]))

        // RGBA: opaque, transparent, and half transparent black (which must come out somewhere in between).
        let rgba = try Image.decode(
            makePNG(width: 3, height: 1, bitDepth: 8, colorType: 6,
                    rows: [[10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128]]), name: "rgba")
        #expect(rgba.channels == 3)
        #expect(Array(rgba.pixels[0 ..< 6]) == [10, 20, 30, 255, 255, 255])
        #expect(rgba.pixels[6 ..< 9].allSatisfy { $0 > 60 && $0 < 200 })
    }

    @Test func pngRoundTripIsExact() throws {
        let rgb = try Image.load(path: sample("cifar-test-0002-deer.png"))
        #expect(try Image.decode(rgb.pngData(), name: "deer") == rgb)
        let grey = rgb.grey()
        #expect(try Image.decode(grey.pngData(), name: "deer grey") == grey)

        let path = temporaryPath("round-trip.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try rgb.writePNG(path: path)
        try grey.writePNG(path: path) // replaces the first
        #expect(try Image.load(path: path) == grey)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
            .filter { $0.hasPrefix("round-trip.png.tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test func greyUsesRoundedLuma() {
        let image = Image(width: 3, height: 1, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 10, 20, 30])
        // 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 2.99 + 11.74 + 3.42 = 18.15
        #expect(image.grey() == Image(width: 3, height: 1, channels: 1, pixels: [76, 150, 18]))
        #expect(image.grey().grey() == image.grey())
    }
}

@Suite struct ImageErrorTests {
    @Test func truncatedPNGIsAnError() throws {
        let bytes = try readSample("cifar-test-0002-deer.png")
        try expectLoadFails(Array(bytes.prefix(bytes.count / 2)), named: "truncated.png")
        // Cut inside the final IEND chunk: every pixel is there, but the file is still incomplete.
        try expectLoadFails(Array(bytes.prefix(bytes.count - 2)), named: "no-end.png")
    }

    @Test func truncatedJPEGIsAnError() throws {
        let bytes = try readSample("cifar-test-0002-deer.jpg")
        let error = try expectLoadFails(Array(bytes.prefix(bytes.count / 2)), named: "truncated.jpg")
        #expect(error?.reason.contains("Premature end") == true)
        // Cut inside the final EOI marker.
        try expectLoadFails(Array(bytes.prefix(bytes.count - 1)), named: "no-end.jpg")
    }

    @Test func corruptJPEGHeaderIsAnError() throws {
        try expectLoadFails([0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x42] + [UInt8](repeating: 0x42, count: 100),
                            named: "corrupt.jpg")
    }

    @Test func textFileIsNotAnImage() throws {
        let error = try expectLoadFails(Array("hello, world\n".utf8), named: "notes.png")
        #expect(error?.reason == "not a PNG or JPEG image (starts with bytes 68 65 6C 6C)")
        let pdf = #expect(throws: ImageError.self) { try Image.decode(Array("%PDF-1.4".utf8), name: "a.pdf") }
        #expect(pdf?.description == "a.pdf: not a PNG or JPEG image (starts with bytes 25 50 44 46)")
    }

    @Test func missingFileIsAnError() {
        let path = temporaryPath("does-not-exist.png")
        let error = #expect(throws: ImageError.self) { try Image.load(path: path) }
        #expect(error?.path == path)
        #expect(error?.reason.contains("No such file") == true)
        let directory = FileManager.default.temporaryDirectory.path
        let unreadable = #expect(throws: ImageError.self) { try Image.load(path: directory) }
        #expect(unreadable?.path == directory)
    }

    @Test func hugeImageIsRefusedBeforeDecoding() {
        // The header claims 20000 x 20000 = 400 megapixels; the pixel data is not even there.
        let bytes = makePNG(width: 20000, height: 20000, bitDepth: 8, colorType: 0, rows: [])
        let error = #expect(throws: ImageError.self) { try Image.decode(bytes, name: "huge.png") }
        #expect(error?.reason.contains("too large") == true)
    }

    @Test func encodingAnEmptyImageIsAnError() {
        #expect(throws: ImageError.self) { try Image(width: 0, height: 0, channels: 1, pixels: []).pngData() }
    }

    /// Writes `bytes` to a temporary file, loads it, and expects an ``ImageError`` naming that file.
    @discardableResult
    private func expectLoadFails(_ bytes: [UInt8], named name: String) throws -> ImageError? {
        let path = temporaryPath(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: ImageError.self) { try Image.load(path: path) }
        #expect(error?.path == path)
        #expect(error?.description.hasPrefix(path + ": ") == true)
        return error
    }
}

@Suite struct MNISTStyleDigitTests {
    @Test func anMNISTDigitStaysAlmostTheSame() throws {
        let image = try Image.load(path: sample("mnist-test-0000-label7.png"))
        let original = image.pixels.map { Float($0) / 255 }
        let digit = mnistStyleDigit(image)
        #expect(digit.count == 784)
        #expect(digit.allSatisfy { $0 >= 0 && $0 <= 1 })
        let difference = meanAbsoluteDifference(digit, original)
        #expect(difference < 0.08, "mean absolute difference \(difference)")
    }

    @Test func darkInkOnPaperEnlargedAndOffCentreComesBack() throws {
        let image = try Image.load(path: sample("mnist-test-0000-label7.png"))
        let original = image.pixels.map { Float($0) / 255 }
        // Dark ink on white paper, 3x larger, in the top-left part of a 160 x 120 RGB page.
        let scale = 3, pageWidth = 160, pageHeight = 120, left = 17, top = 9
        var page = [UInt8](repeating: 255, count: pageWidth * pageHeight * 3)
        for y in 0 ..< 28 * scale {
            for x in 0 ..< 28 * scale {
                let ink = 255 - image.pixels[(y / scale) * 28 + x / scale]
                for c in 0 ..< 3 { page[((top + y) * pageWidth + left + x) * 3 + c] = ink }
            }
        }
        let digit = mnistStyleDigit(Image(width: pageWidth, height: pageHeight, channels: 3, pixels: page))
        let difference = meanAbsoluteDifference(digit, original)
        #expect(difference < 0.12, "mean absolute difference \(difference)")
    }

    @Test func greyInkOnUnevenlyLitNoisyPaperComesBack() throws {
        let image = try Image.load(path: sample("mnist-test-0000-label7.png"))
        let original = image.pixels.map { Float($0) / 255 }
        // Paper from 200 (left) to 150 (right) with a fixed pattern of +-10 noise, ink at 50, digit 7x larger.
        let scale = 7, pageWidth = 400, pageHeight = 300, left = 150, top = 60
        var page = [UInt8](repeating: 0, count: pageWidth * pageHeight)
        for y in 0 ..< pageHeight {
            for x in 0 ..< pageWidth {
                var level = 200 - 50 * Float(x) / Float(pageWidth) + Float((x * 7 + y * 13) % 21 - 10)
                let digitX = x - left, digitY = y - top
                if (0 ..< 28 * scale).contains(digitX) && (0 ..< 28 * scale).contains(digitY) {
                    let ink = Float(image.pixels[(digitY / scale) * 28 + digitX / scale]) / 255
                    level = level * (1 - ink) + 50 * ink
                }
                page[y * pageWidth + x] = UInt8(max(0, min(255, level)))
            }
        }
        let digit = mnistStyleDigit(Image(width: pageWidth, height: pageHeight, channels: 1, pixels: page))
        let difference = meanAbsoluteDifference(digit, original)
        #expect(difference < 0.12, "mean absolute difference \(difference)")
    }

    @Test func otherMNISTSamplesStayClose() throws {
        for name in ["mnist-test-0001-label2.png", "mnist-test-0003-label0.png", "mnist-test-0061-label8.png"] {
            let image = try Image.load(path: sample(name))
            let difference = meanAbsoluteDifference(mnistStyleDigit(image), image.pixels.map { Float($0) / 255 })
            #expect(difference < 0.1, "\(name): mean absolute difference \(difference)")
        }
    }

    @Test func aBlankPictureGivesZeros() {
        let blank = Image(width: 50, height: 40, channels: 1, pixels: [UInt8](repeating: 200, count: 2000))
        #expect(mnistStyleDigit(blank) == [Float](repeating: 0, count: 784))
        #expect(mnistStyleDigit(Image(width: 0, height: 0, channels: 3, pixels: [])).count == 784)
    }
}

// MARK: - Helpers

/// The path of a sample image under the shared data folder (`$CNN_DATA_DIR/samples`).
private func sample(_ name: String) throws -> String {
    try sharedDataRoot() + "/samples/" + name
}

/// The raw bytes of a sample file.
private func readSample(_ name: String) throws -> [UInt8] {
    try [UInt8](Data(contentsOf: URL(fileURLWithPath: sample(name))))
}

/// A path in the temporary directory, unique to this test run.
private func temporaryPath(_ name: String) -> String {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("ImageTests-\(ProcessInfo.processInfo.processIdentifier)")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent(name).path
}

private func meanAbsoluteDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { $0 + abs($1.0 - $1.1) } / Float(a.count)
}

private func bigEndian(_ samples: [UInt16]) -> [UInt8] {
    samples.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
}

/// Builds a PNG file byte by byte: IHDR, optional PLTE and tRNS, one IDAT holding the rows (filter type 0)
/// as an uncompressed zlib stream, and IEND. This reaches formats the encoder never writes.
private func makePNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
                     palette: [UInt8]? = nil, transparency: [UInt8]? = nil) -> [UInt8] {
    func uint32(_ value: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) } }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + data
        return uint32(data.count) + typed + uint32(Int(crc32(typed)))
    }
    let raw: [UInt8] = rows.flatMap { [0] + $0 }
    // zlib header, deflate "stored" blocks of at most 65535 bytes, Adler-32.
    var zlib: [UInt8] = [0x78, 0x01]
    var blocks = stride(from: 0, to: raw.count, by: 65535).map { Array(raw[$0 ..< min(raw.count, $0 + 65535)]) }
    if blocks.isEmpty { blocks = [[]] }
    for (index, block) in blocks.enumerated() {
        let length = UInt16(block.count)
        zlib += [index == blocks.count - 1 ? 1 : 0, UInt8(length & 0xFF), UInt8(length >> 8),
                 UInt8(~length & 0xFF), UInt8(~length >> 8)] + block
    }
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
    zlib += uint32(Int(b << 16 | a))

    var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    file += chunk("IHDR", uint32(width) + uint32(height) + [bitDepth, colorType, 0, 0, 0])
    if let palette { file += chunk("PLTE", palette) }
    if let transparency { file += chunk("tRNS", transparency) }
    file += chunk("IDAT", zlib)
    file += chunk("IEND", [])
    return file
}

private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0 ..< 8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
