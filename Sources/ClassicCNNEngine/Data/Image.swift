// Images in memory: 8-bit grey or RGB pixels, interleaved. Reading and writing files (PNG, JPEG) is ClassicCNNIO's.

/// An 8-bit image, grey or RGB, with its pixels interleaved row by row (height x width x channels).
public struct Image: Equatable, Sendable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Bytes per pixel: 1 (grey) or 3 (red, green, blue).
    public var channels: Int
    /// `height * width * channels` bytes: rows top to bottom, pixels left to right, channels interleaved.
    public var pixels: [UInt8]

    /// Creates an image from interleaved pixels.
    ///
    /// - Precondition: `channels` is 1 or 3, and `pixels.count == width * height * channels`.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "an image has 1 or 3 channels, not \(channels)")
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * channels,
                     "\(pixels.count) bytes do not make a \(width)x\(height)x\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image from planar bytes [channels, height, width], as datasets hold them.
    public init(width: Int, height: Int, channels: Int, planar: [UInt8]) {
        let area = width * height
        var interleaved = [UInt8](repeating: 0, count: planar.count)
        for c in 0..<channels { for i in 0..<area { interleaved[i * channels + c] = planar[c * area + i] } }
        self.init(width: width, height: height, channels: channels, pixels: interleaved)
    }

    /// The image with `channels` channels: grey by luma (`grey()`), or grey repeated in red, green and blue.
    public func converted(toChannels channels: Int) -> Image {
        if channels == self.channels { return self }
        if channels == 1 { return grey() }
        return Image(width: width, height: height, channels: 3, pixels: pixels.flatMap { [$0, $0, $0] })
    }

    /// The pixels as planar bytes [channels, height, width], as datasets and the loader hold them.
    public var planarPixels: [UInt8] {
        let area = width * height
        var planar = [UInt8](repeating: 0, count: pixels.count)
        for c in 0..<channels { for i in 0..<area { planar[c * area + i] = pixels[i * channels + c] } }
        return planar
    }

    /// The image in grey levels: luma 0.299 R + 0.587 G + 0.114 B, rounded. A grey image is returned as it is.
    public func grey() -> Image {
        guard channels == 3 else { return self }
        let count = width * height
        let luma = [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
            pixels.withUnsafeBufferPointer { rgb in
                for i in 0 ..< count {
                    let weighted = 299 * Int(rgb[3 * i]) + 587 * Int(rgb[3 * i + 1]) + 114 * Int(rgb[3 * i + 2])
                    output[i] = UInt8((weighted + 500) / 1000)
                }
            }
            initialized = count
        }
        return Image(width: width, height: height, channels: 1, pixels: luma)
    }
}

