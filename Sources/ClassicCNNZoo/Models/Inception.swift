// The Inception toolkit: what Inception v2, v3, v4 and both Inception-ResNets share. The basic convolution (in
// torchvision's and in timm's flavour), the module whose parameters are listed flat under the reference code's
// attribute names while its wiring is a tree of branches, the scaled residual block, and the loop that chains a
// model's table of stages, each stage's input channels being the previous one's output shape. The widths live in
// each model's table and builders; channel counts are never kept by hand: they are read off output shapes.
import ClassicCNNEngine

package enum Inception {
    /// How a codebase builds its "basic" convolution: a convolution without bias (`conv`), batch norm with epsilon
    /// 0.001 (`bn`) and ReLU. torchvision's BasicConv2d (Inception v3) draws the weights from N(0, 0.1) and names the
    /// ReLU `relu`; timm's ConvNormAct (Inception-v4, Inception-ResNet-v2) keeps PyTorch's default initialisation and
    /// calls it `act` (it has no parameters, so the name shows only in summaries).
    struct BasicConv: Sendable {
        /// nil: PyTorch's default (`.torchDefault`).
        let standardDeviation: Float?
        let activationName: String

        /// torchvision's BasicConv2d. Weights are N(0, std), torchvision's trunc_normal_(std, a=-2, b=2): with std 0.1
        /// or less the truncation at +-2 is 20 deviations out and never bites.
        static let torchvision = BasicConv(standardDeviation: 0.1, activationName: "relu")
        /// timm's ConvNormAct (the ReLU is inside timm's BatchNormAct2d).
        static let timm = BasicConv(standardDeviation: nil, activationName: "act")

        func callAsFunction(_ inputs: Int, _ outputs: Int, kernel: (Int, Int), stride: Int = 1, padding: (Int, Int) = (0, 0),
                            standardDeviation: Float? = nil) -> any Layer {
            let deviation = standardDeviation ?? self.standardDeviation
            return Sequential {
                Conv2D(inputChannels: inputs, outputChannels: outputs, kernelSize: kernel, stride: (stride, stride),
                       padding: .symmetric(height: padding.0, width: padding.1), bias: false,
                       weightInitializer: deviation.map { .normal(standardDeviation: $0) } ?? .torchDefault).named("conv")
                BatchNorm2D(channels: outputs, epsilon: 0.001).named("bn")
                ReLU().named(activationName)
            }
        }

        func callAsFunction(_ inputs: Int, _ outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            standardDeviation: Float? = nil) -> any Layer {
            self(inputs, outputs, kernel: (kernel, kernel), stride: stride, padding: (padding, padding),
                 standardDeviation: standardDeviation)
        }
    }

    /// A module whose blocks the reference code keeps side by side as attributes and wires in `forward`
    /// (torchvision's `Mixed_7b.branch3x3_1` and `Mixed_7b.branch3x3_2a`; timm's InceptionC `branch1_0`,
    /// `branch1_1a`; an Inception-ResNet block's branches and `conv2d` around a residual sum). `body` is the wiring,
    /// of `Concat`s, `Sequential`s and `Residual`s; `children` lists the same blocks flat under the reference's names,
    /// so that parameter paths are its state_dict keys. Pooling, a function call in the reference's `forward`, is not
    /// a child.
    package final class Module: WiredLayer {
        package let kind = "InceptionModule"
        package let body: any Layer
        package let children: [(name: String, layer: any Layer)]

        /// A module with its blocks named explicitly.
        init(children: [(name: String, layer: any Layer)], body: any Layer) {
            self.children = children
            self.body = body
        }

        /// A module of branches concatenated, whose children are the blocks the wiring reaches (torchvision's
        /// InceptionA to InceptionE): a block is a container of leaves (conv, bn, relu); a leaf directly in the
        /// wiring is a pooling.
        convenience init(@LayerBuilder _ branches: () -> [LayerEntry]) {
            let body = Concat(branches())
            self.init(children: Self.blocks(below: body), body: body)
        }

        private static func blocks(below layer: any Layer) -> [(name: String, layer: any Layer)] {
            layer.children.flatMap { child -> [(name: String, layer: any Layer)] in
                let grandchildren = child.layer.children
                if grandchildren.isEmpty { return [] }
                if grandchildren.allSatisfy({ $0.layer.children.isEmpty }) { return [child] }
                return blocks(below: child.layer)
            }
        }

        package var wiring: any Layer { body }

        package func outputShape(for inputShape: [Int]) throws -> [Int] { try body.outputShape(for: inputShape) }

        /// The body's rows (paths through the wiring: `Mixed_7b.branch2.1.branch3x3_2a.conv`), then its own (the
        /// `Concat` row).
        package func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
            try body.summarize(inputShape: inputShape, path: path, into: &rows)
        }

        package func forward(_ input: Tensor, training: Bool) -> Tensor { body.forward(input, training: training) }
        package func backward(_ outputGradient: Tensor) -> Tensor { body.backward(outputGradient) }
        package func releaseGradients() { body.releaseGradients() }
    }

    /// An Inception-ResNet block: the branches concatenated, projected back to the input's channels by `conv2d` (a
    /// 1x1 with bias and no batch norm), scaled, added to the input, then ReLU (`act`) unless `relu` is false. The
    /// branches and `conv2d` are attributes side by side in the reference code (`repeat.0.branch0`,
    /// `repeat.0.conv2d`), hence `Module`. The projection's input width is the branches' concatenated output.
    static func residualBlock(_ inputs: Int, scale: Float, relu: Bool = true,
                              branches: [(name: String, layer: any Layer)]) throws -> Module {
        let concat = Concat(branches.map { LayerEntry(name: $0.name, layer: $0.layer) })
        // A residual block keeps the grid, so any grid measures its width.
        let concatenated = try concat.outputShape(for: [1, inputs, 9, 9])[1]
        let conv2d = Conv2D(inputChannels: concatenated, outputChannels: inputs, kernelSize: 1,
                            weightInitializer: .torchDefault, biasInitializer: .torchDefault)
        return Module(
            children: branches + [("conv2d", conv2d)],
            body: Sequential {
                Residual(scale: scale) {
                    concat
                    conv2d.named("conv2d")
                }
                if relu { ReLU().named("act") }
            })
    }

    /// `count` blocks one after another, unnamed (`repeat_1.0`, `repeat_1.1`, ...), as the Inception-ResNets repeat
    /// theirs.
    static func repeated(_ count: Int, _ block: () throws -> any Layer) rethrows -> Sequential {
        Sequential(try (0..<count).map { _ in LayerEntry(layer: try block()) })
    }

    /// Builds a table's stages one after another from a batch of one `input` image, each from the previous one's
    /// output channels; returns the layers and the shape that leaves the last.
    static func chain<Stage>(_ stages: [Stage], input: [Int],
                             _ build: (_ stage: Stage, _ inputChannels: Int) throws -> LayerEntry) throws -> (layers: [LayerEntry], shape: [Int]) {
        var shape = input
        var layers: [LayerEntry] = []
        for stage in stages {
            let entry = try build(stage, shape[1])
            shape = try entry.layer.outputShape(for: shape)
            layers.append(entry)
        }
        return (layers, shape)
    }
}
