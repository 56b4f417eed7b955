import ArgumentParser
import ClassicCNN
import Foundation

struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the feature maps of each convolution and pooling stage for one image, or the first layer's filters.",
        discussion: """
        One row per stage (at most 12, spread over the network; blocks with branches count as one stage), labelled \
        with the layer's name, kind and output shape; at most 32 maps per stage, each normalised to its own range. \
        The image is prepared as `cnn predict` prepares it. With --filters, the first convolution's kernels instead, \
        in colour for 3-channel input (as AlexNet's Figure 3), each normalised to its own range.
        """)

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String
    @Argument(help: "The image file (PNG or JPEG); not needed with --filters.") var image: String?
    @Flag(help: "Draw the first convolution's kernels instead of feature maps.") var filters = false
    @Option(help: "The picture to write (.png).") var output = "maps.png"
    @OptionGroup var runtime: RuntimeOptions

    static let maximumMaps = 32

    func validate() throws {
        if image == nil && !filters { throw ValidationError("give an image file (or --filters)") }
        if (output as NSString).pathExtension.lowercased() != "png" {
            throw ValidationError("--output \(output): unknown extension '.\((output as NSString).pathExtension)'; use .png")
        }
    }

    func run() throws {
        runtime.apply()
        let (model, info, _) = try Checkpoint.load(path: checkpoint)
        let picture: Image
        if filters {
            guard let (name, convolution) = model.firstConvolution else {
                throw CommandError(description: "\(checkpoint): the \(model.name) has no convolution")
            }
            picture = Self.filterPicture(name: name, convolution: convolution)
        } else {
            let loaded = try Image.load(path: image!)
            let size = model.configuration.inputSize
            let input = model.input(for: loaded, preparation: info.imagePreparation)
            let stages = model.featureMaps(of: Tensor(shape: model.inputShape, values: input))
            let channels = model.configuration.inputChannels
            var rows = [TileRow(label: "input " + model.inputShape.map(String.init).joined(separator: "x"),
                                tiles: [Pictures.normalised(input[...], planes: channels == 3 ? 3 : 1, height: size, width: size)])]
            rows += stages.map { stage in
                let (c, h, w) = (stage.maps.shape[0], stage.maps.shape[1], stage.maps.shape[2])
                let values = stage.maps.values, shown = min(c, Self.maximumMaps)
                var label = "\(stage.name) \(stage.kind) \(c)x\(h)x\(w)" + (shown < c ? " (first \(shown) maps)" : "")
                // A map of one pixel has no range of its own: these are normalised over the stage instead.
                if h * w == 1 {
                    let tiles = Pictures.normalised(values[0..<shown], planes: 1, height: 1, width: shown)
                    label += " (normalised over the stage)"
                    return TileRow(label: label, tiles: tiles.pixels.map { Image(width: 1, height: 1, channels: 1, pixels: [$0]) })
                }
                return TileRow(label: label, tiles: (0..<shown).map {
                    Pictures.normalised(values[$0 * h * w ..< ($0 + 1) * h * w], planes: 1, height: h, width: w)
                })
            }
            picture = Pictures.rows(rows, tileSize: 48, columns: Self.maximumMaps)
        }
        try picture.writePNG(path: output)
        print("Wrote \(output)")
    }

    /// The kernels of `convolution`, one tile each: colour for 3 input channels, else the first channel in grey.
    static func filterPicture(name: String, convolution: Conv2D) -> Image {
        let weight = convolution.weight.value
        let (outputs, inputs, h, w) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let values = weight.values, planes = inputs == 3 ? 3 : 1, kernel = inputs * h * w
        let tiles = (0..<outputs).map { Pictures.normalised(values[$0 * kernel ..< $0 * kernel + planes * h * w], planes: planes, height: h, width: w) }
        let label = "\(name) \(outputs) filters \(inputs)x\(h)x\(w)" + (planes == 1 && inputs > 1 ? " (input channel 0)" : "")
        return Pictures.rows([TileRow(label: label, tiles: tiles)], tileSize: max(4 * max(h, w), 32), columns: 16)
    }
}
