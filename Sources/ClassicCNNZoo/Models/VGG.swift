// VGG: Simonyan and Zisserman (2015), "Very deep convolutional networks for large-scale image recognition",
// Table 1: six configurations, A to E, in one table. torchvision's names (`features.N`, `classifier.N`) so that
// its weights load as they are.
import ClassicCNNEngine

public enum VGG {
    /// A column entry of Table 1: a 3x3 convolution (stride 1, padding 1) with its maps, a 1x1 convolution
    /// (configuration C), a 2x2 stride-2 max pool, or LRN (configuration A-LRN).
    public enum Entry: Sendable, Equatable {
        case conv(Int)
        case conv1x1(Int)
        case maxPool
        case lrn
    }

    /// Table 1, one configuration per row. Every convolution is followed by ReLU. At 224x224 the five pools take
    /// the maps to 112, 56, 28, 14 and 7.
    public static let configurations: [(name: String, column: String, entries: [Entry])] = [
        ("vgg11", "A", [.conv(64), .maxPool, .conv(128), .maxPool, .conv(256), .conv(256), .maxPool,
                        .conv(512), .conv(512), .maxPool, .conv(512), .conv(512), .maxPool]),
        ("vgg11-lrn", "A-LRN", [.conv(64), .lrn, .maxPool, .conv(128), .maxPool, .conv(256), .conv(256), .maxPool,
                                .conv(512), .conv(512), .maxPool, .conv(512), .conv(512), .maxPool]),
        ("vgg13", "B", [.conv(64), .conv(64), .maxPool, .conv(128), .conv(128), .maxPool, .conv(256), .conv(256), .maxPool,
                        .conv(512), .conv(512), .maxPool, .conv(512), .conv(512), .maxPool]),
        ("vgg16-c", "C", [.conv(64), .conv(64), .maxPool, .conv(128), .conv(128), .maxPool,
                          .conv(256), .conv(256), .conv1x1(256), .maxPool, .conv(512), .conv(512), .conv1x1(512), .maxPool,
                          .conv(512), .conv(512), .conv1x1(512), .maxPool]),
        ("vgg16", "D", [.conv(64), .conv(64), .maxPool, .conv(128), .conv(128), .maxPool,
                        .conv(256), .conv(256), .conv(256), .maxPool, .conv(512), .conv(512), .conv(512), .maxPool,
                        .conv(512), .conv(512), .conv(512), .maxPool]),
        ("vgg19", "E", [.conv(64), .conv(64), .maxPool, .conv(128), .conv(128), .maxPool,
                        .conv(256), .conv(256), .conv(256), .conv(256), .maxPool,
                        .conv(512), .conv(512), .conv(512), .conv(512), .maxPool,
                        .conv(512), .conv(512), .conv(512), .conv(512), .maxPool]),
    ]

    /// The fully connected layers: 4096, 4096, then the classes, with dropout 0.5 after the first two.
    public static let hiddenUnits = [4096, 4096]

    /// The configurations that torchvision also offers with batch normalisation after every convolution
    /// (`vgg11_bn`, `vgg13_bn`, `vgg16_bn`, `vgg19_bn`): the paper's A, B, D and E. Batch normalisation came later
    /// (Ioffe and Szegedy 2015); with it VGG trains from scratch without the paper's staged initialisation.
    public static let batchNormalised = ["vgg11", "vgg13", "vgg16", "vgg19"]

    public static let descriptors: [ModelDescriptor] = configurations.map { configuration in
        ModelDescriptor(
            name: configuration.name, title: "VGG configuration \(configuration.column) (Table 1)",
            reference: "Simonyan, Zisserman 2015, Very deep convolutional networks for large-scale image recognition",
            defaultInputSize: 224, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet",
            build: { try network($0, name: configuration.name, entries: configuration.entries) })
    } + configurations.filter { batchNormalised.contains($0.name) }.map { configuration in
        ModelDescriptor(
            name: configuration.name + "-bn", title: "VGG configuration \(configuration.column) with batch normalisation (torchvision)",
            reference: "Simonyan, Zisserman 2015, with batch normalisation after each convolution as torchvision's \(configuration.name)_bn",
            defaultInputSize: 224, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet",
            build: { try network($0, name: configuration.name + "-bn", entries: configuration.entries, batchNorm: true) })
    }

    /// Section 3.2's dense evaluation: "the fully-connected layers are first converted to convolutional layers (the
    /// first FC layer to a 7x7 conv. layer, the last two FC layers to 1x1 conv. layers). The resulting fully-convolutional
    /// net is then applied to the whole (uncropped) image. The result is a class score map ... spatially averaged".
    ///
    /// Returns that network for images of `inputSize` (at least the size `model` was built for), sharing the trained
    /// model's convolutions and holding its FC weights as convolutions: `classifier.0.weight` becomes
    /// [4096, 512, 7, 7] (the same values: the FC input is the flattened 512 x 7 x 7 map). The class scores (logits)
    /// are averaged over the score map; at the model's own size the map is 1 x 1 and the outputs equal the model's.
    public static func denseEvaluation(of model: Model, inputSize: Int) throws -> Model {
        let parts = Dictionary(model.network.children.map { ($0.name, $0.layer) }, uniquingKeysWith: { first, _ in first })
        guard model.name.hasPrefix("vgg"), let features = parts["features"], let classifier = parts["classifier"] else {
            throw ConfigurationError("dense evaluation is for the VGG networks, not \(model.name)")
        }
        let own = model.configuration
        guard inputSize >= own.inputSize, inputSize <= ModelDescriptor.maximumInputSize else {
            throw ConfigurationError("dense evaluation of \(model.name), built for \(own.inputSize)x\(own.inputSize), needs an input "
                + "of at least that size (and at most \(ModelDescriptor.maximumInputSize)), not \(inputSize)")
        }
        let map = try features.outputShape(for: [1, own.inputChannels, own.inputSize, own.inputSize])
        let (channels, side) = (map[1], map[2])
        var layers: [LayerEntry] = []
        var inputs = channels, kernel = side
        for (name, layer) in classifier.children {
            guard let linear = layer as? Linear else {
                layers.append(LayerEntry(name: name, layer: layer))
                continue
            }
            let conv = Conv2D(inputChannels: inputs, outputChannels: linear.outputFeatures, kernelSize: kernel)
            conv.weight.value = linear.weight.value.reshaped(conv.weight.shape)
            if let bias = conv.bias, let linearBias = linear.bias { bias.value = linearBias.value }
            layers.append(LayerEntry(name: name, layer: conv))
            (inputs, kernel) = (linear.outputFeatures, 1)
        }
        let network = Sequential([
            LayerEntry(name: "features", layer: features),
            LayerEntry(name: "classifier", layer: Sequential(layers)),
            GlobalAvgPool2D().named("average"),
        ])
        _ = try network.outputShape(for: [1, own.inputChannels, inputSize, inputSize])
        let configuration = ModelConfiguration(inputSize: inputSize, classes: own.classes, inputChannels: own.inputChannels)
        return Model(name: model.name, configuration: configuration, network: network, loss: model.loss, inputFormat: model.inputFormat)
    }

    /// With `batchNorm`, torchvision's `vgg*_bn` layout: convolution (with its bias), BatchNorm2d, ReLU, so that
    /// `features.N` numbers the same layers as torchvision's.
    static func network(_ configuration: ModelConfiguration, name: String, entries: [Entry], batchNorm: Bool = false) throws -> Model {
        var features: [any Layer] = []
        var channels = configuration.inputChannels
        for entry in entries {
            switch entry {
            case let .conv(maps), let .conv1x1(maps):
                let kernel = entry == .conv1x1(maps) ? 1 : 3
                // torchvision's initialisation: He normal (fan-out) weights, zero biases.
                features.append(Conv2D(inputChannels: channels, outputChannels: maps, kernelSize: kernel,
                                       padding: .uniform(kernel / 2), weightInitializer: .heNormalFanOut, biasInitializer: .zeros))
                // torchvision: weight 1, bias 0, PyTorch's momentum 0.1 and epsilon 1e-5.
                if batchNorm { features.append(BatchNorm2D(channels: maps)) }
                features.append(ReLU())
                channels = maps
            case .maxPool:
                features.append(MaxPool2D(kernelSize: 2, stride: 2))
            case .lrn:
                // "the same setup as Krizhevsky et al." (section 2.2).
                features.append(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2, alphaIsDividedBySize: false))
            }
        }
        let featureStack = Sequential(features.map { LayerEntry(name: nil, layer: $0) })
        let size = configuration.inputSize
        let shape = try featureStack.outputShape(for: [1, configuration.inputChannels, size, size])
        let flat = shape.dropFirst().reduce(1, *)
        guard flat <= 1 << 20 else {
            throw ConfigurationError("\(name): this input size leaves \(flat) features for the classifier; use a smaller --input-size")
        }
        // torchvision: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear; weights N(0, 0.01), zero biases.
        var classifier: [any Layer] = []
        var inputs = flat
        for (i, units) in (hiddenUnits + [configuration.classes]).enumerated() {
            classifier.append(Linear(inputFeatures: inputs, outputFeatures: units,
                                     weightInitializer: .normal(standardDeviation: 0.01), biasInitializer: .zeros))
            if i < hiddenUnits.count {
                classifier.append(ReLU())
                classifier.append(Dropout(rate: 0.5))
            }
            inputs = units
        }
        // NOTE: torchvision puts AdaptiveAvgPool2d((7, 7)) between the two; at 224x224 it is the identity, and other
        // sizes change the classifier's input instead. For the paper's way with larger images see `denseEvaluation`.
        let network = Sequential([
            featureStack.named("features"), Flatten().named("flatten"),
            Sequential(classifier.map { LayerEntry(name: nil, layer: $0) }).named("classifier"),
        ])
        return Model(name: name, configuration: configuration, network: network, loss: SoftmaxCrossEntropy(), inputFormat: .imageNet)
    }
}
