// LeNet-5, twice: as LeCun, Bottou, Bengio and Haffner published it in 1998 ("Gradient-based learning applied to
// document recognition", Proc. IEEE 86(11), section II-B), and as the reference Keras model that most tutorials
// train today (ReLU, max pooling, full C3, softmax).
import ClassicCNNEngine

public enum LeNet5 {
    // MARK: - The paper's network

    /// Section II-B of the paper, one row per layer, for the 32x32 input (MNIST's 28x28 centred in a 32x32 field).
    /// Every layer up to F6 is followed by the squashing function f(a) = 1.7159 tanh(2a / 3).
    ///
    /// | layer | kind | maps | window | output | parameters | connections |
    /// |---|---|---|---|---|---|---|
    /// | C1 | convolution | 6 | 5x5 | 6@28x28 | 156 | 122,304 |
    /// | S2 | subsampling | 6 | 2x2 | 6@14x14 | 12 | 5,880 |
    /// | C3 | partial convolution (Table I) | 16 | 5x5 | 16@10x10 | 1,516 | 151,600 |
    /// | S4 | subsampling | 16 | 2x2 | 16@5x5 | 32 | 2,000 |
    /// | C5 | convolution | 120 | 5x5 | 120@1x1 | 48,120 | 48,120 |
    /// | F6 | full | 84 | | 84 | 10,164 | 10,164 |
    /// | OUTPUT | Euclidean RBF, fixed centres | 10 | | 10 | (840 fixed) | 840 |
    public enum Stage: Sendable {
        case convolution(maps: Int, kernel: Int)
        case subsampling(window: Int)
        case partialConvolution(maps: Int, kernel: Int)
        case full(units: Int)
        case rbf
    }

    public static let paperTable: [(name: String, stage: Stage)] = [
        ("C1", .convolution(maps: 6, kernel: 5)),          // N x 6 x 28 x 28
        ("S2", .subsampling(window: 2)),                   // N x 6 x 14 x 14
        ("C3", .partialConvolution(maps: 16, kernel: 5)),  // N x 16 x 10 x 10
        ("S4", .subsampling(window: 2)),                   // N x 16 x 5 x 5
        ("C5", .convolution(maps: 120, kernel: 5)),        // N x 120 x 1 x 1
        ("F6", .full(units: 84)),                          // N x 84
        ("OUTPUT", .rbf),                                  // N x 10
    ]

    /// Table I of the paper: the S2 maps that each C3 map combines. Maps 0-5 take three contiguous maps, 6-11 four
    /// contiguous, 12-14 four discontinuous, 15 all six.
    public static let c3Connections: [[Int]] = [
        [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
        [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
        [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
        [0, 1, 2, 3, 4, 5],
    ]

    /// The RBF centres: each digit drawn on a 7x12 bitmap, +1 where "#" and -1 where "." (the paper's Figure 3
    /// shows the full ASCII set; these ten digits are redrawn in its style: 7 columns, 12 rows, the bottom two
    /// rows left for descenders).
    public static let digitBitmaps: [[String]] = [
        [".#####.", "##...##", "##...##", "##...##", "##...##", "##...##", "##...##", "##...##", "##...##", ".#####.", ".......", "......."],
        ["...##..", "..###..", ".####..", "...##..", "...##..", "...##..", "...##..", "...##..", "...##..", ".######", ".......", "......."],
        [".#####.", "##...##", ".....##", ".....##", "....##.", "...##..", "..##...", ".##....", "##.....", "#######", ".......", "......."],
        ["######.", ".....##", ".....##", ".....##", ".#####.", ".....##", ".....##", ".....##", ".....##", "######.", ".......", "......."],
        ["....##.", "...###.", "..####.", ".##.##.", "##..##.", "#######", "....##.", "....##.", "....##.", "....##.", ".......", "......."],
        ["#######", "##.....", "##.....", "######.", ".....##", ".....##", ".....##", ".....##", "##...##", ".#####.", ".......", "......."],
        ["..####.", ".##....", "##.....", "##.....", "######.", "##...##", "##...##", "##...##", "##...##", ".#####.", ".......", "......."],
        ["#######", ".....##", "....##.", "....##.", "...##..", "...##..", "..##...", "..##...", "..##...", "..##...", ".......", "......."],
        [".#####.", "##...##", "##...##", "##...##", ".#####.", "##...##", "##...##", "##...##", "##...##", ".#####.", ".......", "......."],
        [".#####.", "##...##", "##...##", "##...##", "##...##", ".######", ".....##", ".....##", "....##.", ".####..", ".......", "......."],
    ]

    /// The bitmaps as a [10, 84] tensor of +-1.
    public static var rbfCentres: Tensor {
        Tensor(shape: [10, 84], values: digitBitmaps.flatMap { rows in rows.joined().map { $0 == "#" ? 1 : -1 } })
    }

    public static let paper = ModelDescriptor(
        name: "lenet5-1998",
        title: "LeNet-5 as published: scaled tanh, trainable subsampling, C3 connection table, RBF output",
        reference: "LeCun, Bottou, Bengio, Haffner 1998, Gradient-based learning applied to document recognition",
        defaultInputSize: 32, defaultClasses: 10, inputChannels: 1, defaultDataset: "mnist",
        build: { try paperNetwork($0) })

    static func paperNetwork(_ configuration: ModelConfiguration) throws -> Model {
        guard configuration.classes == 10 else {
            throw ConfigurationError("lenet5-1998: the RBF centres are the 10 digit bitmaps, so --classes must be 10")
        }
        // Weights uniform in +-2.4 / fan-in (section II-B, appendix C).
        let lecunInit = Initializer.fanInUniform(scale: 2.4)
        var entries: [LayerEntry] = []
        var shape = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        func add(_ name: String, _ layer: any Layer, squash: Bool) throws {
            shape = try layer.outputShape(for: shape)
            entries.append(layer.named(name))
            if squash { entries.append(ScaledTanh().named("\(name)_squash")) }
        }
        for (name, stage) in paperTable {
            switch stage {
            case let .convolution(maps, kernel):
                try add(name, Conv2D(inputChannels: shape[1], outputChannels: maps, kernelSize: kernel,
                                     weightInitializer: lecunInit, biasInitializer: lecunInit), squash: true)
            case let .subsampling(window):
                try add(name, Subsampling(channels: shape[1], window: window), squash: true)
            case let .partialConvolution(_, kernel):
                try add(name, PartiallyConnectedConv2D(inputChannels: shape[1], table: c3Connections, kernelSize: kernel), squash: true)
            case let .full(units):
                let features = try denseInputs(shape, network: "lenet5-1998")
                try add(name, Linear(inputFeatures: features, outputFeatures: units, weightInitializer: lecunInit,
                                     biasInitializer: lecunInit), squash: true)
            case .rbf:
                try add(name, EuclideanRBF(centres: rbfCentres), squash: false)
            }
        }
        // Background (white) at -0.1, foreground (black) at 1.175: mean about 0, variance about 1 (section II-B).
        return Model(name: "lenet5-1998", configuration: configuration, network: Sequential(entries),
                     loss: RBFMaximumAPosteriori(), inputFormat: InputFormat(scale: [1.275], offset: [-0.1], fitting: .pad))
    }

    /// The inputs of the first dense layer, refused when a large --input-size would make its weights enormous.
    static func denseInputs(_ shape: [Int], network: String) throws -> Int {
        let features = shape.dropFirst().reduce(1, *)
        guard features <= 1 << 20 else {
            throw ConfigurationError("\(network): this input size leaves \(features) features for the dense layers (at most \(1 << 20)); use a smaller --input-size")
        }
        return features
    }

    // MARK: - The reference Keras model

    public static let keras = ModelDescriptor(
        name: "lenet5",
        title: "LeNet-5, the reference Keras model: ReLU, max pooling, full C3, softmax (61,706 parameters)",
        reference: "LeCun et al. 1998, as commonly rebuilt in Keras",
        defaultInputSize: 32, defaultClasses: 10, inputChannels: 1, defaultDataset: "mnist",
        build: { try kerasNetwork($0) })

    static func kerasNetwork(_ configuration: ModelConfiguration) throws -> Model {
        let c = configuration.inputChannels
        let features = Sequential {
            Conv2D(inputChannels: c, outputChannels: 6, kernelSize: 5).named("conv1")       // N x 6 x 28 x 28
            ReLU().named("relu1")
            MaxPool2D(kernelSize: 2).named("pool1")                                          // N x 6 x 14 x 14
            Conv2D(inputChannels: 6, outputChannels: 16, kernelSize: 5).named("conv2")      // N x 16 x 10 x 10
            ReLU().named("relu2")
            MaxPool2D(kernelSize: 2).named("pool2")                                          // N x 16 x 5 x 5
            Conv2D(inputChannels: 16, outputChannels: 120, kernelSize: 5).named("conv3")    // N x 120 x 1 x 1
            ReLU().named("relu3")
            Flatten().named("flatten")                                                        // N x 120
        }
        let size = configuration.inputSize
        let flat = try denseInputs(try features.outputShape(for: [1, c, size, size]), network: "lenet5")
        let network = Sequential(features.children.map { LayerEntry(name: $0.name, layer: $0.layer) } + [
            Linear(inputFeatures: flat, outputFeatures: 84).named("fc1"),                    // N x 84
            ReLU().named("relu4"),
            Linear(inputFeatures: 84, outputFeatures: configuration.classes).named("fc2"),  // N x 10 (softmax in the loss)
        ])
        return Model(name: "lenet5", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .unit(channels: c, fitting: .pad))
    }
}
