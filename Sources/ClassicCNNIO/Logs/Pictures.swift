// Pictures of the data and of what a network computes: a grid of labelled sample images, the feature maps of each
// convolution and pooling stage for one image (as LeCun et al. 1998 show a "3" passing through LeNet-5), and the
// first convolution's kernels (as Krizhevsky et al. 2012, Figure 3). Drawn with the plots' `Canvas` and 5x7 font.
import ClassicCNNEngine

/// An image shown in a grid: one or more pictures side by side (an image and its augmented copy), a label below.
public struct GridCell: Sendable {
    public var pictures: [Image]
    public var label: String
    public init(pictures: [Image], label: String) { (self.pictures, self.label) = (pictures, label) }
}

/// A row of tiles under a label, as a feature-map figure draws one stage.
public struct TileRow: Sendable {
    public var label: String
    public var tiles: [Image]
    public init(label: String, tiles: [Image]) { (self.label, self.tiles) = (label, tiles) }
}

public enum Pictures {
    static let margin = 8, gap = 4, labelHeight = BitmapFont.height + 6

    /// `cells` in rows of `columns`, each picture enlarged (or reduced) to `cellSize` x `cellSize` by nearest
    /// neighbour, the cell's label centred under it (cut to fit).
    public static func grid(_ cells: [GridCell], columns: Int, cellSize: Int) -> Image {
        let perCell = max(cells.map(\.pictures.count).max() ?? 1, 1)
        let cellWidth = perCell * cellSize + (perCell - 1) * gap, cellHeight = cellSize + labelHeight
        let columns = max(min(columns, cells.count), 1), rows = (cells.count + columns - 1) / columns
        let width = 2 * margin + columns * cellWidth + (columns - 1) * gap * 2
        let height = 2 * margin + rows * cellHeight + (rows - 1) * gap
        var canvas = Canvas(width: width, height: height)
        for (index, cell) in cells.enumerated() {
            let left = margin + (index % columns) * (cellWidth + 2 * gap), top = margin + (index / columns) * (cellHeight + gap)
            for (position, picture) in cell.pictures.enumerated() {
                canvas.paste(picture, x: left + position * (cellSize + gap), y: top, size: cellSize)
            }
            canvas.draw(.text(fitted(cell.label, width: cellWidth), x: Double(left + cellWidth / 2), y: Double(top + cellSize + 3),
                              anchor: .middle, scale: 1, color: .black))
        }
        return Image(width: width, height: height, channels: 3, pixels: canvas.pixels)
    }

    /// One row per entry: its label, then its tiles at `tileSize` (rows longer than `columns` tiles wrap).
    public static func rows(_ rows: [TileRow], tileSize: Int, columns: Int) -> Image {
        let columns = max(min(columns, rows.map(\.tiles.count).max() ?? 1), 1)
        let lines = rows.map { max(($0.tiles.count + columns - 1) / columns, 1) }
        let labelWidth = (rows.map { BitmapFont.textWidth($0.label) }.max() ?? 0)
        let width = 2 * margin + max(columns * (tileSize + gap) - gap, labelWidth)
        let height = 2 * margin + zip(rows, lines).map { _, lines in labelHeight + lines * (tileSize + gap) + gap }.reduce(0, +)
        var canvas = Canvas(width: width, height: height)
        var top = margin
        for (row, lines) in zip(rows, lines) {
            canvas.draw(.text(row.label, x: Double(margin), y: Double(top), anchor: .start, scale: 1, color: .black))
            top += labelHeight
            for (index, tile) in row.tiles.enumerated() {
                canvas.paste(tile, x: margin + (index % columns) * (tileSize + gap), y: top + (index / columns) * (tileSize + gap),
                             size: tileSize)
            }
            top += lines * (tileSize + gap) + gap
        }
        return Image(width: width, height: height, channels: 3, pixels: canvas.pixels)
    }

    /// `text` cut to at most `width` pixels of the font, its end marked by "..".
    static func fitted(_ text: String, width: Int) -> String {
        if BitmapFont.textWidth(text) <= width { return text }
        let keep = max((width + 1) / BitmapFont.advance - 2, 0)
        return String(text.prefix(keep)) + ".."
    }

    /// `planes` planes of `height` x `width` values, normalised together to their own min...max: a grey image of one
    /// plane, or a colour image of three. Constant values are drawn mid-grey.
    public static func normalised(_ values: ArraySlice<Float>, planes: Int, height: Int, width: Int) -> Image {
        precondition(planes == 1 || planes == 3, "a picture has 1 or 3 planes, not \(planes)")
        let finite = values.filter(\.isFinite)
        let low = finite.min() ?? 0, high = finite.max() ?? 0, range = high - low
        let area = height * width, start = values.startIndex
        var pixels = [UInt8](repeating: 128, count: area * planes)
        if range > 0 {
            for c in 0..<planes {
                for i in 0..<area {
                    let value = values[start + c * area + i]
                    pixels[i * planes + c] = value.isFinite ? UInt8(((value - low) / range * 255).rounded()) : 0
                }
            }
        }
        return Image(width: width, height: height, channels: planes, pixels: pixels)
    }
}

// MARK: - What a network computes

/// The output of one stage of a network for one image: [channels, height, width].
public struct FeatureMaps {
    /// The layer's path in the network ("features.conv1"), and its kind ("Conv2D").
    public let name: String, kind: String
    public let maps: Tensor
}

extension Model {
    /// The kinds of layer whose outputs `featureMaps` shows, besides containers with branches (Inception blocks,
    /// residual blocks), which it shows as one stage (auxiliary classifiers excepted).
    static let mapStageKinds: Set<String> = ["Conv2D", "PartialConv2D", "MaxPool2D", "AvgPool2D", "Subsampling"]

    /// The layers run in order: Sequential containers opened, every other layer (blocks with branches included) kept whole.
    public func leafLayers() -> [(name: String, layer: any Layer)] {
        func walk(_ layer: any Layer, _ path: String) -> [(name: String, layer: any Layer)] {
            guard let sequential = layer as? Sequential else { return [(path, layer)] }
            return sequential.children.flatMap { walk($0.layer, path.isEmpty ? $0.name : "\(path).\($0.name)") }
        }
        return walk(network, "")
    }

    /// The first convolution of the network, walking it in order.
    public var firstConvolution: (name: String, layer: Conv2D)? {
        func walk(_ layer: any Layer, _ path: String) -> (name: String, layer: Conv2D)? {
            if let convolution = layer as? Conv2D { return (path, convolution) }
            for child in layer.children {
                if let found = walk(child.layer, path.isEmpty ? child.name : "\(path).\(child.name)") { return found }
            }
            return nil
        }
        return walk(network, "")
    }

    /// The feature maps of one image `input` ([channels, height, width], as the model takes it) after each convolution
    /// and pooling layer, and after each block with branches, in order; at most `maximumStages`, spread evenly over
    /// the network when it has more.
    public func featureMaps(of input: Tensor, maximumStages: Int = 12) -> [FeatureMaps] {
        var x = input.reshaped([1] + input.shape)
        var stages: [FeatureMaps] = []
        // Each convolution's maps before its ReLU, as the layers compute them unfused.
        let sequentials = network.allLayers.compactMap { $0 as? Sequential }
        let fused = sequentials.map { ($0.fusesActivations, $0.foldsBatchNorm) }
        for sequential in sequentials { (sequential.fusesActivations, sequential.foldsBatchNorm) = (false, false) }
        defer { for (sequential, was) in zip(sequentials, fused) { (sequential.fusesActivations, sequential.foldsBatchNorm) = was } }
        for (name, layer) in leafLayers() {
            x = layer.forward(x, training: false)
            // An auxiliary classifier passes its input through at inference: not a stage.
            guard x.shape.count == 4, !(layer is AuxiliaryClassifier),
                  Self.mapStageKinds.contains(layer.kind) || !layer.children.isEmpty else { continue }
            stages.append(FeatureMaps(name: name, kind: layer.kind, maps: x.reshaped(Array(x.shape.dropFirst()))))
        }
        guard stages.count > maximumStages, maximumStages > 1 else { return Array(stages.prefix(maximumStages)) }
        return (0..<maximumStages).map { stages[$0 * (stages.count - 1) / (maximumStages - 1)] }
    }
}

extension Canvas {
    /// `picture` drawn into the square at (`x`, `y`) of side `size`, by nearest neighbour, its aspect ratio kept
    /// and centred; grey pictures drawn grey.
    mutating func paste(_ picture: Image, x: Int, y: Int, size: Int) {
        guard picture.width > 0, picture.height > 0 else { return }
        let scale = Double(size) / Double(max(picture.width, picture.height))
        let drawnWidth = max(Int((Double(picture.width) * scale).rounded()), 1)
        let drawnHeight = max(Int((Double(picture.height) * scale).rounded()), 1)
        let left = x + (size - drawnWidth) / 2, top = y + (size - drawnHeight) / 2
        for row in 0..<drawnHeight where top + row >= 0 && top + row < height {
            let sourceRow = min(Int(Double(row) / scale), picture.height - 1)
            for column in 0..<drawnWidth where left + column >= 0 && left + column < width {
                let sourceColumn = min(Int(Double(column) / scale), picture.width - 1)
                let from = (sourceRow * picture.width + sourceColumn) * picture.channels, to = ((top + row) * width + left + column) * 3
                for c in 0..<3 { pixels[to + c] = picture.pixels[from + (picture.channels == 1 ? 0 : c)] }
            }
        }
    }
}
