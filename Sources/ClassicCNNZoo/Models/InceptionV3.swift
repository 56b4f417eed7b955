// Inception v3: Szegedy, Vanhoucke, Ioffe, Shlens and Wojna (2015), "Rethinking the Inception architecture for
// computer vision", Table 1 and Figures 5, 6, 7 and 10, as torchvision builds it (torchvision.models.inception_v3,
// aux_logits=True, transform_input=False), with torchvision's module names so that parameter paths are its
// state_dict keys (`Mixed_7b.branch3x3_2a.bn.running_var`). torchvision's layout is the released TensorFlow model's
// (TF-slim's inception_v3, whose weights torchvision ported), which departs from the paper's Table 1 where noted.
import ClassicCNNEngine

public enum InceptionV3 {
    /// A layer of the stem, before the first Inception module.
    public enum StemLayer: Sendable {
        /// BasicConv2d: a convolution without bias, batch norm (epsilon 0.001) and ReLU.
        case convolution(String, outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
        /// 3x3 stride-2 max pooling (floor mode).
        case maxPool(String)
    }

    /// The stem, one line per layer. NOTE: Table 1 has conv 3x3 (80) and conv 3x3/2 (192) at 73x73 and 71x71; the
    /// released model has a 1x1 (80), a 3x3 (192) and a max pooling instead, and torchvision keeps it.
    public static let stem: [StemLayer] = [
        .convolution("Conv2d_1a_3x3", outputs: 32, kernel: 3, stride: 2),  // N x 32 x 149 x 149
        .convolution("Conv2d_2a_3x3", outputs: 32, kernel: 3),             // N x 32 x 147 x 147
        .convolution("Conv2d_2b_3x3", outputs: 64, kernel: 3, padding: 1), // N x 64 x 147 x 147
        .maxPool("maxpool1"),                                              // N x 64 x 73 x 73
        .convolution("Conv2d_3b_1x1", outputs: 80, kernel: 1),             // N x 80 x 73 x 73
        .convolution("Conv2d_4a_3x3", outputs: 192, kernel: 3),            // N x 192 x 71 x 71
        .maxPool("maxpool2"),                                              // N x 192 x 35 x 35
    ]

    /// A stage after the stem: torchvision's InceptionA to InceptionE modules and the auxiliary head.
    public enum Stage: Sendable {
        /// Figure 5 at 35x35 (InceptionA): 1x1 (64), 5x5 (48, 64), double 3x3 (64, 96, 96), average pooling and a 1x1
        /// projection of `poolFeatures`. NOTE: Figure 5 replaces the 5x5 by the double 3x3; the released model has both.
        case a(String, poolFeatures: Int)
        /// Figure 10's grid reduction 35x35 to 17x17 (InceptionB): 3x3/2 (384), double 3x3 (64, 96, 96/2), max pooling.
        case b(String)
        /// Figure 6 with n = 7 at 17x17 (InceptionC): 1x1 (192), 1x7 then 7x1 (c7, c7, 192), double 7x1 and 1x7
        /// (c7, c7, c7, c7, 192), average pooling and a 1x1 (192); `channels7x7` is c7.
        case c(String, channels7x7: Int)
        /// Grid reduction 17x17 to 8x8 (InceptionD): 1x1 then 3x3/2 (192, 320), 1x1, 1x7, 7x1, 3x3/2 (192 each), max
        /// pooling.
        case d(String)
        /// Figure 7 at 8x8 (InceptionE): 1x1 (320), 1x1 (384) split into 1x3 and 3x1 (384 each), 1x1 (448) and 3x3
        /// (384) split likewise, average pooling and a 1x1 (192).
        case e(String)
        /// The auxiliary classifier on the 17x17 grid (InceptionAux).
        case auxiliary(String)

    }

    /// Table 1 from the 35x35 grid on (3 x Figure 5, 5 x Figure 6, 2 x Figure 7), with the grid reductions of section 6
    /// as rows of their own (Mixed_6a, Mixed_7a): the released model has four Figure 6 modules after Mixed_6a. The head
    /// (global average pooling, dropout 0.5, linear) follows.
    public static let table1: [Stage] = [
        .a("Mixed_5b", poolFeatures: 32),   // N x 256 x 35 x 35
        .a("Mixed_5c", poolFeatures: 64),   // N x 288 x 35 x 35
        .a("Mixed_5d", poolFeatures: 64),   // N x 288 x 35 x 35
        .b("Mixed_6a"),                     // N x 768 x 17 x 17
        .c("Mixed_6b", channels7x7: 128),   // N x 768 x 17 x 17
        .c("Mixed_6c", channels7x7: 160),   // N x 768 x 17 x 17
        .c("Mixed_6d", channels7x7: 160),   // N x 768 x 17 x 17
        .c("Mixed_6e", channels7x7: 192),   // N x 768 x 17 x 17
        .auxiliary("AuxLogits"),
        .d("Mixed_7a"),                     // N x 1280 x 8 x 8
        .e("Mixed_7b"),                     // N x 2048 x 8 x 8
        .e("Mixed_7c"),                     // N x 2048 x 8 x 8
    ]

    public static let torchvision = ModelDescriptor(
        name: "inception-v3", title: "Inception v3 as torchvision builds it: factorised convolutions, batch norm, auxiliary head (weight 0.4)",
        reference: "Szegedy et al. 2015, Rethinking the Inception architecture for computer vision; torchvision.models.inception_v3",
        defaultInputSize: 299, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet", build: { try network($0) })

    /// torchvision's BasicConv2d (`Inception.BasicConv.torchvision`).
    static let basic = Inception.BasicConv.torchvision

    /// torchvision's `F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)`: padded zeros count in the mean.
    static func averagePool() -> any Layer { AvgPool2D(kernelSize: 3, stride: 1, padding: .uniform(1), countIncludesPadding: true) }

    /// InceptionA (Figure 5, with the 5x5 branch kept).
    static func inceptionA(_ inputs: Int, poolFeatures: Int) -> Inception.Module {
        Inception.Module {
            basic(inputs, 64, kernel: 1).named("branch1x1")
            Sequential {
                basic(inputs, 48, kernel: 1).named("branch5x5_1")
                basic(48, 64, kernel: 5, padding: 2).named("branch5x5_2")
            }
            Sequential {
                basic(inputs, 64, kernel: 1).named("branch3x3dbl_1")
                basic(64, 96, kernel: 3, padding: 1).named("branch3x3dbl_2")
                basic(96, 96, kernel: 3, padding: 1).named("branch3x3dbl_3")
            }
            Sequential {
                averagePool()
                basic(inputs, poolFeatures, kernel: 1).named("branch_pool")
            }
        }
    }

    /// InceptionB (Figure 10): 35x35 to 17x17.
    static func inceptionB(_ inputs: Int) -> Inception.Module {
        Inception.Module {
            basic(inputs, 384, kernel: 3, stride: 2).named("branch3x3")
            Sequential {
                basic(inputs, 64, kernel: 1).named("branch3x3dbl_1")
                basic(64, 96, kernel: 3, padding: 1).named("branch3x3dbl_2")
                basic(96, 96, kernel: 3, stride: 2).named("branch3x3dbl_3")
            }
            MaxPool2D(kernelSize: 3, stride: 2)
        }
    }

    /// InceptionC (Figure 6, n = 7): each 7x7 factorised into 1x7 and 7x1.
    static func inceptionC(_ inputs: Int, channels7x7 c7: Int) -> Inception.Module {
        Inception.Module {
            basic(inputs, 192, kernel: 1).named("branch1x1")
            Sequential {
                basic(inputs, c7, kernel: 1).named("branch7x7_1")
                basic(c7, c7, kernel: (1, 7), padding: (0, 3)).named("branch7x7_2")
                basic(c7, 192, kernel: (7, 1), padding: (3, 0)).named("branch7x7_3")
            }
            Sequential {
                basic(inputs, c7, kernel: 1).named("branch7x7dbl_1")
                basic(c7, c7, kernel: (7, 1), padding: (3, 0)).named("branch7x7dbl_2")
                basic(c7, c7, kernel: (1, 7), padding: (0, 3)).named("branch7x7dbl_3")
                basic(c7, c7, kernel: (7, 1), padding: (3, 0)).named("branch7x7dbl_4")
                basic(c7, 192, kernel: (1, 7), padding: (0, 3)).named("branch7x7dbl_5")
            }
            Sequential {
                averagePool()
                basic(inputs, 192, kernel: 1).named("branch_pool")
            }
        }
    }

    /// InceptionD: 17x17 to 8x8.
    static func inceptionD(_ inputs: Int) -> Inception.Module {
        Inception.Module {
            Sequential {
                basic(inputs, 192, kernel: 1).named("branch3x3_1")
                basic(192, 320, kernel: 3, stride: 2).named("branch3x3_2")
            }
            Sequential {
                basic(inputs, 192, kernel: 1).named("branch7x7x3_1")
                basic(192, 192, kernel: (1, 7), padding: (0, 3)).named("branch7x7x3_2")
                basic(192, 192, kernel: (7, 1), padding: (3, 0)).named("branch7x7x3_3")
                basic(192, 192, kernel: 3, stride: 2).named("branch7x7x3_4")
            }
            MaxPool2D(kernelSize: 3, stride: 2)
        }
    }

    /// InceptionE (Figure 7): the 3x3s split into 1x3 and 3x1 side by side, concatenated inside their branch.
    static func inceptionE(_ inputs: Int) -> Inception.Module {
        Inception.Module {
            basic(inputs, 320, kernel: 1).named("branch1x1")
            Sequential {
                basic(inputs, 384, kernel: 1).named("branch3x3_1")
                Concat {
                    basic(384, 384, kernel: (1, 3), padding: (0, 1)).named("branch3x3_2a")
                    basic(384, 384, kernel: (3, 1), padding: (1, 0)).named("branch3x3_2b")
                }
            }
            Sequential {
                basic(inputs, 448, kernel: 1).named("branch3x3dbl_1")
                basic(448, 384, kernel: 3, padding: 1).named("branch3x3dbl_2")
                Concat {
                    basic(384, 384, kernel: (1, 3), padding: (0, 1)).named("branch3x3dbl_3a")
                    basic(384, 384, kernel: (3, 1), padding: (1, 0)).named("branch3x3dbl_3b")
                }
            }
            Sequential {
                averagePool()
                basic(inputs, 192, kernel: 1).named("branch_pool")
            }
        }
    }

    /// InceptionAux on the 17x17 grid: average pooling 5x5/3 (to 5x5), a 1x1 (128), a 5x5 (768, to 1x1), global
    /// average pooling and the classifier.
    ///
    /// Its loss weight is 0.4, as in TF-slim's train_image_classifier.py, which trained the released model (with label
    /// smoothing 0.1 on both heads), and in PyTorch's fine-tuning tutorial (`loss1 + 0.4 * loss2`); torchvision's own
    /// reference training script has no auxiliary loss, its Inception v3 weights being ported from TensorFlow.
    static func auxiliary(_ inputs: Int, classes: Int, loss: any ClassificationLoss) -> AuxiliaryClassifier {
        AuxiliaryClassifier(weight: 0.4, loss: loss) {
            AvgPool2D(kernelSize: 5, stride: 3).named("pool")                    // N x 768 x 5 x 5
            basic(inputs, 128, kernel: 1).named("conv0")                          // N x 128 x 5 x 5
            // NOTE: torchvision sets `stddev = 0.01` on this BasicConv2d, but its init loop reads `stddev` only from
            // the nn.Conv2d inside, so torchvision in fact draws this convolution with 0.1. Here the declared 0.01.
            basic(128, 768, kernel: 5, standardDeviation: 0.01).named("conv1")   // N x 768 x 1 x 1
            GlobalAvgPool2D().named("avgpool")                                    // N x 768
            Linear(inputFeatures: 768, outputFeatures: classes, weightInitializer: .normal(standardDeviation: 0.001),
                   biasInitializer: .torchDefault).named("fc")
        }
    }

    /// A stem row as a layer (Inception v2's stem too).
    static func stemLayer(_ layer: StemLayer, inputs: Int) -> LayerEntry {
        switch layer {
        case let .convolution(name, outputs, kernel, stride, padding):
            return basic(inputs, outputs, kernel: kernel, stride: stride, padding: padding).named(name)
        case let .maxPool(name):
            return MaxPool2D(kernelSize: 3, stride: 2).named(name)
        }
    }

    static func stage(_ stage: Stage, inputs: Int, classes: Int, loss: any ClassificationLoss) -> LayerEntry {
        switch stage {
        case let .a(name, poolFeatures): return inceptionA(inputs, poolFeatures: poolFeatures).named(name)
        case let .b(name): return inceptionB(inputs).named(name)
        case let .c(name, channels7x7): return inceptionC(inputs, channels7x7: channels7x7).named(name)
        case let .d(name): return inceptionD(inputs).named(name)
        case let .e(name): return inceptionE(inputs).named(name)
        case let .auxiliary(name): return auxiliary(inputs, classes: classes, loss: loss).named(name)
        }
    }

    static func network(_ configuration: ModelConfiguration) throws -> Model {
        // Section 7: label smoothing with epsilon 0.1, on the auxiliary head too.
        let loss = SoftmaxCrossEntropy(labelSmoothing: 0.1)
        let input = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        let stemLayers = try Inception.chain(stem, input: input) { layer, inputs in stemLayer(layer, inputs: inputs) }
        let stages = try Inception.chain(table1, input: stemLayers.shape) { stage, inputs in
            self.stage(stage, inputs: inputs, classes: configuration.classes, loss: loss)
        }
        var layers = stemLayers.layers + stages.layers
        let channels = stages.shape[1]
        layers += [
            GlobalAvgPool2D().named("avgpool"),                                   // N x 2048
            Dropout(rate: 0.5).named("dropout"),
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: .normal(standardDeviation: 0.1), biasInitializer: .torchDefault).named("fc"),
        ]
        let network = Sequential(layers)
        _ = try network.outputShape(for: [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize])
        return Model(name: "inception-v3", configuration: configuration, network: network, loss: loss, inputFormat: .imageNet)
    }
}
