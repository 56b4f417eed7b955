// Inception-v4: Szegedy, Ioffe, Vanhoucke and Alemi (2016), "Inception-v4, Inception-ResNet and the impact of
// residual connections on learning", Figures 3 to 9, as timm builds it (timm.models.inception_v4, itself Cadene's
// port of the released TF-slim model), with timm's module names so that parameter paths are its state_dict keys
// (`features.21.branch2_3a.bn.running_var`, `last_linear.weight`). Every convolution is timm's ConvNormAct: a
// convolution without bias (`conv`), batch norm with epsilon 0.001 and ReLU (`bn`, timm's BatchNormAct2d).
import ClassicCNNEngine

public enum InceptionV4 {
    /// A stage of Figure 9, in timm's `features` order: the stage's index there is its name (`features.6`).
    public enum Stage: Sendable {
        /// A stem convolution (Figure 3's first three rows).
        case convolution(outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
        /// Figure 3: 3x3/2 max pooling beside a 3x3/2 convolution (96), 147x147 to 73x73.
        case mixed3a
        /// Figure 3: 1x1 (64) then 3x3 (96), beside 1x1 (64), 7x1, 1x7 (64 each) and 3x3 (96).
        case mixed4a
        /// Figure 3: a 3x3/2 convolution (192) beside 3x3/2 max pooling, 71x71 to 35x35.
        case mixed5a
        /// Figure 4 at 35x35: average pooling then 1x1 (96), 1x1 (96), 1x1 (64) then 3x3 (96), 1x1 (64) then two
        /// 3x3 (96).
        case inceptionA
        /// Figure 7 with k, l, m, n = 192, 224, 256, 384: 35x35 to 17x17.
        case reductionA
        /// Figure 5 at 17x17: average pooling then 1x1 (128), 1x1 (384), 1x1, 1x7, 7x1 (192, 224, 256), 1x1, 1x7, 7x1,
        /// 1x7, 7x1 (192, 192, 224, 224, 256).
        case inceptionB
        /// Figure 8: 17x17 to 8x8.
        case reductionB
        /// Figure 6 at 8x8: average pooling then 1x1 (256), 1x1 (256), 1x1 (384) split into 1x3 and 3x1 (256 each),
        /// 1x1, 1x3, 3x1 (384, 448, 512) split likewise.
        case inceptionC

    }

    /// Figure 9 (with Figure 3's stem spelled out): `features.0` to `features.21`. The head (global average pooling,
    /// dropout, linear) follows.
    public static let figure9: [Stage] =
        [
            .convolution(outputs: 32, kernel: 3, stride: 2),  // N x 32 x 149 x 149
            .convolution(outputs: 32, kernel: 3),             // N x 32 x 147 x 147
            .convolution(outputs: 64, kernel: 3, padding: 1), // N x 64 x 147 x 147
            .mixed3a,                                         // N x 160 x 73 x 73
            .mixed4a,                                         // N x 192 x 71 x 71
            .mixed5a,                                         // N x 384 x 35 x 35
        ]
        + Array(repeating: Stage.inceptionA, count: 4)             // N x 384 x 35 x 35
        + [.reductionA]                                       // N x 1024 x 17 x 17
        + Array(repeating: Stage.inceptionB, count: 7)             // N x 1024 x 17 x 17
        + [.reductionB]                                       // N x 1536 x 8 x 8
        + Array(repeating: Stage.inceptionC, count: 3)             // N x 1536 x 8 x 8

    public static let timm = ModelDescriptor(
        name: "inception-v4", title: "Inception-v4 as timm builds it: pure Inception blocks, batch norm, 1536 features",
        reference: "Szegedy et al. 2016, Inception-v4, Inception-ResNet and the impact of residual connections on learning; timm inception_v4",
        defaultInputSize: 299, defaultClasses: 1000, inputChannels: 3, defaultDataset: "imagenet", build: { try network($0) })

    /// timm's ConvNormAct (`Inception.BasicConv.timm`). Weights are PyTorch's default, timm's inception_v4 having no
    /// initialisation of its own.
    static let basic = Inception.BasicConv.timm

    /// timm's `nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)`: padded zeros do not count in the mean.
    /// NOTE: the released TF model pools with SAME padding, which excludes them too; torchvision's Inception v3 counts them.
    static func averagePool() -> any Layer { AvgPool2D(kernelSize: 3, stride: 1, padding: .uniform(1), countIncludesPadding: false) }

    static func maxPool() -> any Layer { MaxPool2D(kernelSize: 3, stride: 2) }

    static func mixed3a(_ inputs: Int) -> Concat {
        Concat {
            maxPool().named("maxpool")
            basic(inputs, 96, kernel: 3, stride: 2).named("conv")
        }
    }

    static func mixed4a(_ inputs: Int) -> Concat {
        Concat {
            Sequential {
                basic(inputs, 64, kernel: 1)
                basic(64, 96, kernel: 3)
            }.named("branch0")
            Sequential {
                basic(inputs, 64, kernel: 1)
                basic(64, 64, kernel: (1, 7), padding: (0, 3))
                basic(64, 64, kernel: (7, 1), padding: (3, 0))
                basic(64, 96, kernel: 3)
            }.named("branch1")
        }
    }

    static func mixed5a(_ inputs: Int) -> Concat {
        Concat {
            basic(inputs, 192, kernel: 3, stride: 2).named("conv")
            maxPool().named("maxpool")
        }
    }

    /// Figure 4.
    static func inceptionA(_ inputs: Int) -> Concat {
        Concat {
            basic(inputs, 96, kernel: 1).named("branch0")
            Sequential {
                basic(inputs, 64, kernel: 1)
                basic(64, 96, kernel: 3, padding: 1)
            }.named("branch1")
            Sequential {
                basic(inputs, 64, kernel: 1)
                basic(64, 96, kernel: 3, padding: 1)
                basic(96, 96, kernel: 3, padding: 1)
            }.named("branch2")
            Sequential {
                averagePool()
                basic(inputs, 96, kernel: 1)
            }.named("branch3")
        }
    }

    /// Figure 7, the 35x35 to 17x17 reduction all three networks of the paper share, with its filter counts k, l, m, n
    /// (Table 1: 192, 224, 256, 384 here; 192, 192, 256, 384 in Inception-ResNet-v1; 256, 256, 384, 384 in v2).
    static func reductionA(_ inputs: Int, k: Int = 192, l: Int = 224, m: Int = 256, n: Int = 384) -> Concat {
        Concat {
            basic(inputs, n, kernel: 3, stride: 2).named("branch0")
            Sequential {
                basic(inputs, k, kernel: 1)
                basic(k, l, kernel: 3, padding: 1)
                basic(l, m, kernel: 3, stride: 2)
            }.named("branch1")
            maxPool().named("branch2")
        }
    }

    /// Figure 5. NOTE: the figure draws the double 7x7 branch as 1x7, 7x1, 1x7, 7x1; the released model (and timm)
    /// starts it with 7x1.
    static func inceptionB(_ inputs: Int) -> Concat {
        Concat {
            basic(inputs, 384, kernel: 1).named("branch0")
            Sequential {
                basic(inputs, 192, kernel: 1)
                basic(192, 224, kernel: (1, 7), padding: (0, 3))
                basic(224, 256, kernel: (7, 1), padding: (3, 0))
            }.named("branch1")
            Sequential {
                basic(inputs, 192, kernel: 1)
                basic(192, 192, kernel: (7, 1), padding: (3, 0))
                basic(192, 224, kernel: (1, 7), padding: (0, 3))
                basic(224, 224, kernel: (7, 1), padding: (3, 0))
                basic(224, 256, kernel: (1, 7), padding: (0, 3))
            }.named("branch2")
            Sequential {
                averagePool()
                basic(inputs, 128, kernel: 1)
            }.named("branch3")
        }
    }

    /// Figure 8.
    static func reductionB(_ inputs: Int) -> Concat {
        Concat {
            Sequential {
                basic(inputs, 192, kernel: 1)
                basic(192, 192, kernel: 3, stride: 2)
            }.named("branch0")
            Sequential {
                basic(inputs, 256, kernel: 1)
                basic(256, 256, kernel: (1, 7), padding: (0, 3))
                basic(256, 320, kernel: (7, 1), padding: (3, 0))
                basic(320, 320, kernel: 3, stride: 2)
            }.named("branch1")
            maxPool().named("branch2")
        }
    }

    /// Figure 6: the split 1x3 and 3x1 convolutions are attributes of the module in timm (`branch1_1a`), wired in its
    /// `forward`, so this one stage needs `Inception.Module`.
    static func inceptionC(_ inputs: Int) -> Inception.Module {
        let branch0 = basic(inputs, 256, kernel: 1)
        let branch1_0 = basic(inputs, 384, kernel: 1)
        let branch1_1a = basic(384, 256, kernel: (1, 3), padding: (0, 1))
        let branch1_1b = basic(384, 256, kernel: (3, 1), padding: (1, 0))
        let branch2_0 = basic(inputs, 384, kernel: 1)
        let branch2_1 = basic(384, 448, kernel: (3, 1), padding: (1, 0))
        let branch2_2 = basic(448, 512, kernel: (1, 3), padding: (0, 1))
        let branch2_3a = basic(512, 256, kernel: (1, 3), padding: (0, 1))
        let branch2_3b = basic(512, 256, kernel: (3, 1), padding: (1, 0))
        let branch3 = Sequential {
            averagePool()
            basic(inputs, 256, kernel: 1)
        }
        return Inception.Module(
            children: [("branch0", branch0), ("branch1_0", branch1_0), ("branch1_1a", branch1_1a), ("branch1_1b", branch1_1b),
                       ("branch2_0", branch2_0), ("branch2_1", branch2_1), ("branch2_2", branch2_2),
                       ("branch2_3a", branch2_3a), ("branch2_3b", branch2_3b), ("branch3", branch3)],
            body: Concat {
                branch0.named("branch0")
                Sequential {
                    branch1_0.named("branch1_0")
                    Concat {
                        branch1_1a.named("branch1_1a")
                        branch1_1b.named("branch1_1b")
                    }
                }.named("branch1")
                Sequential {
                    branch2_0.named("branch2_0")
                    branch2_1.named("branch2_1")
                    branch2_2.named("branch2_2")
                    Concat {
                        branch2_3a.named("branch2_3a")
                        branch2_3b.named("branch2_3b")
                    }
                }.named("branch2")
                branch3.named("branch3")
            })
    }

    static func stage(_ stage: Stage, inputs: Int) -> any Layer {
        switch stage {
        case let .convolution(outputs, kernel, stride, padding):
            return basic(inputs, outputs, kernel: kernel, stride: stride, padding: padding)
        case .mixed3a: return mixed3a(inputs)
        case .mixed4a: return mixed4a(inputs)
        case .mixed5a: return mixed5a(inputs)
        case .inceptionA: return inceptionA(inputs)
        case .reductionA: return reductionA(inputs)
        case .inceptionB: return inceptionB(inputs)
        case .reductionB: return reductionB(inputs)
        case .inceptionC: return inceptionC(inputs)
        }
    }

    static func network(_ configuration: ModelConfiguration) throws -> Model {
        let input = [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize]
        let (features, shape) = try Inception.chain(figure9, input: input) { stage, inputs in
            LayerEntry(layer: self.stage(stage, inputs: inputs))
        }
        let channels = shape[1]
        let network = Sequential {
            Sequential(features).named("features")
            GlobalAvgPool2D().named("global_pool")                      // N x 1536
            // Figure 9: dropout keeping 0.8. NOTE: timm's drop_rate defaults to 0.
            Dropout(rate: 0.2).named("head_drop")
            Linear(inputFeatures: channels, outputFeatures: configuration.classes,
                   weightInitializer: .torchDefault, biasInitializer: .torchDefault).named("last_linear")
        }
        _ = try network.outputShape(for: [1, configuration.inputChannels, configuration.inputSize, configuration.inputSize])
        return Model(name: "inception-v4", configuration: configuration, network: network, loss: SoftmaxCrossEntropy(),
                     inputFormat: .imageNet)
    }
}
