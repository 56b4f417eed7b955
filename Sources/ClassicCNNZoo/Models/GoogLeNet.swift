// GoogLeNet: Szegedy et al. (2014), "Going deeper with convolutions", Table 1 and Figure 3, in two builds: the paper's
// (Caffe's bvlc_googlenet: biases, ReLU, LRN, 5x5 branches) and torchvision's (batch norm after every convolution
// without bias, and 3x3 kernels in the branches the paper gives 5x5: a known deviation torchvision kept for its
// weights).
import ClassicCNNEngine

public enum GoogLeNet {
    /// A row of Table 1: the maps of the 1x1 branch, the 3x3 branch's 1x1 reduction and 3x3, the 5x5 branch's
    /// reduction and 5x5, and the pooling branch's 1x1 projection.
    public struct Inception: Sendable {
        public let oneByOne: Int, threeReduce: Int, three: Int, fiveReduce: Int, five: Int, poolProjection: Int
        public var outputs: Int { oneByOne + three + five + poolProjection }
    }

    public enum Stage: Sendable {
        case inception(String, Inception)
        /// 3x3 stride-2 max pooling (ceil mode, as Caffe).
        case maxPool(String)
        /// An auxiliary classifier on the previous stage's output (loss weight 0.3).
        case auxiliary(String)
    }

    /// Table 1 from inception (3a) on; the stem (conv 7x7/2, pool, conv 1x1 and 3x3, pool) and the head (7x7 average
    /// pooling, dropout, linear) are the same for every row.
    public static let table1: [Stage] = [
        .inception("inception3a", Inception(oneByOne: 64, threeReduce: 96, three: 128, fiveReduce: 16, five: 32, poolProjection: 32)),     // N x 256 x 28 x 28
        .inception("inception3b", Inception(oneByOne: 128, threeReduce: 128, three: 192, fiveReduce: 32, five: 96, poolProjection: 64)),   // N x 480 x 28 x 28
        .maxPool("maxpool3"),                                                                                                             // N x 480 x 14 x 14
        .inception("inception4a", Inception(oneByOne: 192, threeReduce: 96, three: 208, fiveReduce: 16, five: 48, poolProjection: 64)),    // N x 512 x 14 x 14
        .auxiliary("aux1"),
        .inception("inception4b", Inception(oneByOne: 160, threeReduce: 112, three: 224, fiveReduce: 24, five: 64, poolProjection: 64)),   // N x 512 x 14 x 14
        .inception("inception4c", Inception(oneByOne: 128, threeReduce: 128, three: 256, fiveReduce: 24, five: 64, poolProjection: 64)),   // N x 512 x 14 x 14
        .inception("inception4d", Inception(oneByOne: 112, threeReduce: 144, three: 288, fiveReduce: 32, five: 64, poolProjection: 64)),   // N x 528 x 14 x 14
        .auxiliary("aux2"),
        .inception("inception4e", Inception(oneByOne: 256, threeReduce: 160, three: 320, fiveReduce: 32, five: 128, poolProjection: 128)), // N x 832 x 14 x 14
        .maxPool("maxpool4"),                                                                                                             // N x 832 x 7 x 7
        .inception("inception5a", Inception(oneByOne: 256, threeReduce: 160, three: 320, fiveReduce: 32, five: 128, poolProjection: 128)), // N x 832 x 7 x 7
        .inception("inception5b", Inception(oneByOne: 384, threeReduce: 192, three: 384, fiveReduce: 48, five: 128, poolProjection: 128)), // N x 1024 x 7 x 7
    ]

    public static let paper = ModelDescriptor(
        name: "googlenet", title: "GoogLeNet as published (Table 1): 5x5 branches, LRN, two auxiliary classifiers (weight 0.3)",
        reference: "Szegedy et al. 2014, Going deeper with convolutions", defaultInputSize: 224, defaultClasses: 1000,
        inputChannels: 3, defaultDataset: "imagenet", build: { try network($0, torchvision: false) })

    public static let torchvision = ModelDescriptor(
        name: "googlenet-torchvision", title: "GoogLeNet as torchvision builds it: batch norm, 3x3 for 5x5, auxiliary heads",
        reference: "torchvision.models.googlenet", defaultInputSize: 224, defaultClasses: 1000, inputChannels: 3,
        defaultDataset: "imagenet", build: { try network($0, torchvision: true) })

    /// A convolution and its ReLU: with a bias (the paper), or without, followed by batch norm (torchvision's
    /// BasicConv2d, named `conv` and `bn`).
    static func convolution(_ inputs: Int, _ outputs: Int, kernel: Int, stride: Int = 1, torchvision: Bool) -> any Layer {
        let padding = Padding.uniform(kernel / 2)
        if torchvision {
            return Sequential {
                Conv2D(inputChannels: inputs, outputChannels: outputs, kernelSize: kernel, stride: stride, padding: padding,
                       bias: false, weightInitializer: .normal(standardDeviation: 0.01)).named("conv")
                BatchNorm2D(channels: outputs, epsilon: 0.001).named("bn")
                ReLU().named("relu")
            }
        }
        // Caffe's bvlc_googlenet: Xavier weights, biases 0.2.
        return Sequential {
            Conv2D(inputChannels: inputs, outputChannels: outputs, kernelSize: kernel, stride: stride, padding: padding,
                   weightInitializer: .glorotUniform, biasInitializer: .constant(0.2)).named("conv")
            ReLU().named("relu")
        }
    }

    /// Figure 2(b): four branches concatenated along the channels.
    static func inception(_ inputs: Int, _ row: Inception, torchvision: Bool) -> Concat {
        Concat {
            convolution(inputs, row.oneByOne, kernel: 1, torchvision: torchvision)
            Sequential {
                convolution(inputs, row.threeReduce, kernel: 1, torchvision: torchvision)
                convolution(row.threeReduce, row.three, kernel: 3, torchvision: torchvision)
            }
            Sequential {
                convolution(inputs, row.fiveReduce, kernel: 1, torchvision: torchvision)
                // NOTE: torchvision uses 3x3 here where the paper has 5x5.
                convolution(row.fiveReduce, row.five, kernel: torchvision ? 3 : 5, torchvision: torchvision)
            }
            Sequential {
                MaxPool2D(kernelSize: 3, stride: 1, padding: .uniform(1), ceilMode: true)
                convolution(inputs, row.poolProjection, kernel: 1, torchvision: torchvision)
            }
        }
    }

    /// Section 5: average pooling 5x5 stride 3 (torchvision: adaptive to 4x4), a 1x1 convolution of 128, a fully
    /// connected layer of 1024 with ReLU, dropout 0.7, and the classifier. `side` is the pooled grid: 4 from 4a's and
    /// 4d's 14x14, less for a smaller input (the head sized to what is left).
    static func auxiliary(_ inputs: Int, side: Int, classes: Int, torchvision: Bool) -> AuxiliaryClassifier {
        AuxiliaryClassifier(weight: 0.3) {
            if torchvision { AdaptiveAvgPool2D(outputSize: (4, 4)).named("pool") } else { AvgPool2D(kernelSize: 5, stride: 3).named("pool") }
            convolution(inputs, 128, kernel: 1, torchvision: torchvision).named("conv")
            Flatten().named("flatten")
            Linear(inputFeatures: 128 * side * side, outputFeatures: 1024, weightInitializer: torchvision ? .normal(standardDeviation: 0.01) : .glorotUniform,
                   biasInitializer: torchvision ? .zeros : .constant(0.2)).named("fc1")
            ReLU().named("relu")
            Dropout(rate: 0.7).named("dropout")
            Linear(inputFeatures: 1024, outputFeatures: classes, weightInitializer: torchvision ? .normal(standardDeviation: 0.01) : .glorotUniform,
                   biasInitializer: .zeros).named("fc2")
        }
    }

    static func network(_ configuration: ModelConfiguration, torchvision: Bool) throws -> Model {
        let c = configuration.inputChannels
        var layers: [LayerEntry] = [
            convolution(c, 64, kernel: 7, stride: 2, torchvision: torchvision).named("conv1"),           // N x 64 x 112 x 112
            MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true).named("maxpool1"),                        // N x 64 x 56 x 56
        ]
        // Caffe's LRN: size 5, alpha 1e-4 (divided by the size), beta 0.75, k = 1.
        if !torchvision { layers.append(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 1).named("norm1")) }
        layers += [
            convolution(64, 64, kernel: 1, torchvision: torchvision).named("conv2"),                      // N x 64 x 56 x 56
            convolution(64, 192, kernel: 3, torchvision: torchvision).named("conv3"),                     // N x 192 x 56 x 56
        ]
        if !torchvision { layers.append(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 1).named("norm2")) }
        layers.append(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true).named("maxpool2"))             // N x 192 x 28 x 28
        var channels = 192
        for stage in table1 {
            switch stage {
            case let .inception(name, row):
                layers.append(inception(channels, row, torchvision: torchvision).named(name))
                channels = row.outputs
            case let .maxPool(name):
                // NOTE: torchvision pools 4e's 14x14 output with a 2x2 window where Table 1 has 3x3 (same 7x7 output).
                let kernel = torchvision && name == "maxpool4" ? 2 : 3
                layers.append(MaxPool2D(kernelSize: kernel, stride: 2, ceilMode: true).named(name))
            case let .auxiliary(name):
                // The 5x5/3 pooling of the grid reached here (adaptive in torchvision's, always 4x4).
                let grid = try Sequential(layers).outputShape(for: [1, c, configuration.inputSize, configuration.inputSize])[2]
                let side = torchvision ? 4 : try AvgPool2D(kernelSize: 5, stride: 3).outputShape(for: [1, 1, grid, grid])[2]
                layers.append(auxiliary(channels, side: side, classes: configuration.classes, torchvision: torchvision).named(name))
            }
        }
        layers += [
            GlobalAvgPool2D().named("avgpool"),                                                           // N x 1024
            Dropout(rate: torchvision ? 0.2 : 0.4).named("dropout"),
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: torchvision ? .normal(standardDeviation: 0.01) : .glorotUniform, biasInitializer: .zeros).named("fc"),
        ]
        let network = Sequential(layers)
        _ = try network.outputShape(for: [1, c, configuration.inputSize, configuration.inputSize])
        return Model(name: torchvision ? "googlenet-torchvision" : "googlenet", configuration: configuration, network: network,
                     loss: SoftmaxCrossEntropy(), inputFormat: .imageNet)
    }
}
