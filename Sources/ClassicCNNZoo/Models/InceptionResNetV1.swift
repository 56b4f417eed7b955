// Inception-ResNet-v1: Szegedy, Ioffe, Vanhoucke and Alemi (2016), "Inception-v4, Inception-ResNet and the impact of
// residual connections on learning", Figure 15's schema with the Inception-ResNet-v1 stem (Figure 14), blocks
// (Figures 10, 11, 13) and reductions (Figure 7 with k, l, m, n = 192, 192, 256, 384; Figure 12). Module names follow
// facenet-pytorch (timesler/facenet-pytorch, models/inception_resnet_v1.py, a port of davidsandberg/facenet's TF-slim
// model), so parameter paths are its state_dict keys where the layers are the same (`repeat_2.9.branch1.2.conv.weight`,
// `mixed_7a.branch2.2.bn.running_var`, `block8.conv2d.bias`).
//
// Batch norm (epsilon 0.001) follows every "traditional" convolution, as the paper says, and neither the 1x1 linear
// projection of a residual block (`conv2d`, with bias) nor the summation: the same blocks as Inception-ResNet-v2's here
// (`Inception.BasicConv.timm`, `Inception.residualBlock`). NOTE: TF-slim's batch norm has no scale (gamma);
// facenet-pytorch, timm and this package keep one.
//
// Residual scales are not in the paper (section 3.3 only says 0.1 to 0.3): those of the released TF-slim code
// (facenet's inception_resnet_v1.py, whose residual blocks are TF-slim's inception_resnet_v2 ones), 0.17 for A, 0.10
// for B, 0.20 for C, and a last C block with scale 1 and no ReLU after the sum, as Inception-ResNet-v2 has here.
//
// NOTE: two departures of facenet's code from the paper, where this file follows the paper:
// - facenet has 5 C blocks at scale 0.20 and then the last one (6 in all); Figure 15 has 5 in all, so here 4 + 1.
//   Its backbone has one Block8 more (1,600,768 parameters: 22,564,096 before `last_linear` against 20,963,328 here).
//   Cut to 4 + 1 Block8 and given this head, facenet-pytorch 2.6.0's model has this one's 577 state-dict tensors and,
//   with random weights, the same logits within 6.2e-7 relative.
// - facenet's head is a face embedding: `last_linear` (1792 to 512, no bias), `last_bn`, then L2 normalisation or
//   `logits`. Here it is Figure 15's classification head: average pooling, dropout keeping 0.8, `logits` (1792 to
//   the classes).
import ClassicCNNEngine

public enum InceptionResNetV1 {
    /// A stage of Figure 15, named as facenet-pytorch's attribute.
    public enum Stage: Sendable {
        /// A stem convolution (Figure 14).
        case convolution(String, outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
        /// 3x3/2 max pooling (Figure 14).
        case maxPool(String)
        /// Figure 10 (Inception-ResNet-A, Block35) `count` times at 35x35, residuals scaled by `scale`, in a
        /// `Sequential` (`repeat_1.0`).
        case blockA(String, count: Int, scale: Float)
        /// Figure 7, 35x35 to 17x17: a 3x3/2 convolution (n) beside 1x1 (k), 3x3 (l), 3x3/2 (m), beside max pooling.
        case reductionA(String, k: Int, l: Int, m: Int, n: Int)
        /// Figure 11 (Inception-ResNet-B, Block17) `count` times at 17x17.
        case blockB(String, count: Int, scale: Float)
        /// Figure 12, 17x17 to 8x8: 1x1 then 3x3/2 (256, 384), 1x1 then 3x3/2 (256, 256), 1x1, 3x3, 3x3/2 (256 each),
        /// max pooling.
        case reductionB(String)
        /// Figure 13 (Inception-ResNet-C, Block8) `count` times at 8x8.
        case blockC(String, count: Int, scale: Float)
        /// One Figure 13 block with scale 1 and no ReLU after the sum, outside a `Sequential` (facenet's `block8`).
        case finalBlockC(String)

    }

    /// Figure 15 with Inception-ResNet-v1's parts, one line per stage; the head (average pooling, dropout, linear)
    /// follows.
    public static let figure15: [Stage] = [
        .convolution("conv2d_1a", outputs: 32, kernel: 3, stride: 2),  // N x 32 x 149 x 149
        .convolution("conv2d_2a", outputs: 32, kernel: 3),             // N x 32 x 147 x 147
        .convolution("conv2d_2b", outputs: 64, kernel: 3, padding: 1), // N x 64 x 147 x 147
        .maxPool("maxpool_3a"),                                        // N x 64 x 73 x 73
        .convolution("conv2d_3b", outputs: 80, kernel: 1),             // N x 80 x 73 x 73
        .convolution("conv2d_4a", outputs: 192, kernel: 3),            // N x 192 x 71 x 71
        .convolution("conv2d_4b", outputs: 256, kernel: 3, stride: 2), // N x 256 x 35 x 35
        .blockA("repeat_1", count: 5, scale: 0.17),                    // N x 256 x 35 x 35
        .reductionA("mixed_6a", k: 192, l: 192, m: 256, n: 384),       // N x 896 x 17 x 17
        .blockB("repeat_2", count: 10, scale: 0.10),                   // N x 896 x 17 x 17
        .reductionB("mixed_7a"),                                       // N x 1792 x 8 x 8
        .blockC("repeat_3", count: 4, scale: 0.20),                    // N x 1792 x 8 x 8
        .finalBlockC("block8"),                                        // N x 1792 x 8 x 8
    ]

    public static let paper = ModelDescriptor(
        name: "inception-resnet-v1", title: "Inception-ResNet-v1 (Figure 15): Inception-v3-sized residual Inception blocks, scaled sums",
        reference: "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the impact of residual connections on learning; facenet-pytorch names",
        defaultInputSize: 299, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet", build: { try network($0) })

    /// timm's ConvNormAct, as in Inception-v4.
    static let basic = Inception.BasicConv.timm

    /// Figure 7 (facenet's Mixed_6a): the reduction Inception-v4 and both Inception-ResNets share, facenet's branch order.
    static func reductionA(_ inputs: Int, k: Int, l: Int, m: Int, n: Int) -> Concat {
        InceptionV4.reductionA(inputs, k: k, l: l, m: m, n: n)
    }

    /// Figure 12 (facenet's Mixed_7a): Inception-ResNet-v2's Figure 18 with widths 384, 256, 256, 256.
    static func reductionB(_ inputs: Int) -> Concat { InceptionResNetV2.mixed7a(inputs, widths: (384, 256, 256, 256)) }

    /// Figure 10 (Block35): 1x1 (32), 1x1 then 3x3 (32, 32), 1x1 then two 3x3 (32, 32, 32); 96 projected to 256.
    static func blockA(_ inputs: Int, scale: Float) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, branches: [
            ("branch0", basic(inputs, 32, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 32, kernel: 1)
                basic(32, 32, kernel: 3, padding: 1)
            }),
            ("branch2", Sequential {
                basic(inputs, 32, kernel: 1)
                basic(32, 32, kernel: 3, padding: 1)
                basic(32, 32, kernel: 3, padding: 1)
            }),
        ])
    }

    /// Figure 11 (Block17): 1x1 (128), 1x1, 1x7, 7x1 (128 each); 256 projected to 896.
    static func blockB(_ inputs: Int, scale: Float) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, branches: [
            ("branch0", basic(inputs, 128, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 128, kernel: 1)
                basic(128, 128, kernel: (1, 7), padding: (0, 3))
                basic(128, 128, kernel: (7, 1), padding: (3, 0))
            }),
        ])
    }

    /// Figure 13 (Block8): 1x1 (192), 1x1, 1x3, 3x1 (192 each); 384 projected to 1792.
    static func blockC(_ inputs: Int, scale: Float, relu: Bool = true) throws -> Inception.Module {
        try Inception.residualBlock(inputs, scale: scale, relu: relu, branches: [
            ("branch0", basic(inputs, 192, kernel: 1)),
            ("branch1", Sequential {
                basic(inputs, 192, kernel: 1)
                basic(192, 192, kernel: (1, 3), padding: (0, 1))
                basic(192, 192, kernel: (3, 1), padding: (1, 0))
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
            case let .blockA(name, count, scale): return try Inception.repeated(count) { try blockA(inputs, scale: scale) }.named(name)
            case let .reductionA(name, k, l, m, n): return reductionA(inputs, k: k, l: l, m: m, n: n).named(name)
            case let .blockB(name, count, scale): return try Inception.repeated(count) { try blockB(inputs, scale: scale) }.named(name)
            case let .reductionB(name): return reductionB(inputs).named(name)
            case let .blockC(name, count, scale): return try Inception.repeated(count) { try blockC(inputs, scale: scale) }.named(name)
            case let .finalBlockC(name): return try blockC(inputs, scale: 1, relu: false).named(name)
            }
        }
        let channels = shape[1]
        layers += [
            GlobalAvgPool2D().named("avgpool_1a"),                    // N x 1792
            Dropout(rate: 0.2).named("dropout"),                      // Figure 15: keep 0.8
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: .torchDefault, biasInitializer: .torchDefault).named("logits"),
        ]
        let network = Sequential(layers)
        _ = try network.outputShape(for: [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize])
        return Model(name: "inception-resnet-v1", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .imageNet)
    }
}
