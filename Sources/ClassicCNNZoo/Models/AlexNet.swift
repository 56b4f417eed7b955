// AlexNet: Krizhevsky, Sutskever and Hinton (2012), "ImageNet classification with deep convolutional neural
// networks", section 3 and Figure 2; three variants that differ in widths, grouping, LRN and padding.
import ClassicCNNEngine

public enum AlexNet {
    /// One convolution stage: its maps, kernel, stride, padding and groups, and whether LRN and an overlapping
    /// 3x3 stride-2 max pool follow it.
    public struct Stage: Sendable {
        public let maps: Int, kernel: Int, stride: Int
        public let padding: Padding
        public let groups: Int
        public let normalized: Bool, pooled: Bool
    }

    /// The paper's network as Caffe's bvlc_alexnet builds it (227x227 input): the two-GPU split as groups = 2 in
    /// conv2, conv4 and conv5; LRN (k = 2, n = 5, alpha = 1e-4, beta = 0.75, the paper's formula without alpha / n)
    /// after conv1 and conv2.
    public static let paperStages: [Stage] = [
        Stage(maps: 96, kernel: 11, stride: 4, padding: .valid, groups: 1, normalized: true, pooled: true),       // N x 96 x 27 x 27
        Stage(maps: 256, kernel: 5, stride: 1, padding: .uniform(2), groups: 2, normalized: true, pooled: true),  // N x 256 x 13 x 13
        Stage(maps: 384, kernel: 3, stride: 1, padding: .uniform(1), groups: 1, normalized: false, pooled: false), // N x 384 x 13 x 13
        Stage(maps: 384, kernel: 3, stride: 1, padding: .uniform(1), groups: 2, normalized: false, pooled: false), // N x 384 x 13 x 13
        Stage(maps: 256, kernel: 3, stride: 1, padding: .uniform(1), groups: 2, normalized: false, pooled: true),  // N x 256 x 6 x 6
    ]

    /// torchvision's alexnet (the "one weird trick" widths 64-192-384-256-256, no LRN, no groups), 224x224 input.
    public static let torchvisionStages: [Stage] = [
        Stage(maps: 64, kernel: 11, stride: 4, padding: .uniform(2), groups: 1, normalized: false, pooled: true), // N x 64 x 27 x 27
        Stage(maps: 192, kernel: 5, stride: 1, padding: .uniform(2), groups: 1, normalized: false, pooled: true), // N x 192 x 13 x 13
        Stage(maps: 384, kernel: 3, stride: 1, padding: .uniform(1), groups: 1, normalized: false, pooled: false),
        Stage(maps: 256, kernel: 3, stride: 1, padding: .uniform(1), groups: 1, normalized: false, pooled: false),
        Stage(maps: 256, kernel: 3, stride: 1, padding: .uniform(1), groups: 1, normalized: false, pooled: true), // N x 256 x 6 x 6
    ]

    /// The reference Keras variant for CIFAR-10 resized to 224x224: the paper's widths, no LRN, no groups, a valid
    /// first convolution and "same" padding after it.
    public static let kerasCIFARStages: [Stage] = [
        Stage(maps: 96, kernel: 11, stride: 4, padding: .valid, groups: 1, normalized: false, pooled: true),  // N x 96 x 26 x 26
        Stage(maps: 256, kernel: 5, stride: 1, padding: .same, groups: 1, normalized: false, pooled: true),   // N x 256 x 12 x 12
        Stage(maps: 384, kernel: 3, stride: 1, padding: .same, groups: 1, normalized: false, pooled: false),
        Stage(maps: 384, kernel: 3, stride: 1, padding: .same, groups: 1, normalized: false, pooled: false),
        Stage(maps: 256, kernel: 3, stride: 1, padding: .same, groups: 1, normalized: false, pooled: true),   // N x 256 x 5 x 5
    ]

    /// The classifier: two hidden layers of 4096 with dropout 0.5, then the classes.
    public static let hiddenUnits = [4096, 4096]

    public static let paper = ModelDescriptor(
        name: "alexnet", title: "AlexNet as published: LRN, overlapping pooling, the two-GPU split as groups = 2",
        reference: "Krizhevsky, Sutskever, Hinton 2012, ImageNet classification with deep convolutional neural networks",
        defaultInputSize: 227, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet",
        build: { try network($0, name: "alexnet", stages: paperStages, style: .caffe) })

    public static let torchvision = ModelDescriptor(
        name: "alexnet-torchvision", title: "AlexNet as torchvision builds it (64-192-384-256-256, no LRN, no groups)",
        reference: "torchvision.models.alexnet", defaultInputSize: 224, defaultClasses: 1000, inputChannels: 3,
        defaultDataset: "imagenet", build: { try network($0, name: "alexnet-torchvision", stages: torchvisionStages, style: .torchvision) })

    public static let kerasCIFAR = ModelDescriptor(
        name: "alexnet-cifar", title: "AlexNet, the reference Keras variant for CIFAR-10 at 224 (no LRN, no groups)",
        reference: "Krizhevsky et al. 2012, as commonly rebuilt in Keras", defaultInputSize: 224, defaultClasses: 10,
        inputChannels: 3, defaultDataset: "cifar10",
        build: { try network($0, name: "alexnet-cifar", stages: kerasCIFARStages, style: .keras) })

    /// Naming and initialisation follow the source each variant reproduces.
    enum Style { case caffe, torchvision, keras }

    static func network(_ configuration: ModelConfiguration, name: String, stages: [Stage], style: Style) throws -> Model {
        var features: [LayerEntry] = []
        var shape = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        var channels = configuration.inputChannels
        func add(_ layer: any Layer, _ caffeName: String) throws {
            shape = try layer.outputShape(for: shape)
            features.append(style == .caffe ? layer.named(caffeName) : LayerEntry(name: nil, layer: layer))
        }
        for (i, stage) in stages.enumerated() {
            let n = i + 1
            // The paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden fully connected layers.
            let (weights, biases): (Initializer, Initializer) = switch style {
            case .caffe: (.normal(standardDeviation: 0.01), [2, 4, 5].contains(n) ? .constant(1) : .zeros)
            case .torchvision: (.torchDefault, .torchDefault)
            case .keras: (.glorotUniform, .zeros)
            }
            try add(Conv2D(inputChannels: channels, outputChannels: stage.maps, kernelSize: stage.kernel, stride: stage.stride,
                           padding: stage.padding, groups: stage.groups, weightInitializer: weights, biasInitializer: biases), "conv\(n)")
            try add(ReLU(), "relu\(n)")
            if stage.normalized { try add(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2, alphaIsDividedBySize: false), "norm\(n)") }
            if stage.pooled { try add(MaxPool2D(kernelSize: 3, stride: 2), "pool\(n)") }
            channels = stage.maps
        }
        let flat = shape.dropFirst().reduce(1, *)
        guard flat <= 1 << 20 else {
            throw ConfigurationError("\(name): this input size leaves \(flat) features for the classifier; use a smaller --input-size")
        }
        var classifier: [LayerEntry] = []
        var inputs = flat
        for (i, units) in (hiddenUnits + [configuration.classes]).enumerated() {
            let hidden = i < hiddenUnits.count
            let (weights, biases): (Initializer, Initializer) = switch style {
            case .caffe: (.normal(standardDeviation: hidden ? 0.005 : 0.01), hidden ? .constant(1) : .zeros)
            case .torchvision: (.torchDefault, .torchDefault)
            case .keras: (.glorotUniform, .zeros)
            }
            let linear = Linear(inputFeatures: inputs, outputFeatures: units, weightInitializer: weights, biasInitializer: biases)
            switch style {
            case .torchvision:  // torchvision: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
                if hidden { classifier.append(LayerEntry(name: nil, layer: Dropout(rate: 0.5))) }
                classifier.append(LayerEntry(name: nil, layer: linear))
                if hidden { classifier.append(LayerEntry(name: nil, layer: ReLU())) }
            case .caffe, .keras:  // fc, ReLU, dropout
                classifier.append(linear.named("fc\(i + 6)"))
                if hidden {
                    classifier.append(ReLU().named("relu\(i + 6)"))
                    classifier.append(Dropout(rate: 0.5).named("drop\(i + 6)"))
                }
            }
            inputs = units
        }
        let network: Sequential
        if style == .torchvision {
            network = Sequential([Sequential(features).named("features"), Flatten().named("flatten"),
                                  Sequential(classifier).named("classifier")])
        } else {
            network = Sequential(features + [Flatten().named("flatten")] + classifier)
        }
        return Model(name: name, configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: style == .keras ? .unit(channels: configuration.inputChannels) : .imageNet)
    }
}
