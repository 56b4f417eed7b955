// Images: 8-bit grey or RGB pixels decoded from PNG/JPEG files (through the CCodecs shims over libpng
// and libjpeg), encoded back to PNG, and turned into MNIST-style 28x28 digits.
import CCodecs
import ClassicCNNEngine
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Image {
    /// The largest image decoded: 100 megapixels. Anything larger is refused before pixels are allocated.
    public static let maximumPixels = 100_000_000

    /// Reads and decodes a PNG or JPEG file.
    ///
    /// PNG palette, 16-bit and alpha images become 8-bit grey or RGB (alpha composited over white);
    /// JPEG CMYK becomes RGB. Metadata such as EXIF orientation is ignored.
    /// - Throws: `ImageError` naming `path` if the file is missing or unreadable, is neither PNG nor JPEG,
    ///   is corrupt or truncated, or has more than ``maximumPixels`` pixels.
    public static func load(path: String) throws -> Image {
        try decode(readFile(path), name: path)
    }

    /// Decodes the bytes of a PNG or JPEG file (told apart by their first bytes).
    ///
    /// - Parameters:
    ///   - bytes: the file's contents.
    ///   - name: What to call the data in errors, typically the path it came from.
    /// - Throws: `ImageError` named `name` if the data is not a valid PNG or JPEG image, or is too large.
    public static func decode(_ bytes: [UInt8], name: String) throws -> Image {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        let failure = callingC { error, capacity in
            bytes.withUnsafeBufferPointer { data in
                ccodecs_decode_image(data.baseAddress, data.count, maximumPixels,
                                     &pixels, &width, &height, &channels, error, capacity)
            }
        }
        if let failure { throw ImageError(path: name, reason: failure) }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * Int(channels)
        return Image(width: Int(width), height: Int(height), channels: Int(channels),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// The size and channels of a PNG or JPEG file, checked without decoding its pixels: the header, the
    /// dimensions, and that the file is not cut short. Cheap enough to run on every file of a large folder;
    /// corrupt compressed data inside a whole file is found only by ``load(path:)``.
    ///
    /// - Throws: `ImageError` naming `path`, as ``load(path:)`` would for a bad header.
    public static func info(path: String) throws -> (width: Int, height: Int, channels: Int) {
        let bytes = try readFile(path)
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        let failure = callingC { error, capacity in
            bytes.withUnsafeBufferPointer { data in
                ccodecs_image_info(data.baseAddress, data.count, maximumPixels, &width, &height, &channels, error, capacity)
            }
        }
        if let failure { throw ImageError(path: path, reason: failure) }
        return (Int(width), Int(height), Int(channels))
    }

    /// The image encoded as a PNG file.
    ///
    /// - Throws: `ImageError` if the image is empty or encoding fails.
    public func pngData() throws -> [UInt8] {
        try encodePNG(name: "<\(width)x\(height) image>")
    }

    /// Writes the image as a PNG file, replacing any file at `path` only once the new one is complete
    /// (it is written to a temporary file in the same directory, then renamed).
    ///
    /// - Throws: `ImageError` naming `path` if encoding, writing or renaming fails.
    public func writePNG(path: String) throws {
        let data = try encodePNG(name: path)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        guard let file = fopen(temporary, "wb") else {
            throw ImageError(path: path, reason: "cannot create \(temporary): \(systemError())")
        }
        let written = data.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let writeError = written == data.count ? nil : systemError()
        let closeError = fclose(file) == 0 ? nil : systemError()
        if let reason = writeError ?? closeError {
            unlink(temporary)
            throw ImageError(path: path, reason: "cannot write \(temporary): \(reason)")
        }
        if rename(temporary, path) != 0 {
            let reason = systemError()
            unlink(temporary)
            throw ImageError(path: path, reason: "cannot rename \(temporary) to it: \(reason)")
        }
    }

    private func encodePNG(name: String) throws -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        let failure = callingC { error, capacity in
            pixels.withUnsafeBufferPointer { data in
                ccodecs_encode_png(data.baseAddress, Int32(clamping: width), Int32(clamping: height),
                                   Int32(channels), &output, &length, error, capacity)
            }
        }
        if let failure { throw ImageError(path: name, reason: failure) }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// The largest image file read (a 100-megapixel PNG or JPEG is far smaller).
    public static let maximumFileSize = 256 << 20

    private static func readFile(_ path: String) throws -> [UInt8] {
        // Only regular files: /dev/zero or a FIFO would otherwise be read forever.
        var info = stat()
        guard stat(path, &info) == 0 else { throw ImageError(path: path, reason: systemError()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ImageError(path: path, reason: "not a regular file") }
        guard Int(info.st_size) <= maximumFileSize else {
            throw ImageError(path: path, reason: "\(info.st_size) bytes is larger than the \(maximumFileSize >> 20) MB an image may have")
        }
        guard let file = fopen(path, "rb") else { throw ImageError(path: path, reason: systemError()) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count <= maximumFileSize {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            bytes.append(contentsOf: chunk[..<count])
            if count < chunk.count { break }
        }
        guard bytes.count <= maximumFileSize else { throw ImageError(path: path, reason: "larger than \(maximumFileSize >> 20) MB") }
        if ferror(file) != 0 { throw ImageError(path: path, reason: "cannot read: \(systemError())") }
        return bytes
    }
}

/// Calls a CCodecs function with an error buffer; returns its message if the call failed, nil if it succeeded.
private func callingC(_ call: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> String? {
    var buffer = [CChar](repeating: 0, count: 512)
    let status = buffer.withUnsafeMutableBufferPointer { call($0.baseAddress!, $0.count) }
    guard status != 0 else { return nil }
    let message = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: message, as: UTF8.self)
}

/// The text of the current `errno`.
private func systemError() -> String {
    String(cString: strerror(errno))
}

// MARK: - MNIST-style digits

/// Converts any picture of one handwritten digit to a 28x28 MNIST-like image, values in [0,1], white ink on black,
/// row-major, 784 floats, following how MNIST was made: grey; polarity detected (if the background, estimated from
/// the border pixels, is lighter than the ink, invert, so dark ink on light paper becomes light on dark); background
/// level subtracted and contrast stretched; crop to the bounding box of the ink (pixels above a threshold); scale so the
/// larger side is 20 pixels, preserving aspect ratio, with area-averaging (antialiased) resampling; place in a 28x28
/// field so the centre of mass of the pixel intensities is at the centre (14,14) (round the shift, clip at borders).
///
/// The background is taken as the median of the border pixels (for polarity) and as their 90th percentile (the level
/// subtracted, so that paper texture and mild uneven lighting vanish); the ink is what rises above 20% of the
/// stretched range. A picture with no contrast gives 784 zeros.
public func mnistStyleDigit(_ image: Image) -> [Float] {
    let field = 28, box = 20, inkThreshold: Float = 0.2
    let blank = [Float](repeating: 0, count: field * field)
    let grey = image.grey()
    let width = grey.width, height = grey.height
    guard width > 0, height > 0 else { return blank }
    var values = grey.pixels.map { Float($0) / 255 }

    // Polarity: MNIST is light ink on a dark background.
    let mean = values.reduce(0, +) / Float(values.count)
    if median(borderValues(values, width: width, height: height)) > mean {
        for i in values.indices { values[i] = 1 - values[i] }
    }

    // Background removed, contrast stretched to [0, 1].
    let background = percentile(borderValues(values, width: width, height: height), 0.9)
    let peak = values.max() ?? 0
    guard peak - background > 1 / 255 else { return blank }
    for i in values.indices { values[i] = max(0, (values[i] - background) / (peak - background)) }

    // Bounding box of the ink.
    var left = width, right = -1, top = height, bottom = -1
    for y in 0 ..< height {
        for x in 0 ..< width where values[y * width + x] > inkThreshold {
            left = min(left, x); right = max(right, x)
            top = min(top, y); bottom = max(bottom, y)
        }
    }
    guard right >= left else { return blank }
    let cropWidth = right - left + 1, cropHeight = bottom - top + 1
    var crop = [Float](repeating: 0, count: cropWidth * cropHeight)
    for y in 0 ..< cropHeight {
        for x in 0 ..< cropWidth { crop[y * cropWidth + x] = values[(top + y) * width + left + x] }
    }

    // Larger side to 20 pixels, aspect ratio kept.
    let scale = Double(box) / Double(max(cropWidth, cropHeight))
    let scaledWidth = max(1, Int((Double(cropWidth) * scale).rounded()))
    let scaledHeight = max(1, Int((Double(cropHeight) * scale).rounded()))
    let digit = resizeByAreaAveraging(crop, width: cropWidth, height: cropHeight,
                                      toWidth: scaledWidth, height: scaledHeight)

    // Centre of mass to (14, 14), in pixel-index coordinates as MNIST has it.
    var mass: Float = 0, massX: Float = 0, massY: Float = 0
    for y in 0 ..< scaledHeight {
        for x in 0 ..< scaledWidth {
            let value = digit[y * scaledWidth + x]
            mass += value; massX += value * Float(x); massY += value * Float(y)
        }
    }
    guard mass > 0 else { return blank }
    let shiftX = Int((Float(field / 2) - massX / mass).rounded())
    let shiftY = Int((Float(field / 2) - massY / mass).rounded())
    var result = blank
    for y in 0 ..< scaledHeight where (0 ..< field).contains(y + shiftY) {
        for x in 0 ..< scaledWidth where (0 ..< field).contains(x + shiftX) {
            result[(y + shiftY) * field + x + shiftX] = digit[y * scaledWidth + x]
        }
    }
    return result
}

/// The pixels of the outermost rows and columns.
private func borderValues(_ values: [Float], width: Int, height: Int) -> [Float] {
    var border: [Float] = []
    for x in 0 ..< width {
        border.append(values[x])
        if height > 1 { border.append(values[(height - 1) * width + x]) }
    }
    for y in 1 ..< max(1, height - 1) {
        border.append(values[y * width])
        if width > 1 { border.append(values[y * width + width - 1]) }
    }
    return border
}

private func median(_ values: [Float]) -> Float { percentile(values, 0.5) }

/// The value below which the fraction `p` of `values` lies (nearest rank); `values` must not be empty.
private func percentile(_ values: [Float], _ p: Double) -> Float {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

/// Resamples a single-channel image so that each output pixel is the mean of the input area it covers
/// (input pixels weighted by their overlap), one axis at a time.
private func resizeByAreaAveraging(_ values: [Float], width: Int, height: Int,
                                   toWidth newWidth: Int, height newHeight: Int) -> [Float] {
    let columns = areaWeights(from: width, to: newWidth)
    let rows = areaWeights(from: height, to: newHeight)
    var horizontal = [Float](repeating: 0, count: height * newWidth)
    for y in 0 ..< height {
        for (x, taps) in columns.enumerated() {
            horizontal[y * newWidth + x] = taps.reduce(0) { $0 + $1.weight * values[y * width + $1.index] }
        }
    }
    var result = [Float](repeating: 0, count: newHeight * newWidth)
    for (y, taps) in rows.enumerated() {
        for x in 0 ..< newWidth {
            result[y * newWidth + x] = taps.reduce(0) { $0 + $1.weight * horizontal[$1.index * newWidth + x] }
        }
    }
    return result
}

/// For each of `count` output pixels along an axis of `length` input pixels, the input pixels it covers and
/// the weights (fractions of the output pixel's footprint, summing to 1).
private func areaWeights(from length: Int, to count: Int) -> [[(index: Int, weight: Float)]] {
    let step = Double(length) / Double(count)
    return (0 ..< count).map { output in
        let start = Double(output) * step, end = Double(output + 1) * step
        let first = Int(start.rounded(.down)), last = min(length, Int(end.rounded(.up)))
        return (first ..< last).compactMap { index in
            let overlap = min(end, Double(index + 1)) - max(start, Double(index))
            return overlap > 0 ? (index, Float(overlap / step)) : nil
        }
    }
}
