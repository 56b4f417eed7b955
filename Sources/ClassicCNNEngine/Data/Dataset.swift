// Labelled image sets: held as bytes (a dataset in memory costs one byte per pixel, never a float), or read one
// image at a time from their files (an image folder, which may be far larger than memory); and the errors that
// readers report.

/// Images produced on demand, one at a time, by the loader's background thread: nothing is held between batches.
public protocol ImageSource: Sendable {
    /// Image `index` as planar bytes [channels, height, width], in the dataset's channel count, at its own size.
    func image(at index: Int) throws -> (height: Int, width: Int, pixels: [UInt8])
}

/// Images with one label per image: either in memory as bytes, [count, channels, height, width] (planar per image),
/// or read on demand from a `source` (then `pixels` is empty and `height` and `width` are 0: each image has its own
/// size, and the loader resizes each to the model's input).
public struct ImageDataset: Sendable {
    public let name: String
    public let channels: Int, height: Int, width: Int
    public let pixels: [UInt8]
    public let labels: [Int32]
    public let classNames: [String]
    /// Where images come from when they are not in `pixels`.
    public let source: (any ImageSource)?

    public init(name: String, channels: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int32], classNames: [String]) {
        precondition(pixels.count == labels.count * channels * height * width)
        self.name = name
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.classNames = classNames
        self.source = nil
    }

    /// A dataset whose image i is `source.image(at: i)`, decoded only when a batch needs it.
    public init(name: String, channels: Int, labels: [Int32], classNames: [String], source: any ImageSource) {
        self.name = name
        self.channels = channels
        (height, width) = (0, 0)
        pixels = []
        self.labels = labels
        self.classNames = classNames
        self.source = source
    }

    public var count: Int { labels.count }
    public var imageSize: Int { channels * height * width }

    /// The first `count` images (for quick runs and tests).
    public func prefix(_ count: Int) -> ImageDataset {
        let n = min(count, self.count)
        if let source {
            return ImageDataset(name: name, channels: channels, labels: Array(labels[0..<n]), classNames: classNames, source: source)
        }
        return ImageDataset(name: name, channels: channels, height: height, width: width,
                            pixels: Array(pixels[0..<(n * imageSize)]), labels: Array(labels[0..<n]), classNames: classNames)
    }
}

extension ImageDataset {
    /// Images `range` (a rank's part of a validation set in data-parallel training).
    public func part(_ range: Range<Int>) -> ImageDataset {
        let range = range.clamped(to: 0 ..< count)
        if let source {
            return ImageDataset(name: name, channels: channels, labels: Array(labels[range]), classNames: classNames,
                                source: SelectedSource(base: source, indices: Array(range)))
        }
        return ImageDataset(name: name, channels: channels, height: height, width: width,
                            pixels: Array(pixels[(range.lowerBound * imageSize) ..< (range.upperBound * imageSize)]),
                            labels: Array(labels[range]), classNames: classNames)
    }

    /// The images of `classes` only, relabelled 0, 1, ... in the order given (MNIST's digits 5-9 as a 5-class
    /// dataset, for a fine-tuning experiment). Class numbers outside the dataset's are an error.
    public func selecting(classes: [Int]) throws -> ImageDataset {
        let known = max(classNames.count, Int(labels.max() ?? -1) + 1)
        guard !classes.isEmpty, classes.allSatisfy({ (0..<known).contains($0) }), Set(classes).count == classes.count else {
            throw DataError(path: name, reason: "cannot select classes \(classes): the dataset has classes 0...\(known - 1)")
        }
        var newLabel = [Int32](repeating: -1, count: known)
        for (index, old) in classes.enumerated() { newLabel[old] = Int32(index) }
        let kept = labels.indices.filter { labels[$0] >= 0 && Int(labels[$0]) < known && newLabel[Int(labels[$0])] >= 0 }
        let names = classes.map { $0 < classNames.count ? classNames[$0] : String($0) }
        let relabelled = kept.map { newLabel[Int(labels[$0])] }
        let label = "\(name)[\(classes.map(String.init).joined(separator: ","))]"
        if let source {
            return ImageDataset(name: label, channels: channels, labels: relabelled, classNames: names,
                                source: SelectedSource(base: source, indices: kept))
        }
        var selected = [UInt8]()
        selected.reserveCapacity(kept.count * imageSize)
        for index in kept { selected += pixels[(index * imageSize)..<((index + 1) * imageSize)] }
        return ImageDataset(name: label, channels: channels, height: height, width: width, pixels: selected, labels: relabelled, classNames: names)
    }

    /// Image `index` as an `Image` (interleaved channels), from memory or decoded from the source.
    public func image(at index: Int) throws -> Image {
        let (h, w, planar): (Int, Int, [UInt8])
        if let source {
            let decoded = try source.image(at: index)
            (h, w, planar) = (decoded.height, decoded.width, decoded.pixels)
        } else {
            (h, w, planar) = (height, width, Array(pixels[(index * imageSize)..<((index + 1) * imageSize)]))
        }
        return Image(width: w, height: h, channels: channels, planar: planar)
    }
}

/// Some of another source's images, by index.
struct SelectedSource: ImageSource {
    let base: any ImageSource
    let indices: [Int]
    func image(at index: Int) throws -> (height: Int, width: Int, pixels: [UInt8]) { try base.image(at: indices[index]) }
}
