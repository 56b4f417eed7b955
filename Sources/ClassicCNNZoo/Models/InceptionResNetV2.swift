// Inception-ResNet-v2: Szegedy, Ioffe, Vanhoucke and Alemi (2016), "Inception-v4, Inception-ResNet and the impact of
// residual connections on learning", Figures 3, 7, 15 to 19, as timm builds it (timm.models.inception_resnet_v2,
// Cadene's port of the released TF-slim model), with timm's module names so that parameter paths are its state_dict
// keys (`repeat_1.19.branch1.2.bn.running_var`, `classif.weight`). Convolutions are timm's ConvNormAct (no bias,
// batch norm with epsilon 0.001, ReLU), as in `InceptionV4.basic`, except the 1x1 projection of each residual block
// (`conv2d`), a plain convolution with bias and no batch norm.
//
// NOTE: the released model, which timm follows, departs from the paper: instead of Figure 3's stem (shared with
// Inception-v4) it has TF-slim's Inception v3 stem and a Mixed_5b module to 35x35x320, so its blocks project to 320,
// 1088 and 2080 channels where Figures 16, 17 and 19 have 384, 1154 and 2048.
import ClassicCNNEngine

public enum InceptionResNetV2 {
    /// A stage, named as timm's attribute.
    public enum Stage: Sendable {
        /// A stem convolution.
        case convolution(String, outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
        /// 3x3/2 max pooling.
        case maxPool(String)
        /// TF-slim's Mixed_5b: 1x1 (96), 1x1 then 5x5 (48, 64), 1x1 then two 3x3 (64, 96, 96), average pooling then
        /// 1x1 (64).
        case mixed5b(String)
        /// Figure 16 (Block35) `count` times at 35x35, residuals scaled by `scale`, in a `Sequential` (`repeat.0`).
        case block35(String, count: Int, scale: Float)
        /// Figure 7 with k, l, m, n = 256, 256, 384, 384: 35x35 to 17x17.
        case mixed6a(String)
        /// Figure 17 (Block17) `count` times at 17x17.
        case block17(String, count: Int, scale: Float)
        /// Figure 18: 17x17 to 8x8.
        case mixed7a(String)
        /// Figure 19 (Block8) `count` times at 8x8.
        case block8(String, count: Int, scale: Float)
        /// One Block8 with scale 1 and no ReLU after the sum, outside a `Sequential` (timm's `block8`).
        case finalBlock8(String)

    }

    /// Figure 15 as released, one line per stage; the head (global average pooling, dropout, linear) follows.
    public static let figure15: [Stage] = [
        .convolution("conv2d_1a", outputs: 32, kernel: 3, stride: 2),  // N x 32 x 149 x 149
        .convolution("conv2d_2a", outputs: 32, kernel: 3),             // N x 32 x 147 x 147
        .convolution("conv2d_2b", outputs: 64, kernel: 3, padding: 1), // N x 64 x 147 x 147
        .maxPool("maxpool_3a"),                                        // N x 64 x 73 x 73
        .convolution("conv2d_3b", outputs: 80, kernel: 1),             // N x 80 x 73 x 73
        .convolution("conv2d_4a", outputs: 192, kernel: 3),            // N x 192 x 71 x 71
        .maxPool("maxpool_5a"),                                        // N x 192 x 35 x 35
        .mixed5b("mixed_5b"),                                          // N x 320 x 35 x 35
        .block35("repeat", count: 10, scale: 0.17),                    // N x 320 x 35 x 35
        .mixed6a("mixed_6a"),                                          // N x 1088 x 17 x 17
        .block17("repeat_1", count: 20, scale: 0.10),                  // N x 1088 x 17 x 17
        .mixed7a("mixed_7a"),                                          // N x 2080 x 8 x 8
        .block8("repeat_2", count: 9, scale: 0.20),                    // N x 2080 x 8 x 8
        .finalBlock8("block8"),                                        // N x 2080 x 8 x 8
        .convolution("conv2d_7b", outputs: 1536, kernel: 1),           // N x 1536 x 8 x 8
    ]

    public static let timm = ModelDescriptor(
        name: "inception-resnet-v2", title: "Inception-ResNet-v2 as timm builds it: Inception blocks with scaled residual sums",
        reference: "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the impact of residual connections on learning; timm inception_resnet_v2",
        defaultInputSize: 299, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet", build: { try network($0) })

    /// timm's ConvNormAct, as in Inception-v4.
    static let basic = Inception.BasicConv.timm

    static func mixed5b(_ inputs: Int) -> Concat {
        Concat {
            basic(inputs, 96, kernel: 1).named("branch0")
            Sequential {
                basic(inputs, 48, kernel: 1)
                basic(48, 64, kernel: 5, padding: 2)
            }.named("branch1")
            Sequential {
                basic(inputs, 64, kernel: 1)
                basic(64, 96, kernel: 3, padding: 1)
                basic(96, 96, kernel: 3, padding: 1)
            }.named("branch2")
            Sequential {
                InceptionV4.averagePool()
                basic(inputs, 64, kernel: 1)
            }.named("branch3")
        }
    }

    static func mixed6a(_ inputs: Int) -> Concat { InceptionV4.reductionA(inputs, k: 256, l: 256, m: 384, n: 384) }

    /// The 17x17 to 8x8 reduction of both Inception-ResNets (Figure 18 here, Figure 12 in v1): three branches from a
    /// 1x1 of 256, the first to a 3x3/2 of `widths.0`, the second to one of `widths.1`, the third through a 3x3 of
    /// `widths.2` to a 3x3/2 of `widths.3`; and max pooling.
    static func mixed7a(_ inputs: Int, widths: (Int, Int, Int, Int) = (384, 288, 288, 320)) -> Concat {
        Concat {
            Sequential {
                basic(inputs, 256, kernel: 1)
                basic(256, widths.0, kernel: 3, stride: 2)
            }.named("branch0")
            Sequential {
                basic(inputs, 256, kernel: 1)
                basic(256, widths.1, kernel: 3, stride: 2)
            }.named("branch1")
            Sequential {
                basic(inputs, 256, kernel: 1)
                basic(256, widths.2, kernel: 3, padding: 1)
                basic(widths.2, widths.3, kernel: 3, stride: 2)
            }.named("branch2")
            InceptionV4.maxPool().named("branch3")
        }
    }

    /// Figure 16 as released (Block35): 1x1 (32), 1x1 then 3x3 (32, 32), 1x1 then two 3x3 (32, 48, 64); 128 to 320.
    static func block35(_ inputs: Int, scale: Float) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, branches: [
            ("branch0", basic(inputs, 32, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 32, kernel: 1)
                basic(32, 32, kernel: 3, padding: 1)
            }),
            ("branch2", Sequential {
                basic(inputs, 32, kernel: 1)
                basic(32, 48, kernel: 3, padding: 1)
                basic(48, 64, kernel: 3, padding: 1)
            }),
        ])
    }

    /// Figure 17 as released (Block17): 1x1 (192), 1x1, 1x7, 7x1 (128, 160, 192); 384 to 1088.
    static func block17(_ inputs: Int, scale: Float) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, branches: [
            ("branch0", basic(inputs, 192, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 128, kernel: 1)
                basic(128, 160, kernel: (1, 7), padding: (0, 3))
                basic(160, 192, kernel: (7, 1), padding: (3, 0))
            }),
        ])
    }

    /// Figure 19 as released (Block8): 1x1 (192), 1x1, 1x3, 3x1 (192, 224, 256); 448 to 2080.
    static func block8(_ inputs: Int, scale: Float, relu: Bool = true) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, relu: relu, branches: [
            ("branch0", basic(inputs, 192, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 192, kernel: 1)
                basic(192, 224, kernel: (1, 3), padding: (0, 1))
                basic(224, 256, kernel: (3, 1), padding: (1, 0))
            }),
        ])
    }

    static func network(_ configuration: ModelConfiguration) throws -> Model {
        let input = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        var (layers, shape) = try Inception.chain(figure15, input: input) { stage, inputs -> LayerEntry in
            switch stage {
            case let .convolution(name, outputs, kernel, stride, padding):
                return basic(inputs, outputs, kernel: kernel, stride: stride, padding: padding).named(name)
            case let .maxPool(name): return InceptionV4.maxPool().named(name)
            case let .mixed5b(name): return mixed5b(inputs).named(name)
            case let .block35(name, count, scale): return try Inception.repeated(count) { try block35(inputs, scale: scale) }.named(name)
            case let .mixed6a(name): return mixed6a(inputs).named(name)
            case let .block17(name, count, scale): return try Inception.repeated(count) { try block17(inputs, scale: scale) }.named(name)
            case let .mixed7a(name): return mixed7a(inputs).named(name)
            case let .block8(name, count, scale): return try Inception.repeated(count) { try block8(inputs, scale: scale) }.named(name)
            case let .finalBlock8(name): return try block8(inputs, scale: 1, relu: false).named(name)
            }
        }
        let channels = shape[1]
        layers += [
            GlobalAvgPool2D().named("global_pool"),                    // N x 1536
            // Figure 15: dropout keeping 0.8. NOTE: timm's drop_rate defaults to 0.
            Dropout(rate: 0.2).named("head_drop"),
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: .torchDefault, biasInitializer: .torchDefault).named("classif"),
        ]
        let network = Sequential(layers)
        _ = try network.outputShape(for: [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize])
        return Model(name: "inception-resnet-v2", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .imageNet)
    }
}
