// Training curves: loss and accuracy against the epoch, training and validation, in two panels. The layout is
// computed once as a list of shapes in pixels, then drawn either into an `Image` (our own rasteriser, 5x7 bitmap
// font) or written out as SVG text.
import Foundation
import ClassicCNNEngine

/// An RGB colour.
public struct PlotColor: Equatable, Sendable {
    public var red, green, blue: UInt8
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) { (self.red, self.green, self.blue) = (red, green, blue) }
    package var hex: String { String(format: "#%02x%02x%02x", red, green, blue) }

    package static let white = PlotColor(255, 255, 255), black = PlotColor(0, 0, 0), grid = PlotColor(225, 225, 225)
    /// matplotlib's first two colours, as TensorBoard and Keras users know them.
    package static let training = PlotColor(31, 119, 180), validation = PlotColor(255, 127, 14)
    /// The training and validation colours of each run when several are drawn together (matplotlib's tab10 in pairs).
    static let runPairs: [(PlotColor, PlotColor)] = [(training, validation), (PlotColor(44, 160, 44), PlotColor(214, 39, 40)),
                                                     (PlotColor(148, 103, 189), PlotColor(140, 86, 75)),
                                                     (PlotColor(227, 119, 194), PlotColor(127, 127, 127))]
}

/// What a plot is made of, in pixels from the top-left corner.
public enum PlotShape: Sendable {
    public enum Anchor: Sendable { case start, middle, end }
    case line(x0: Double, y0: Double, x1: Double, y1: Double, color: PlotColor, width: Double)
    case polyline([(x: Double, y: Double)], color: PlotColor, width: Double)
    /// A filled rectangle.
    case rectangle(x: Double, y: Double, width: Double, height: Double, color: PlotColor)
    /// Text whose cell's top is at `y`, horizontally anchored at `x`, each font pixel `scale` pixels.
    case text(String, x: Double, y: Double, anchor: Anchor, scale: Int, color: PlotColor)
}

/// Loss and accuracy for training and validation against the epoch: two panels side by side, each with its axes,
/// ticks, labels and grid, under one legend.
public struct TrainingCurves {
    /// The runs drawn, each with its name in the legend (one run: no name, the series are "train" and "validation").
    public let runs: [(name: String, epochs: [EpochMetrics])]
    /// The first run's epochs.
    public var epochs: [EpochMetrics] { runs.first?.epochs ?? [] }
    public init(epochs: [EpochMetrics]) { runs = [("", epochs.sorted { $0.epoch < $1.epoch })] }
    /// Several runs in the same panels (ours beside PyTorch's, say), each in its own pair of colours, at most four.
    public init(runs: [(name: String, epochs: [EpochMetrics])]) {
        self.runs = runs.prefix(PlotColor.runPairs.count).map { ($0.name, $0.epochs.sorted { $0.epoch < $1.epoch }) }
    }

    /// The plot as shapes in a `width` x `height` picture.
    public func shapes(width: Int, height: Int) -> [PlotShape] {
        var shapes: [PlotShape] = [.rectangle(x: 0, y: 0, width: Double(width), height: Double(height), color: .white)]
        let panelWidth = Double(width) / 2
        let panels: [(title: String, training: (EpochMetrics) -> Double?, validation: (EpochMetrics) -> Double?)] = [
            ("loss", { $0.loss }, { $0.validationLoss }),
            ("accuracy", { $0.accuracy }, { $0.validationAccuracy }),
        ]
        func label(_ run: String, _ series: String) -> String { run.isEmpty ? series : "\(run) \(series)" }
        for (index, panel) in panels.enumerated() {
            var series: [(name: String, color: PlotColor, points: [(Double, Double)])] = []
            for ((run, epochs), colors) in zip(runs, PlotColor.runPairs) {
                let training = epochs.compactMap { m in panel.training(m).flatMap { $0.isFinite ? (Double(m.epoch), $0) : nil } }
                let validation = epochs.compactMap { m in panel.validation(m).flatMap { $0.isFinite ? (Double(m.epoch), $0) : nil } }
                series += [(label(run, "train"), colors.0, training), (label(run, "validation"), colors.1, validation)]
            }
            shapes += self.panel(title: panel.title, series: series, left: Double(index) * panelWidth, width: panelWidth, height: Double(height))
        }
        // One legend for both panels, centred on the top line: a line sample and the name of each series drawn.
        var legend: [(name: String, color: PlotColor)] = []
        for ((run, epochs), colors) in zip(runs, PlotColor.runPairs) {
            legend.append((label(run, "train"), colors.0))
            if epochs.contains(where: { $0.validationLoss != nil || $0.validationAccuracy != nil }) { legend.append((label(run, "validation"), colors.1)) }
        }
        // A legend too wide for the picture (long run names) is drawn at half size, then with its names shortened,
        // never cut at the picture's edges.
        var scale = 2, sample = 20.0, gap = 6.0, spacing = 24.0
        func legendWidth() -> Double {
            legend.map { sample + gap + Double(BitmapFont.textWidth($0.name) * scale) }.reduce(0, +) + spacing * Double(legend.count - 1)
        }
        let room = Double(width) - 16
        if legendWidth() > room { (scale, sample, gap, spacing) = (1, 12, 4, 12) }
        var longest = legend.map(\.name.count).max() ?? 0
        while legendWidth() > room && longest > 3 {
            longest -= 1
            legend = legend.map { ($0.name.count > longest ? String($0.name.prefix(longest - 2)) + ".." : $0.name, $0.color) }
        }
        let glyphHeight = Double(BitmapFont.height * scale)
        var x = max(((Double(width) - legendWidth()) / 2).rounded(), 0)
        for (name, color) in legend {
            shapes.append(.line(x0: x, y0: Self.legendTop + glyphHeight / 2, x1: x + sample, y1: Self.legendTop + glyphHeight / 2,
                                color: color, width: 2))
            x += sample + gap
            shapes.append(.text(name, x: x, y: Self.legendTop, anchor: .start, scale: scale, color: .black))
            x += Double(BitmapFont.textWidth(name) * scale) + spacing
        }
        return shapes
    }

    /// The legend's line, then the panel titles' line.
    private static let legendTop = 8.0, titleTop = 34.0

    private func panel(title: String, series: [(name: String, color: PlotColor, points: [(Double, Double)])],
                       left: Double, width: Double, height: Double) -> [PlotShape] {
        let scale = 2, glyphHeight = Double(BitmapFont.height * scale), cell = Double(BitmapFont.advance * scale)
        // The plotting area inside the panel: room for the y tick labels on the left, the legend and title above,
        // the x tick labels and the axis label below.
        let plotLeft = left + 14 + 7 * cell, plotRight = left + width - 16
        let plotTop = Self.titleTop + glyphHeight + 14, plotBottom = height - 2 * glyphHeight - 30
        guard plotRight - plotLeft > 20, plotBottom - plotTop > 20 else { return [] }
        var shapes: [PlotShape] = []
        let drawn = series.filter { !$0.points.isEmpty }
        let xs = drawn.flatMap { $0.points.map(\.0) }, ys = drawn.flatMap { $0.points.map(\.1) }
        let xAxis = Axis(low: xs.min() ?? 1, high: xs.max() ?? 1, targetTicks: 8, integers: true)
        let yAxis = Axis(low: ys.min() ?? 0, high: ys.max() ?? 1, targetTicks: 5, integers: false)
        func px(_ x: Double) -> Double { plotLeft + (x - xAxis.low) / (xAxis.high - xAxis.low) * (plotRight - plotLeft) }
        func py(_ y: Double) -> Double { plotBottom - (y - yAxis.low) / (yAxis.high - yAxis.low) * (plotBottom - plotTop) }

        // Grid and ticks.
        for tick in yAxis.ticks {
            let y = py(tick).rounded()
            shapes.append(.line(x0: plotLeft, y0: y, x1: plotRight, y1: y, color: .grid, width: 1))
            shapes.append(.line(x0: plotLeft - 5, y0: y, x1: plotLeft, y1: y, color: .black, width: 1))
            shapes.append(.text(yAxis.label(tick), x: plotLeft - 9, y: y - glyphHeight / 2, anchor: .end, scale: scale, color: .black))
        }
        for tick in xAxis.ticks {
            let x = px(tick).rounded()
            shapes.append(.line(x0: x, y0: plotBottom, x1: x, y1: plotBottom + 5, color: .black, width: 1))
            shapes.append(.text(xAxis.label(tick), x: x, y: plotBottom + 9, anchor: .middle, scale: scale, color: .black))
        }
        // Axes, the axis label, the title.
        shapes.append(.line(x0: plotLeft, y0: plotTop, x1: plotLeft, y1: plotBottom, color: .black, width: 1))
        shapes.append(.line(x0: plotLeft, y0: plotBottom, x1: plotRight, y1: plotBottom, color: .black, width: 1))
        shapes.append(.text("epoch", x: (plotLeft + plotRight) / 2, y: plotBottom + 17 + glyphHeight, anchor: .middle, scale: scale,
                            color: .black))
        shapes.append(.text(title, x: plotLeft, y: Self.titleTop, anchor: .start, scale: scale, color: .black))

        // The curves, with a square marker at each epoch (so that a single epoch shows).
        for (_, color, points) in drawn {
            let pixels = points.map { (x: px($0.0), y: py($0.1)) }
            if pixels.count > 1 { shapes.append(.polyline(pixels, color: color, width: 2)) }
            for point in pixels { shapes.append(.rectangle(x: point.x - 3, y: point.y - 3, width: 6, height: 6, color: color)) }
        }

        return shapes
    }

    /// The plot as an SVG document.
    public func svg(width: Int = 960, height: Int = 400) -> String {
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">\n"
        func n(_ value: Double) -> String { String(format: "%.1f", value) }
        for shape in shapes(width: width, height: height) {
            switch shape {
            case let .line(x0, y0, x1, y1, color, lineWidth):
                out += "<line x1=\"\(n(x0))\" y1=\"\(n(y0))\" x2=\"\(n(x1))\" y2=\"\(n(y1))\" stroke=\"\(color.hex)\" stroke-width=\"\(n(lineWidth))\"/>\n"
            case let .polyline(points, color, lineWidth):
                let list = points.map { "\(n($0.x)),\(n($0.y))" }.joined(separator: " ")
                out += "<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(color.hex)\" stroke-width=\"\(n(lineWidth))\"/>\n"
            case let .rectangle(x, y, w, h, color):
                out += "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(w))\" height=\"\(n(h))\" fill=\"\(color.hex)\"/>\n"
            case let .text(text, x, y, anchor, scale, color):
                let anchorName = switch anchor { case .start: "start"; case .middle: "middle"; case .end: "end" }
                let escaped = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                out += "<text x=\"\(n(x))\" y=\"\(n(y + Double(BitmapFont.baseline * scale)))\" font-family=\"monospace\" "
                    + "font-size=\"\(BitmapFont.baseline * scale + 2)\" text-anchor=\"\(anchorName)\" fill=\"\(color.hex)\">\(escaped)</text>\n"
            }
        }
        return out + "</svg>\n"
    }

    /// The plot drawn into an RGB image.
    public func image(width: Int = 960, height: Int = 400) -> Image {
        var canvas = Canvas(width: width, height: height)
        for shape in shapes(width: width, height: height) { canvas.draw(shape) }
        return Image(width: width, height: height, channels: 3, pixels: canvas.pixels)
    }
}

/// An axis range widened to round tick values: 1, 2 or 5 times a power of ten apart.
package struct Axis {
    package let low: Double, high: Double, step: Double, ticks: [Double]
    private let decimals: Int

    package init(low dataLow: Double, high dataHigh: Double, targetTicks: Int, integers: Bool) {
        var (low, high) = (dataLow, dataHigh)
        if high - low < 1e-12 {
            let pad = integers ? 1 : Swift.max(abs(low) * 0.1, 0.05)
            (low, high) = (low - pad, high + pad)
        }
        let rough = (high - low) / Double(targetTicks)
        let magnitude = pow(10, (log10(rough)).rounded(.down))
        var step = ([1.0, 2, 5, 10].first { $0 * magnitude >= rough } ?? 10) * magnitude
        if integers { step = Swift.max(step.rounded(), 1) }
        self.step = step
        if integers {
            // Epochs: the data's own range, ticks on whole multiples inside it.
            (self.low, self.high) = (low, high)
        } else {
            (self.low, self.high) = ((low / step).rounded(.down) * step, (high / step).rounded(.up) * step)
        }
        let first = (self.low / step - 1e-9).rounded(.up)
        ticks = stride(from: first * step, through: self.high + step * 1e-9, by: step).map { $0 }
        decimals = integers ? 0 : Swift.max(0, Int(-(log10(step) + 1e-9).rounded(.down)))
    }

    package func label(_ value: Double) -> String {
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && Double(text) == 0 ? String(text.dropFirst()) : text
    }
}

/// An RGB pixel buffer that draws ``PlotShape``s: lines stamped as squares along their length, glyphs of the
/// bitmap font as blocks.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        (self.width, self.height) = (width, height)
        pixels = Array(repeating: 255, count: width * height * 3)
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: PlotColor) {
        for row in Swift.max(y, 0) ..< Swift.max(Swift.min(y + h, height), Swift.max(y, 0)) {
            for column in Swift.max(x, 0) ..< Swift.max(Swift.min(x + w, width), Swift.max(x, 0)) {
                let i = (row * width + column) * 3
                (pixels[i], pixels[i + 1], pixels[i + 2]) = (color.red, color.green, color.blue)
            }
        }
    }

    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ color: PlotColor, width lineWidth: Double) {
        let size = Swift.max(Int(lineWidth.rounded()), 1)
        let samples = Swift.max(Int((Swift.max(abs(x1 - x0), abs(y1 - y0)) * 2).rounded(.up)), 1)
        for i in 0 ... samples {
            let t = Double(i) / Double(samples)
            let x = x0 + (x1 - x0) * t, y = y0 + (y1 - y0) * t
            fill(x: Int((x - Double(size) / 2).rounded()), y: Int((y - Double(size) / 2).rounded()), width: size, height: size, color)
        }
    }

    mutating func draw(_ shape: PlotShape) {
        switch shape {
        case let .line(x0, y0, x1, y1, color, lineWidth):
            line(x0, y0, x1, y1, color, width: lineWidth)
        case let .polyline(points, color, lineWidth):
            for (a, b) in zip(points, points.dropFirst()) { line(a.x, a.y, b.x, b.y, color, width: lineWidth) }
        case let .rectangle(x, y, w, h, color):
            fill(x: Int(x.rounded()), y: Int(y.rounded()), width: Int(w.rounded()), height: Int(h.rounded()), color)
        case let .text(text, x, y, anchor, scale, color):
            let textWidth = Double(BitmapFont.textWidth(text) * scale)
            let left = switch anchor { case .start: x; case .middle: x - textWidth / 2; case .end: x - textWidth }
            var cellX = Int(left.rounded())
            let top = Int(y.rounded())
            for character in text {
                for (row, bits) in BitmapFont.rows(character).enumerated() {
                    for column in 0 ..< BitmapFont.width where bits & (0x10 >> UInt8(column)) != 0 {
                        fill(x: cellX + column * scale, y: top + row * scale, width: scale, height: scale, color)
                    }
                }
                cellX += BitmapFont.advance * scale
            }
        }
    }
}
