// Labelled image sets held as bytes (a dataset in memory costs one byte per pixel, never a float), and the
// errors that readers report.

/// A dataset file that cannot be used: the file and the reason.
public struct DataError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// Images as bytes, [count, channels, height, width] (planar per image), with one label per image.
public struct ImageDataset: Sendable {
    public let name: String
    public let channels: Int, height: Int, width: Int
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let classNames: [String]

    public init(name: String, channels: Int, height: Int, width: Int, pixels: [UInt8], labels: [UInt8], classNames: [String]) {
        precondition(pixels.count == labels.count * channels * height * width)
        self.name = name
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.classNames = classNames
    }

    public var count: Int { labels.count }
    public var imageSize: Int { channels * height * width }

    /// The first `count` images (for quick runs and tests).
    public func prefix(_ count: Int) -> ImageDataset {
        let n = min(count, self.count)
        return ImageDataset(name: name, channels: channels, height: height, width: width,
                            pixels: Array(pixels[0..<(n * imageSize)]), labels: Array(labels[0..<n]), classNames: classNames)
    }
}
