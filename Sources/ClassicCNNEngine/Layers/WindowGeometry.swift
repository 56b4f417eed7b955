// The geometry of a window sliding over an image, which convolution and pooling share: padding as the layers
// declare it, and the output size and resolved padding for one input shape.

/// Padding of a convolution or pooling window.
public enum Padding: Sendable, Equatable {
    /// No padding.
    case valid
    /// TensorFlow's "same": the output is ceil(input / stride); the extra row or column, if any, goes bottom/right.
    case same
    /// The same padding on both sides of each dimension (PyTorch's `padding=(h, w)`).
    case symmetric(height: Int, width: Int)
    /// Explicit padding on each side.
    case explicit(top: Int, left: Int, bottom: Int, right: Int)

    public static func uniform(_ amount: Int) -> Padding { .symmetric(height: amount, width: amount) }

    /// Resolves to (top, left, bottom, right) for an input size, kernel size and stride.
    package func amounts(height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int)) -> (Int, Int, Int, Int) {
        switch self {
        case .valid: return (0, 0, 0, 0)
        case let .symmetric(h, w): return (h, w, h, w)
        case let .explicit(top, left, bottom, right): return (top, left, bottom, right)
        case .same:
            func split(_ size: Int, _ k: Int, _ s: Int) -> (Int, Int) {
                let out = (size + s - 1) / s
                let total = max((out - 1) * s + k - size, 0)
                return (total / 2, total - total / 2)
            }
            let (top, bottom) = split(height, kernel.0, stride.0)
            let (left, right) = split(width, kernel.1, stride.1)
            return (top, left, bottom, right)
        }
    }
}


/// The output geometry of a window sliding over an image.
package struct WindowGeometry: Equatable {
    package var outputHeight: Int, outputWidth: Int
    package var padTop: Int, padLeft: Int
    /// The padding after the input as resolved (what ceil mode adds beyond it is not included).
    package var padBottom: Int, padRight: Int

    package init(layer: String, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool = false,
         adapting: Bool = false) throws {
        guard inputShape.count == 4 else {
            throw ShapeError(layer: layer, "expects an N x C x H x W input, got \(inputShape.shapeText())")
        }
        let h = inputShape[2], w = inputShape[3]
        var (top, left, bottom, right) = padding.amounts(height: h, width: w, kernel: kernel, stride: stride)
        if adapting {
            let same = Padding.same.amounts(height: h, width: w, kernel: kernel, stride: stride)
            if h + top + bottom < kernel.0 { (top, bottom) = (same.0, same.2) }
            if w + left + right < kernel.1 { (left, right) = (same.1, same.3) }
        }
        guard [top, left, bottom, right].allSatisfy({ $0 >= 0 }), max(top, bottom) < kernel.0, max(left, right) < kernel.1 else {
            throw ShapeError(layer: layer, "padding (\(top), \(left), \(bottom), \(right)) must be non-negative and smaller than the \(kernel.0)x\(kernel.1) window")
        }
        func out(_ size: Int, _ k: Int, _ s: Int, _ before: Int, _ after: Int) -> Int {
            let span = size + before + after - k
            guard span >= 0 else { return 0 }
            var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
            // As in PyTorch: with ceil mode the last window must start inside the input or the leading padding.
            if ceilMode && (o - 1) * s >= size + before { o -= 1 }
            return o
        }
        outputHeight = out(h, kernel.0, stride.0, top, bottom)
        outputWidth = out(w, kernel.1, stride.1, left, right)
        padTop = top
        padLeft = left
        padBottom = bottom
        padRight = right
        guard outputHeight > 0 && outputWidth > 0 else {
            throw ShapeError(layer: layer, "a \(kernel.0)x\(kernel.1) window does not fit a \(h)x\(w) input")
        }
    }
}
