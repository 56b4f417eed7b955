// Inception v2: Szegedy, Vanhoucke, Ioffe, Shlens and Wojna (2015), "Rethinking the Inception architecture for
// computer vision", Table 1 as data: the factorised stem, 3 x Figure 5 at 35x35, a grid reduction (Figure 10),
// 5 x Figure 6 (n = 7) at 17x17, a grid reduction, 2 x Figure 7 at 8x8, and the auxiliary classifier of Figure 8 on
// the last 17x17 layer. Batch norm (epsilon 0.001) follows every convolution; the auxiliary head's fully connected
// layer has none, that being what Table 3's "BN-auxiliary" row adds to make Inception v3.
//
// The paper gives no filter counts per module: they are torchvision's Inception v3's (`InceptionV3`), whose builders
// and names this file reuses. NOTE: where Table 1 and the released v3 code disagree, this file follows Table 1:
// - Stem: Table 1 has conv 3x3 (80) at 73x73, conv 3x3/2 (192) at 71x71 and conv 3x3 (288, padded) at 35x35; the v3
//   code has a 1x1 (80), a 3x3 (192), a max pooling and no 288-channel convolution (its Mixed_5b takes 192 channels).
// - 17x17: Table 1 has five Figure 6 modules, the v3 code four (channels7x7 128, 160, 160, 192); here 128, 160, 160,
//   160, 192, repeating the middle width.
// - Figure 5 replaces each 5x5 of GoogLeNet's module by two 3x3: its second branch is a 1x1 then a 3x3 (48, 64),
//   where the v3 code keeps a 5x5 (`branch5x5_2`) beside the double 3x3.
// - Table 3 lists "Factorized 7x7" (the first 7x7 convolution factorised into 3x3s) as a change made on top of
//   Inception-v2, yet Table 1's stem is already all 3x3: this file is Table 1's network.
// Where Table 1 has no detail, the v3 code decides: the grid reductions are its Mixed_6a (NOTE: Figure 10 draws a 1x1
// before the single 3x3/2; Mixed_6a has none) and Mixed_7a, and the auxiliary head is its InceptionAux without batch
// norm in the fully connected layer, with GoogLeNet's loss weight 0.3. Table 1 lists no dropout before the logits;
// there is none here. The loss is plain cross entropy: label smoothing is Table 3's later "Label Smoothing" row.
import ClassicCNNEngine

public enum InceptionV2 {
    /// A stage after the stem: Inception v3's (`InceptionV3.Stage`), read as Table 1's rows. `.a` is Figure 5 (with
    /// the 5x5 branch of GoogLeNet's module as a 1x1 then a 3x3, `figure5`); `.b` the grid reduction 35x35 to 17x17
    /// (torchvision's InceptionB, Mixed_6a); `.c` Figure 6 with n = 7 at 17x17 (InceptionC); `.d` the grid
    /// reduction 17x17 to 8x8 (InceptionD, Mixed_7a); `.e` Figure 7 at 8x8 (InceptionE); `.auxiliary` Figure 8,
    /// the auxiliary classifier on the last 17x17 layer.
    public typealias Stage = InceptionV3.Stage

    /// Table 1's rows up to the first Inception module, one line per layer.
    public static let stem: [InceptionV3.StemLayer] = [
        .convolution("Conv2d_1a_3x3", outputs: 32, kernel: 3, stride: 2),   // N x 32 x 149 x 149
        .convolution("Conv2d_2a_3x3", outputs: 32, kernel: 3),              // N x 32 x 147 x 147
        .convolution("Conv2d_2b_3x3", outputs: 64, kernel: 3, padding: 1),  // N x 64 x 147 x 147
        .maxPool("maxpool1"),                                               // N x 64 x 73 x 73
        .convolution("Conv2d_3b_3x3", outputs: 80, kernel: 3),              // N x 80 x 71 x 71
        .convolution("Conv2d_4a_3x3", outputs: 192, kernel: 3, stride: 2),  // N x 192 x 35 x 35
        .convolution("Conv2d_4b_3x3", outputs: 288, kernel: 3, padding: 1), // N x 288 x 35 x 35
    ]

    /// Table 1 from the 35x35 grid on, with the grid reductions as rows of their own; the head (8x8 average pooling,
    /// linear logits) follows.
    public static let table1: [Stage] = [
        .a("Mixed_5b", poolFeatures: 64),   // Figure 5, N x 288 x 35 x 35
        .a("Mixed_5c", poolFeatures: 64),   // Figure 5, N x 288 x 35 x 35
        .a("Mixed_5d", poolFeatures: 64),   // Figure 5, N x 288 x 35 x 35
        .b("Mixed_6a"),                     // reduction, N x 768 x 17 x 17
        .c("Mixed_6b", channels7x7: 128),   // Figure 6, N x 768 x 17 x 17
        .c("Mixed_6c", channels7x7: 160),   // Figure 6, N x 768 x 17 x 17
        .c("Mixed_6d", channels7x7: 160),   // Figure 6, N x 768 x 17 x 17
        .c("Mixed_6e", channels7x7: 160),   // Figure 6, N x 768 x 17 x 17
        .c("Mixed_6f", channels7x7: 192),   // Figure 6, N x 768 x 17 x 17
        .auxiliary("AuxLogits"),            // Figure 8
        .d("Mixed_7a"),                     // reduction, N x 1280 x 8 x 8
        .e("Mixed_7b"),                     // Figure 7, N x 2048 x 8 x 8
        .e("Mixed_7c"),                     // Figure 7, N x 2048 x 8 x 8
    ]

    public static let paper = ModelDescriptor(
        name: "inception-v2", title: "Inception v2 (Table 1): factorised convolutions, batch norm, auxiliary head without BN (weight 0.3)",
        reference: "Szegedy et al. 2015, Rethinking the Inception architecture for computer vision, Table 1; filter counts of torchvision's inception_v3",
        defaultInputSize: 299, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet", build: { try network($0) })

    /// Figure 5 (with v3's widths): the 5x5 branch of GoogLeNet's module is a 1x1 then a 3x3 here.
    static func figure5(_ inputs: Int, poolFeatures: Int) -> Inception.Module {
        Inception.Module {
            InceptionV3.basic(inputs, 64, kernel: 1).named("branch1x1")
            Sequential {
                InceptionV3.basic(inputs, 48, kernel: 1).named("branch3x3_1")
                InceptionV3.basic(48, 64, kernel: 3, padding: 1).named("branch3x3_2")
            }
            Sequential {
                InceptionV3.basic(inputs, 64, kernel: 1).named("branch3x3dbl_1")
                InceptionV3.basic(64, 96, kernel: 3, padding: 1).named("branch3x3dbl_2")
                InceptionV3.basic(96, 96, kernel: 3, padding: 1).named("branch3x3dbl_3")
            }
            Sequential {
                InceptionV3.averagePool()
                InceptionV3.basic(inputs, poolFeatures, kernel: 1).named("branch_pool")
            }
        }
    }

    /// Figure 8 with v3's widths: average pooling 5x5/3 (to 5x5), a 1x1 (128) with batch norm, the fully connected
    /// layer (768, as a 5x5 convolution over the 5x5 grid, with bias and ReLU and no batch norm), and the classifier.
    static func auxiliary(_ inputs: Int, classes: Int) -> AuxiliaryClassifier {
        AuxiliaryClassifier(weight: 0.3) {
            AvgPool2D(kernelSize: 5, stride: 3).named("pool")                    // N x 768 x 5 x 5
            InceptionV3.basic(inputs, 128, kernel: 1).named("conv0")             // N x 128 x 5 x 5
            Sequential {
                Conv2D(inputChannels: 128, outputChannels: 768, kernelSize: 5,
                       weightInitializer: .normal(standardDeviation: 0.01), biasInitializer: .zeros).named("conv")
                ReLU().named("relu")
            }.named("conv1")                                                     // N x 768 x 1 x 1
            GlobalAvgPool2D().named("avgpool")                                   // N x 768
            Linear(inputFeatures: 768, outputFeatures: classes, weightInitializer: .normal(standardDeviation: 0.001),
                   biasInitializer: .torchDefault).named("fc")
        }
    }

    static func network(_ configuration: ModelConfiguration) throws -> Model {
        let input = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        let stemLayers = try Inception.chain(stem, input: input) { layer, inputs in InceptionV3.stemLayer(layer, inputs: inputs) }
        let stages = try Inception.chain(table1, input: stemLayers.shape) { stage, inputs in
            switch stage {
            case let .a(name, poolFeatures): return figure5(inputs, poolFeatures: poolFeatures).named(name)
            case let .auxiliary(name): return auxiliary(inputs, classes: configuration.classes).named(name)
            default: return InceptionV3.stage(stage, inputs: inputs, classes: configuration.classes, loss: SoftmaxCrossEntropy())
            }
        }
        var layers = stemLayers.layers + stages.layers
        let channels = stages.shape[1]
        layers += [
            GlobalAvgPool2D().named("avgpool"),                                  // N x 2048 (Table 1: pool 8x8)
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: .normal(standardDeviation: 0.1), biasInitializer: .torchDefault).named("fc"),
        ]
        let network = Sequential(layers)
        _ = try network.outputShape(for: [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize])
        return Model(name: "inception-v2", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .imageNet)
    }
}
