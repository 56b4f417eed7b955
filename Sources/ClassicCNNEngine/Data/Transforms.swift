// Transforms: the image transforms of the classic papers as pure functions on `Image`, each checked against the
// library people would otherwise use (torchvision, TensorFlow) by Tests/ClassicCNNTests/TransformTests.swift.
// Random transforms take a seeded `RandomGenerator`, so one seed gives the same images bit for bit.
//
// Coordinates: x counts columns (0 ..< width) from the left, y rows (0 ..< height) from the top; sizes are given
// width first, as the `Image` type has them (torchvision and TensorFlow take height first).
import Foundation

/// Why a transform could not be applied: the transform and the sizes involved, in words.
public struct TransformError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Resizing

extension Image {
    /// The image resized to `width` x `height` by bilinear interpolation with half-pixel centres.
    ///
    /// With `antialias` (the default), shrinking widens the triangle filter by the scale factor, so every input pixel
    /// contributes, as PIL and torchvision's `resize(..., antialias=True)` do; enlarging is plain bilinear either
    /// way. Without it, each output pixel reads its two nearest inputs along each axis, as TensorFlow's
    /// `tf.image.resize(method="bilinear")` does. Values are computed in floating point and rounded once at the end.
    /// - Throws: ``TransformError`` if a size is not positive or the image is empty.
    public func resized(width: Int, height: Int, antialias: Bool = true) throws -> Image {
        try checkResize(width: width, height: height, transform: "resize")
        if width == self.width && height == self.height { return self }
        return Image(width: width, height: height, channels: channels,
                     pixels: rounded(resampledValues(width: width, height: height, antialias: antialias)))
    }

    /// The image resized, keeping its aspect ratio, so that its shorter side is `shorterSide` pixels; the longer
    /// side becomes `shorterSide * longer / shorter`, rounded down, as torchvision's `resize(image, shorterSide)`.
    /// - Throws: ``TransformError`` if `shorterSide` is not positive or the image is empty.
    public func resized(shorterSide: Int, antialias: Bool = true) throws -> Image {
        let (width, height) = try sizeWithShorterSide(shorterSide)
        return try resized(width: width, height: height, antialias: antialias)
    }

    /// The image scaled to fit in `width` x `height` with its aspect ratio kept, then centred on a black (zero)
    /// background, with TensorFlow's semantics: `tf.image.resize_with_pad(image, height, width, method="bilinear",
    /// antialias=False)`. Sizes and offsets are computed in float32 as TensorFlow does (the scaled size and the
    /// padding rounded down), so they come out the same even where float32 rounding decides. TensorFlow returns
    /// floats; here they are rounded to whole levels.
    /// - Throws: ``TransformError`` if a size is not positive, the image is empty, or it is so elongated that one
    ///   side would scale to zero pixels.
    public func resizedWithPad(width: Int, height: Int) throws -> Image {
        Image(width: width, height: height, channels: channels,
              pixels: rounded(try resizedWithPadValues(width: width, height: height)))
    }

    /// ``resizedWithPad(width:height:)`` before rounding: `height * width * channels` floats, as TensorFlow returns.
    package func resizedWithPadValues(width: Int, height: Int) throws -> [Float] {
        try checkResize(width: width, height: height, transform: "resize_with_pad")
        let (sourceWidth, sourceHeight) = (Float(self.width), Float(self.height))
        let ratio = Swift.max(sourceWidth / Float(width), sourceHeight / Float(height))
        let (scaledWidth, scaledHeight) = (sourceWidth / ratio, sourceHeight / ratio)
        let (innerWidth, innerHeight) = (Int(scaledWidth.rounded(.down)), Int(scaledHeight.rounded(.down)))
        guard innerWidth > 0 && innerHeight > 0 else {
            throw TransformError("resize_with_pad: a \(self.width)x\(self.height) image fitted into \(width)x\(height) "
                + "would be \(innerWidth)x\(innerHeight) pixels")
        }
        let left = Swift.max(0, Int(((Float(width) - scaledWidth) / 2).rounded(.down)))
        let top = Swift.max(0, Int(((Float(height) - scaledHeight) / 2).rounded(.down)))
        let inner = resampledValues(width: innerWidth, height: innerHeight, antialias: false)
        var values = [Float](repeating: 0, count: width * height * channels)
        let row = innerWidth * channels
        for y in 0 ..< innerHeight {
            let start = ((top + y) * width + left) * channels
            values.replaceSubrange(start ..< start + row, with: inner[y * row ..< (y + 1) * row])
        }
        return values
    }

    /// The resized values before rounding: `height * width * channels` floats, rows then columns then channels.
    /// Separable: along rows first (into `self.height` rows of `width` pixels), then along columns.
    package func resampledValues(width: Int, height: Int, antialias: Bool) -> [Float] {
        let c = channels
        let columns = ResamplingTaps(from: self.width, to: width, antialias: antialias)
        let rows = ResamplingTaps(from: self.height, to: height, antialias: antialias)
        var horizontal = [Float](repeating: 0, count: self.height * width * c)
        pixels.withUnsafeBufferPointer { input in
            for y in 0 ..< self.height {
                let source = y * self.width * c
                for x in 0 ..< width {
                    let first = columns.first[x], weights = columns.weights[x]
                    for channel in 0 ..< c {
                        var sum: Float = 0
                        for (k, weight) in weights.enumerated() {
                            sum += weight * Float(input[source + (first + k) * c + channel])
                        }
                        horizontal[(y * width + x) * c + channel] = sum
                    }
                }
            }
        }
        var output = [Float](repeating: 0, count: height * width * c)
        let row = width * c
        for y in 0 ..< height {
            let first = rows.first[y], weights = rows.weights[y]
            for i in 0 ..< row {
                var sum: Float = 0
                for (k, weight) in weights.enumerated() { sum += weight * horizontal[(first + k) * row + i] }
                output[y * row + i] = sum
            }
        }
        return output
    }

    package func sizeWithShorterSide(_ shorterSide: Int) throws -> (width: Int, height: Int) {
        guard shorterSide > 0 else { throw TransformError("resize: the shorter side must be positive, not \(shorterSide)") }
        guard width > 0 && height > 0 else { throw TransformError("resize: the image is empty (\(width)x\(height))") }
        return width <= height ? (shorterSide, shorterSide * height / width) : (shorterSide * width / height, shorterSide)
    }

    private func checkResize(width: Int, height: Int, transform: String) throws {
        guard width > 0 && height > 0 else {
            throw TransformError("\(transform): the output size must be positive, not \(width)x\(height)")
        }
        guard self.width > 0 && self.height > 0 else {
            throw TransformError("\(transform): the image is empty (\(self.width)x\(self.height))")
        }
    }
}

/// Rounds to the nearest level (halves away from zero) and clamps to 0...255.
private func rounded(_ values: [Float]) -> [UInt8] {
    values.map { UInt8(Swift.min(Swift.max($0.rounded(), 0), 255)) }
}

/// For each output pixel along one axis, the first input pixel it reads and the weights of the inputs from there on
/// (summing to 1). This is PIL's and PyTorch's antialiased filter (`_upsample_bilinear2d_aa`): output i is centred at
/// input coordinate `centre = (i + 0.5) * scale`, in a continuous coordinate where pixel j covers [j, j + 1); the
/// triangle filter `max(0, 1 - |t|)` is widened to `max(scale, 1)` when antialiasing (1 otherwise), evaluated at
/// the input pixel centres, and the weights that fall inside the image are normalised to sum to 1. At scale 1 or
/// when enlarging this is ordinary bilinear interpolation with half-pixel centres, edges clamped.
struct ResamplingTaps {
    let first: [Int]
    let weights: [[Float]]

    /// In float32, in PyTorch's order of operations (`_compute_index_ranges_weights` in UpSampleKernel.cpp), so that
    /// the windows and weights are the same to the last bit or two. Without antialiasing the weights are TensorFlow's
    /// `1 - lerp, lerp` with `lerp = (i + 0.5) * scale - 0.5 - floor(...)` in float32, as `ResizeBilinear` computes.
    init(from input: Int, to output: Int, antialias: Bool) {
        let scale = Float(input) / Float(output)
        let support: Float = antialias ? Swift.max(scale, 1) : 1
        let inverseSupport = 1 / support
        var first: [Int] = [], weights: [[Float]] = []
        for i in 0 ..< output {
            let centre = scale * (Float(i) + 0.5)
            // Int() truncates towards zero, as the C++ cast does.
            let low = Swift.max(Int(centre - support + 0.5), 0)
            let high = Swift.min(Int(centre + support + 0.5), input)
            var taps = (0 ..< high - low).map { j in Swift.max(0, 1 - abs((Float(j + low) - centre + 0.5) * inverseSupport)) }
            let total = taps.reduce(0, +)
            if total > 0 { taps = taps.map { $0 / total } }
            first.append(low)
            weights.append(taps)
        }
        (self.first, self.weights) = (first, weights)
    }
}

// MARK: - Cropping and flipping

extension Image {
    /// The `width` x `height` window whose top left pixel is (`x`, `y`).
    /// - Throws: ``TransformError`` if the size is not positive or the window is not inside the image.
    public func cropped(x: Int, y: Int, width: Int, height: Int) throws -> Image {
        guard width > 0 && height > 0 else { throw TransformError("crop: the size must be positive, not \(width)x\(height)") }
        guard x >= 0 && y >= 0 && x + width <= self.width && y + height <= self.height else {
            throw TransformError("crop: a \(width)x\(height) window at (\(x), \(y)) does not fit in a "
                + "\(self.width)x\(self.height) image")
        }
        var output = [UInt8]()
        output.reserveCapacity(width * height * channels)
        for row in y ..< y + height {
            let start = (row * self.width + x) * channels
            output.append(contentsOf: pixels[start ..< start + width * channels])
        }
        return Image(width: width, height: height, channels: channels, pixels: output)
    }

    /// The central `width` x `height` window. Where the margin is odd the window's offset is half of it rounded half
    /// to even (Python's `round`), as torchvision's `center_crop`: a margin of 17 gives 8, one of 3 gives 2.
    /// - Throws: ``TransformError`` if the size is not positive or larger than the image (torchvision pads instead).
    public func centreCropped(width: Int, height: Int) throws -> Image {
        try checkCrop(width: width, height: height, transform: "centre crop")
        let x = Int((Double(self.width - width) / 2).rounded(.toNearestOrEven))
        let y = Int((Double(self.height - height) / 2).rounded(.toNearestOrEven))
        return try cropped(x: x, y: y, width: width, height: height)
    }

    /// A `width` x `height` window at a uniformly random position (the row drawn first, then the column).
    /// - Throws: ``TransformError`` if the size is not positive or larger than the image.
    public func randomlyCropped(width: Int, height: Int, using generator: inout RandomGenerator) throws -> Image {
        try checkCrop(width: width, height: height, transform: "random crop")
        let y = generator.integer(below: self.height - height + 1)
        let x = generator.integer(below: self.width - width + 1)
        return try cropped(x: x, y: y, width: width, height: height)
    }

    /// The image mirrored left to right.
    public func flippedHorizontally() -> Image {
        var output = pixels
        let c = channels
        for y in 0 ..< height {
            for x in 0 ..< width {
                let to = (y * width + x) * c, from = (y * width + width - 1 - x) * c
                for channel in 0 ..< c { output[to + channel] = pixels[from + channel] }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: output)
    }

    /// The image mirrored left to right with probability 1/2 (one draw from `generator`), else unchanged.
    public func randomlyFlipped(using generator: inout RandomGenerator) -> Image {
        generator.next() >> 63 == 1 ? flippedHorizontally() : self
    }

    /// The ten crops of AlexNet's testing (Krizhevsky et al. 2012, section 4.1), in torchvision's `ten_crop` order:
    /// the top left, top right, bottom left, bottom right and centre windows, then the same five windows of the
    /// mirrored image. (Where the horizontal margin is odd, the last centre crop is not the mirror of the first,
    /// because both are centred with the same rounding, as in torchvision.)
    /// - Throws: ``TransformError`` if the size is not positive or larger than the image.
    public func tenCrops(width: Int, height: Int) throws -> [Image] {
        try checkCrop(width: width, height: height, transform: "ten-crop")
        return try fiveCrops(width: width, height: height) + flippedHorizontally().fiveCrops(width: width, height: height)
    }

    private func fiveCrops(width: Int, height: Int) throws -> [Image] {
        let (right, bottom) = (self.width - width, self.height - height)
        return [try cropped(x: 0, y: 0, width: width, height: height),
                try cropped(x: right, y: 0, width: width, height: height),
                try cropped(x: 0, y: bottom, width: width, height: height),
                try cropped(x: right, y: bottom, width: width, height: height),
                try centreCropped(width: width, height: height)]
    }

    private func checkCrop(width: Int, height: Int, transform: String) throws {
        guard width > 0 && height > 0 else {
            throw TransformError("\(transform): the size must be positive, not \(width)x\(height)")
        }
        guard width <= self.width && height <= self.height else {
            throw TransformError("\(transform): \(width)x\(height) is larger than the \(self.width)x\(self.height) image")
        }
    }
}

// MARK: - Normalisation

extension Image {
    /// The pixels as floats for a network, `(pixel / 255 - mean[c]) / standardDeviation[c]` per channel c, in the
    /// model's layout: channels x height x width (torchvision's `ToTensor` then `Normalize`, with the same [0, 1]
    /// units for `mean` and `standardDeviation`, e.g. ImageNet's [0.485, 0.456, 0.406] and [0.229, 0.224, 0.225]).
    /// - Throws: ``TransformError`` if there is not one mean and one positive deviation per channel.
    public func normalized(mean: [Float], standardDeviation: [Float]) throws -> [Float] {
        guard mean.count == channels && standardDeviation.count == channels else {
            throw TransformError("normalise: \(mean.count) means and \(standardDeviation.count) standard deviations "
                + "for an image of \(channels) channels")
        }
        guard standardDeviation.allSatisfy({ $0 > 0 && $0.isFinite }) && mean.allSatisfy(\.isFinite) else {
            throw TransformError("normalise: standard deviations must be positive and finite, means finite "
                + "(\(standardDeviation), \(mean))")
        }
        let planeSize = width * height
        var output = [Float](repeating: 0, count: planeSize * channels)
        for channel in 0 ..< channels {
            let scale = 1 / (255 * standardDeviation[channel]), offset = -mean[channel] / standardDeviation[channel]
            for i in 0 ..< planeSize {
                output[channel * planeSize + i] = Float(pixels[i * channels + channel]) * scale + offset
            }
        }
        return output
    }
}

// MARK: - PCA colour augmentation

/// The principal components of the RGB pixel values of a set of images, for AlexNet's colour augmentation
/// (Krizhevsky et al. 2012, section 4.1): to every pixel of an image is added
/// `[p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T`, where `p_i` and `l_i` are the eigenvectors and eigenvalues of the 3x3
/// covariance of the RGB values over the training set and `a_i ~ N(0, 0.1)`, drawn once per image each time it is
/// presented.
///
/// Units: pixel values in [0, 1] (level / 255). The paper does not say; this is the convention of the
/// implementations people use (fb.resnet.torch's `Lighting`, and ``imageNet`` below). The formula scales with the
/// square of the unit, so on 0-255 values the same a_i would shift colours by hundreds of levels.
public struct ColourPCA: Equatable, Sendable {
    /// The variances along the principal components, largest first.
    public let eigenvalues: [Double]
    /// `eigenvectors[i]` is the unit (red, green, blue) direction whose variance is `eigenvalues[i]`; its sign is
    /// chosen so that its largest component (in magnitude; the first of equals) is positive.
    public let eigenvectors: [[Double]]

    /// - Throws: ``TransformError`` unless there are 3 finite eigenvalues and 3 eigenvectors of 3 components.
    public init(eigenvalues: [Double], eigenvectors: [[Double]]) throws {
        guard eigenvalues.count == 3 && eigenvectors.count == 3 && eigenvectors.allSatisfy({ $0.count == 3 }),
              (eigenvalues + eigenvectors.joined()).allSatisfy(\.isFinite) else {
            throw TransformError("colour PCA: 3 eigenvalues and 3 eigenvectors of 3 components are needed, "
                + "not \(eigenvalues) and \(eigenvectors)")
        }
        (self.eigenvalues, self.eigenvectors) = (eigenvalues, eigenvectors)
    }

    /// The principal components of every pixel of `images` (covariance with divisor N, the number of pixels).
    /// - Throws: ``TransformError`` if there are no pixels or an image is not RGB.
    public init<Images: Sequence>(images: Images) throws where Images.Element == Image {
        try self.init(covariance: Self.covariance(of: images))
    }

    /// The eigen-decomposition of a symmetric 3x3 matrix (rows of 3), by Jacobi rotations.
    /// - Throws: ``TransformError`` if the matrix is not 3x3, finite and symmetric.
    public init(covariance: [[Double]]) throws {
        guard covariance.count == 3 && covariance.allSatisfy({ $0.count == 3 && $0.allSatisfy(\.isFinite) }),
              (0 ..< 3).allSatisfy({ i in (0 ..< 3).allSatisfy { j in
                  abs(covariance[i][j] - covariance[j][i]) <= 1e-12 * Swift.max(1, abs(covariance[i][j])) } }) else {
            throw TransformError("colour PCA: the covariance must be a finite symmetric 3x3 matrix, not \(covariance)")
        }
        let (values, vectors) = jacobiEigenDecomposition(covariance)
        let order = (0 ..< 3).sorted { values[$0] > values[$1] }
        let columns: [[Double]] = order.map { k in
            let vector = (0 ..< 3).map { vectors[$0][k] }
            let largest = vector.max { abs($0) < abs($1) }!
            return largest < 0 ? vector.map { -$0 } : vector
        }
        try self.init(eigenvalues: order.map { values[$0] }, eigenvectors: columns)
    }

    /// The published components of ImageNet's training set in [0, 1] units, from fb.resnet.torch
    /// (`datasets/imagenet.lua`, "computed from random subset of ImageNet training images"), the values that most
    /// implementations of AlexNet's lighting noise use; signs as there.
    public static let imageNet = try! ColourPCA(
        eigenvalues: [0.2175, 0.0188, 0.0045],
        eigenvectors: [[-0.5675, -0.5808, -0.5836], [0.7192, -0.0045, -0.6948], [0.4009, -0.8140, 0.4203]])

    /// The 3x3 covariance of the RGB values (in [0, 1] units) of every pixel of `images`, divisor N.
    /// - Throws: ``TransformError`` if there are no pixels or an image is not RGB.
    public static func covariance<Images: Sequence>(of images: Images) throws -> [[Double]] where Images.Element == Image {
        // Exact integer sums; a billion pixels stay far below Int's range.
        var count = 0, sums = [Int](repeating: 0, count: 3), products = [Int](repeating: 0, count: 9)
        for (index, image) in images.enumerated() {
            guard image.channels == 3 else {
                throw TransformError("colour PCA: image \(index) has \(image.channels) channel(s), not 3 (RGB)")
            }
            image.pixels.withUnsafeBufferPointer { p in
                for i in Swift.stride(from: 0, to: p.count, by: 3) {
                    let rgb = (Int(p[i]), Int(p[i + 1]), Int(p[i + 2]))
                    sums[0] += rgb.0; sums[1] += rgb.1; sums[2] += rgb.2
                    products[0] += rgb.0 * rgb.0; products[1] += rgb.0 * rgb.1; products[2] += rgb.0 * rgb.2
                    products[4] += rgb.1 * rgb.1; products[5] += rgb.1 * rgb.2; products[8] += rgb.2 * rgb.2
                }
            }
            count += image.width * image.height
        }
        guard count > 0 else { throw TransformError("colour PCA: no pixels to compute a covariance from") }
        let n = Double(count), unit = 255.0 * 255.0
        var covariance = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0 ..< 3 {
            for j in i ..< 3 {
                let value = (Double(products[3 * i + j]) / n - Double(sums[i]) / n * Double(sums[j]) / n) / unit
                (covariance[i][j], covariance[j][i]) = (value, value)
            }
        }
        return covariance
    }

    /// The shift added to every pixel, in [0, 1] units: `sum_i p_i * alphas[i] * l_i`.
    public func shift(alphas: [Double]) -> [Double] {
        (0 ..< 3).map { c in (0 ..< 3).reduce(0) { $0 + eigenvectors[$1][c] * alphas[$1] * eigenvalues[$1] } }
    }

    /// A random shift in [0, 1] units, with `a_i ~ N(0, standardDeviation)` (three draws from `generator`).
    public func randomShift(standardDeviation: Double = 0.1, using generator: inout RandomGenerator) -> [Double] {
        shift(alphas: (0 ..< 3).map { _ in Double(generator.normal()) * standardDeviation })
    }
}

extension Image {
    /// The image with `shift[c] * 255` added to channel c of every pixel (a shift in [0, 1] units, as
    /// ``ColourPCA/shift(alphas:)`` gives), rounded to the nearest level and clamped to 0...255.
    /// - Throws: ``TransformError`` unless there is one finite shift per channel.
    public func addingColourShift(_ shift: [Double]) throws -> Image {
        guard shift.count == channels && shift.allSatisfy(\.isFinite) else {
            throw TransformError("colour shift: \(shift.count) value(s) for an image of \(channels) channel(s)")
        }
        var output = pixels
        for i in output.indices {
            let value = (Double(pixels[i]) + shift[i % channels] * 255).rounded()
            output[i] = UInt8(Swift.min(Swift.max(value, 0), 255))
        }
        return Image(width: width, height: height, channels: channels, pixels: output)
    }

    /// AlexNet's colour augmentation: the image shifted by `pca.randomShift(standardDeviation:using:)`.
    /// - Throws: ``TransformError`` if the image is not RGB.
    public func addingPCAColourNoise(_ pca: ColourPCA, standardDeviation: Double = 0.1,
                                     using generator: inout RandomGenerator) throws -> Image {
        guard channels == 3 else { throw TransformError("PCA colour noise: the image has \(channels) channel(s), not 3 (RGB)") }
        return try addingColourShift(pca.randomShift(standardDeviation: standardDeviation, using: &generator))
    }
}

/// Eigenvalues and eigenvectors (as the columns of the second result) of a symmetric matrix, by cyclic Jacobi
/// rotations: each rotation zeroes one off-diagonal element; sweeps repeat until the off-diagonal part is negligible.
func jacobiEigenDecomposition(_ matrix: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
    let n = matrix.count
    var a = matrix
    var v = (0 ..< n).map { i in (0 ..< n).map { j in i == j ? 1.0 : 0.0 } }
    let scale = a.joined().reduce(0) { $0 + $1 * $1 }
    for _ in 0 ..< 100 {
        var off = 0.0
        for p in 0 ..< n { for q in 0 ..< n where p != q { off += a[p][q] * a[p][q] } }
        if off <= 1e-30 * scale || off == 0 { break }
        for p in 0 ..< n - 1 {
            for q in p + 1 ..< n where a[p][q] != 0 {
                // The rotation angle that zeroes a[p][q]: tan(2 theta) = 2 a_pq / (a_qq - a_pp), the smaller root.
                let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0 ..< n { // A <- A J (columns p and q)
                    let (akp, akq) = (a[k][p], a[k][q])
                    a[k][p] = c * akp - s * akq
                    a[k][q] = s * akp + c * akq
                }
                for k in 0 ..< n { // A <- J^T A (rows p and q)
                    let (apk, aqk) = (a[p][k], a[q][k])
                    a[p][k] = c * apk - s * aqk
                    a[q][k] = s * apk + c * aqk
                }
                for k in 0 ..< n { // V <- V J
                    let (vkp, vkq) = (v[k][p], v[k][q])
                    v[k][p] = c * vkp - s * vkq
                    v[k][q] = s * vkp + c * vkq
                }
            }
        }
    }
    return ((0 ..< n).map { a[$0][$0] }, v)
}

// MARK: - The papers' recipes

/// A training-time augmentation, applied to one image at a time with a seeded generator, giving a square image of
/// the requested size. Sizes scale with the output: the papers' 256 at 224 becomes `outputSize * 256 / 224`
/// rounded at other sizes, and their 512 twice that.
public enum Augmentation: Equatable, Sendable {
    /// Resized to the output size, aspect ratio not kept: what the loader does today when enlarging (CIFAR-10 to
    /// 224); when shrinking this one is antialiased and the loader's is not.
    case none
    /// As ``none``, then mirrored with probability 1/2.
    case flip
    /// AlexNet (Krizhevsky et al. 2012, section 4.1): the shorter side resized to 256 and the central 256x256 kept
    /// (as the paper rescales its images), a random 224x224 window, mirrored with probability 1/2, and the PCA
    /// colour noise of the given components (``ColourPCA/init(images:)`` on the training set, or
    /// ``ColourPCA/imageNet``).
    case alexnet(ColourPCA)
    /// VGG's scale jittering (Simonyan & Zisserman 2015, section 3.1): the shorter side resized to S, drawn
    /// uniformly from 256...512, a random 224x224 window, mirrored with probability 1/2. The paper also applies
    /// AlexNet's colour shift ("random RGB colour shift"); give its components to have it, nil to leave it out.
    case vgg(colourShift: ColourPCA?)
    /// The usual CIFAR-10 augmentation (torchvision's `RandomCrop(32, padding=4)` then `RandomHorizontalFlip()`):
    /// resized to the output size, padded with `padding` black pixels on every side, a random output-sized window,
    /// mirrored with probability 1/2.
    case crop(padding: Int)
    /// Cutout (DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with Cutout"): as
    /// ``crop(padding:)``, then a `size` x `size` square centred on a uniformly drawn pixel (clipped where it
    /// crosses the border, as the paper's code) filled with `fill`, one byte per channel. The paper fills with zeros
    /// after normalisation, that is with the dataset's mean colour; ``named(_:for:sampleSize:)`` gives that mean
    /// rounded to whole levels. CIFAR-10's setting in the paper is 16.
    case cutout(padding: Int, size: Int, fill: [UInt8])

    /// The augmented image, `outputSize` x `outputSize`. Draws from `generator`, in this order: for `alexnet`
    /// the window's row and column, the flip, three normal deviates; for `vgg` S, the row, the column, the flip
    /// (then the three deviates); for `flip` the flip; for `crop` the row, the column, the flip; for `cutout` those of
    /// `crop`, then the square's centre row and column.
    /// - Throws: ``TransformError`` if `outputSize` is not positive, the image is empty, or PCA colour noise is
    ///   asked of an image that is not RGB.
    public func apply(_ image: Image, outputSize: Int, using generator: inout RandomGenerator) throws -> Image {
        guard outputSize > 0 else { throw TransformError("augmentation: the output size must be positive, not \(outputSize)") }
        let rescaled = Int((Double(outputSize) * 256 / 224).rounded())
        switch self {
        case .none:
            return try image.resized(width: outputSize, height: outputSize)
        case .flip:
            return try image.resized(width: outputSize, height: outputSize).randomlyFlipped(using: &generator)
        case .alexnet(let pca):
            guard image.channels == 3 else {
                throw TransformError("alexnet augmentation: PCA colour noise needs an RGB image, not \(image.channels) channel(s)")
            }
            let square = try image.resized(shorterSide: rescaled).centreCropped(width: rescaled, height: rescaled)
            return try square.randomlyCropped(width: outputSize, height: outputSize, using: &generator)
                .randomlyFlipped(using: &generator)
                .addingPCAColourNoise(pca, using: &generator)
        case .vgg(let pca):
            if pca != nil && image.channels != 3 {
                throw TransformError("vgg augmentation: the colour shift needs an RGB image, not \(image.channels) channel(s)")
            }
            let shorterSide = rescaled + generator.integer(below: rescaled + 1) // rescaled ... 2 * rescaled
            let jittered = try image.resized(shorterSide: shorterSide)
                .randomlyCropped(width: outputSize, height: outputSize, using: &generator)
                .randomlyFlipped(using: &generator)
            guard let pca else { return jittered }
            return try jittered.addingPCAColourNoise(pca, using: &generator)
        case .crop(let padding):
            guard padding >= 0 else { throw TransformError("crop augmentation: the padding must not be negative, not \(padding)") }
            return try image.resized(width: outputSize, height: outputSize).padded(by: padding)
                .randomlyCropped(width: outputSize, height: outputSize, using: &generator)
                .randomlyFlipped(using: &generator)
        case .cutout(let padding, let size, let fill):
            guard size >= 0 else { throw TransformError("cutout augmentation: the square's size must not be negative, not \(size)") }
            guard fill.count == image.channels else {
                throw TransformError("cutout augmentation: \(fill.count) fill value(s) for an image of \(image.channels) channel(s)")
            }
            let cropped = try Augmentation.crop(padding: padding).apply(image, outputSize: outputSize, using: &generator)
            let y = generator.integer(below: outputSize), x = generator.integer(below: outputSize)
            return cropped.filling(rows: max(y - size / 2, 0) ..< min(y + size / 2, outputSize),
                                   columns: max(x - size / 2, 0) ..< min(x + size / 2, outputSize), with: fill)
        }
    }
}

extension Image {
    /// The image with the pixels of a rectangle (given by its row and column ranges, inside the image) set to
    /// `fill`, one value per channel.
    public func filling(rows: Range<Int>, columns: Range<Int>, with fill: [UInt8]) -> Image {
        precondition(fill.count == channels && rows.lowerBound >= 0 && rows.upperBound <= height
                     && columns.lowerBound >= 0 && columns.upperBound <= width, "filling: rectangle or fill out of range")
        var output = pixels
        for row in rows {
            for column in columns {
                for channel in 0 ..< channels { output[(row * width + column) * channels + channel] = fill[channel] }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: output)
    }
}

extension Image {
    /// The image inside a border of `padding` black (zero) pixels on every side, as torchvision's `Pad` with its
    /// default fill.
    public func padded(by padding: Int) -> Image {
        guard padding > 0 else { return self }
        let (w, h) = (width + 2 * padding, height + 2 * padding)
        var output = [UInt8](repeating: 0, count: w * h * channels)
        for row in 0 ..< height {
            let from = row * width * channels, to = ((row + padding) * w + padding) * channels
            output[to ..< to + width * channels] = pixels[from ..< from + width * channels]
        }
        return Image(width: w, height: h, channels: channels, pixels: output)
    }
}

extension RandomGenerator {
    /// Uniform in 0 ..< bound (by a modulo; the bias, below bound / 2^64, is negligible for image sizes).
    package mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0, "integer(below:) needs a positive bound, not \(bound)")
        return Int(next() % UInt64(bound))
    }
}

extension Augmentation {
    /// `none`, `flip`, `alexnet`, `vgg` or `crop` (padding 4), as `cnn train --augment` spells them; another
    /// padding is `crop:N`.
    public var name: String {
        switch self {
        case .none: "none"
        case .flip: "flip"
        case .alexnet: "alexnet"
        case .vgg: "vgg"
        case .crop(let padding): padding == 4 ? "crop" : "crop:\(padding)"
        case .cutout(let padding, let size, _): padding == 4 && size == 16 ? "cutout" : padding == 4 ? "cutout:\(size)" : "cutout:\(size):\(padding)"
        }
    }

    /// The names `named(_:for:)` takes.
    public static let names = ["none", "flip", "alexnet", "vgg", "crop", "cutout"]

    /// Refuses a name that `named(_:for:)` would refuse, without a dataset.
    public static func checkName(_ name: String) throws {
        if names.contains(name) { return }
        if name.hasPrefix("cutout:") { _ = try cutoutSizes(name) } else { _ = try cropPadding(name) }
    }

    private static func cropPadding(_ name: String) throws -> Int {
        guard name.hasPrefix("crop:") else {
            throw TransformError("unknown augmentation '\(name)'; available: none, flip, alexnet, vgg, crop (or crop:PADDING), cutout (or cutout:SIZE, cutout:SIZE:PADDING)")
        }
        guard let padding = Int(name.dropFirst(5)), (0...1024).contains(padding) else {
            throw TransformError("augmentation \(name): the padding after 'crop:' must be a whole number of pixels from 0 to 1024")
        }
        return padding
    }

    /// `cutout:SIZE` or `cutout:SIZE:PADDING`'s numbers (padding 4 when not given).
    private static func cutoutSizes(_ name: String) throws -> (size: Int, padding: Int) {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false).dropFirst().map { Int($0) }
        guard (1...2).contains(parts.count), let size = parts[0], (0...4096).contains(size) else {
            throw TransformError("augmentation \(name): write cutout:SIZE or cutout:SIZE:PADDING, SIZE a whole number of pixels from 0 to 4096")
        }
        let padding = parts.count == 2 ? parts[1] : 4
        guard let padding, (0...1024).contains(padding) else {
            throw TransformError("augmentation \(name): the padding must be a whole number of pixels from 0 to 1024")
        }
        return (size, padding)
    }

    /// The mean colour of up to `sampleSize` images spread evenly over `dataset`, rounded to whole levels.
    static func meanColour(of dataset: ImageDataset, sampleSize: Int) throws -> [UInt8] {
        let step = max(dataset.count / max(sampleSize, 1), 1)
        var sums = [Double](repeating: 0, count: dataset.channels), count = 0.0
        for index in stride(from: 0, to: dataset.count, by: step) {
            let image = try dataset.image(at: index)
            for (i, value) in image.pixels.enumerated() { sums[i % image.channels] += Double(value) }
            count += Double(image.width * image.height)
        }
        return sums.map { UInt8(min(max(($0 / max(count, 1)).rounded(), 0), 255)) }
    }

    /// The augmentation called `name`, its colour components (for alexnet and vgg) computed from up to
    /// `sampleSize` images of `dataset` spread evenly over it; nil for `none`.
    public static func named(_ name: String, for dataset: ImageDataset, sampleSize: Int = 2_000) throws -> Augmentation? {
        func pca() throws -> ColourPCA {
            guard dataset.channels == 3 else {
                throw TransformError("--augment \(name): the colour augmentation needs RGB images, \(dataset.name) has \(dataset.channels) channel(s)")
            }
            let step = max(dataset.count / max(sampleSize, 1), 1)
            return try ColourPCA(images: try stride(from: 0, to: dataset.count, by: step).map { try dataset.image(at: $0) })
        }
        switch name {
        case "none": return nil
        case "flip": return .flip
        case "alexnet": return .alexnet(try pca())
        case "vgg": return .vgg(colourShift: try pca())
        case "crop": return .crop(padding: 4)
        case "cutout": return .cutout(padding: 4, size: 16, fill: try meanColour(of: dataset, sampleSize: sampleSize))
        case _ where name.hasPrefix("cutout:"):
            let (size, padding) = try cutoutSizes(name)
            return .cutout(padding: padding, size: size, fill: try meanColour(of: dataset, sampleSize: sampleSize))
        default: return .crop(padding: try cropPadding(name))
        }
    }
}
