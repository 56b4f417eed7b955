// Sequential: layers applied in order, built with a result builder over `[any Layer]` (no nested generics).
//
//     let net = Sequential {
//         Conv2D(inputChannels: 1, outputChannels: 6, kernelSize: 5)
//         ReLU()
//         MaxPool2D(kernelSize: 2)
//     }

/// A layer with the name it has inside its container (`features`, `classifier`); unnamed layers get their index.
public struct LayerEntry {
    public var name: String?
    public var layer: any Layer
    public init(name: String? = nil, layer: any Layer) {
        self.name = name
        self.layer = layer
    }
}

extension Layer {
    /// This layer under a name of its own inside a `Sequential` (`conv1`, `features`).
    public func named(_ name: String) -> LayerEntry { LayerEntry(name: name, layer: self) }
}

@resultBuilder
public enum LayerBuilder {
    public static func buildExpression(_ layer: any Layer) -> [LayerEntry] { [LayerEntry(name: nil, layer: layer)] }
    public static func buildExpression(_ entry: LayerEntry) -> [LayerEntry] { [entry] }
    public static func buildExpression(_ layers: [any Layer]) -> [LayerEntry] { layers.map { LayerEntry(name: nil, layer: $0) } }
    public static func buildExpression(_ entries: [LayerEntry]) -> [LayerEntry] { entries }
    public static func buildBlock(_ parts: [LayerEntry]...) -> [LayerEntry] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [LayerEntry]?) -> [LayerEntry] { part ?? [] }
    public static func buildEither(first part: [LayerEntry]) -> [LayerEntry] { part }
    public static func buildEither(second part: [LayerEntry]) -> [LayerEntry] { part }
    public static func buildArray(_ parts: [[LayerEntry]]) -> [LayerEntry] { parts.flatMap { $0 } }
}

public final class Sequential: Layer {
    public let kind = "Sequential"
    public let children: [(name: String, layer: any Layer)]
    /// Each child that can take the ReLU after it (a convolution, a fully connected layer, a batch norm), with that ReLU.
    private let fusablePairs: [(producer: any ReLUFusing, relu: ReLU)]
    /// Each convolution followed by a batch norm, which inference may fold into it.
    private let foldablePairs: [(convolution: Conv2D, norm: BatchNorm2D)]
    /// The child whose buffer holds the gradient that `backward` returned last.
    private var gradientHolder: (any Layer)?
    /// Told after each child's backward pass, when the child's parameter gradients are final: data-parallel
    /// training starts averaging them over the ranks while backward goes on (`GradientReducer`).
    package var childBackwardFinished: ((any Layer) -> Void)?

    /// Whether each ReLU is fused into the layer before it (see `ReLU`); on by default. The values computed are the
    /// same either way; off, each ReLU keeps its own output and gradient, and a walk over the layers one at a time
    /// (`Model.featureMaps`) sees each layer's output before its ReLU.
    public var fusesActivations: Bool {
        didSet { applyFusion() }
    }

    /// Whether each batch norm that follows a convolution is folded into it at inference (see `BatchNorm2D`); on by
    /// default. The convolution then scales and shifts its output channels as it writes them (with the bias and the
    /// ReLU, in the same pass) and the batch norm passes its input through. Training never folds. Off, a walk over
    /// the layers one at a time (`Model.featureMaps`) sees each convolution's own output.
    public var foldsBatchNorm: Bool {
        didSet { applyFusion() }
    }

    public convenience init(@LayerBuilder _ build: () -> [LayerEntry]) {
        self.init(build())
    }

    public init(_ entries: [LayerEntry]) {
        children = Sequential.name(entries)
        var fusable: [(producer: any ReLUFusing, relu: ReLU)] = [], foldable: [(convolution: Conv2D, norm: BatchNorm2D)] = []
        for (before, after) in zip(children, children.dropFirst()) {
            if let producer = before.layer as? any ReLUFusing, let relu = after.layer as? ReLU { fusable.append((producer, relu)) }
            if let convolution = before.layer as? Conv2D, let norm = after.layer as? BatchNorm2D { foldable.append((convolution, norm)) }
        }
        (fusablePairs, foldablePairs) = (fusable, foldable)
        fusesActivations = EngineOptions.current.fusesActivations
        foldsBatchNorm = EngineOptions.current.foldsBatchNorm
        applyFusion()
    }

    private func applyFusion() {
        for (producer, relu) in fusablePairs {
            producer.fusesReLU = fusesActivations
            relu.fusion = !fusesActivations ? .none : producer.appliesReLUDerivative ? .full : .forward
        }
        for (convolution, norm) in foldablePairs {
            convolution.foldedNorm = foldsBatchNorm ? norm : nil
            norm.isFolded = foldsBatchNorm
        }
    }

    private static func name(_ entries: [LayerEntry]) -> [(name: String, layer: any Layer)] {
        entries.enumerated().map { index, entry in (name: entry.name ?? String(index), layer: entry.layer) }
    }

    public var layers: [any Layer] { children.map(\.layer) }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        try children.reduce(inputShape) { shape, child in try child.layer.outputShape(for: shape) }
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        var x = input
        for child in children { x = child.layer.forward(x, training: training) }
        return x
    }

    public func backward(_ outputGradient: Tensor) -> Tensor { backward(outputGradient, overwriting: false) }

    /// `overwriting`: whether `outputGradient` is a buffer that the caller does not read again (a `Concat`'s share of
    /// its gradient), which a fused ReLU may then mask in place. A gradient that a child returns is always such a
    /// buffer, unless it is `outputGradient` itself passed through (a `Flatten`).
    ///
    /// Each child's input gradient is given back to the shared pool (`releaseGradients`) as soon as the child before
    /// it has returned a gradient in a buffer of its own; the one returned here is given back by this layer's
    /// `releaseGradients`.
    func backward(_ outputGradient: Tensor, overwriting: Bool) -> Tensor {
        var g = outputGradient
        var holder: (any Layer)? = nil  // the child whose buffer g is; nil while g is the caller's
        for child in children[frozenPrefix...].reversed() {
            let mayOverwrite = overwriting || !g.sharesStorage(with: outputGradient)
            let dx: Tensor
            if let relu = child.layer as? ReLU {
                dx = relu.backward(g, overwriting: mayOverwrite)
            } else if let sequential = child.layer as? Sequential {
                dx = sequential.backward(g, overwriting: mayOverwrite)
            } else {
                dx = child.layer.backward(g)
            }
            childBackwardFinished?(child.layer)
            if !dx.sharesStorage(with: g) {
                holder?.releaseGradients()
                holder = child.layer
            }
            g = dx
        }
        gradientHolder = holder
        return g
    }

    /// The leading children that backward skips: set by `Model.freeze` when they and everything before this
    /// sequence are frozen, so no gradient is needed there. The input gradient returned is then not one.
    var frozenPrefix = 0

    public func releaseGradients() {
        gradientHolder?.releaseGradients()
        gradientHolder = nil
    }

    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        var shape = inputShape
        for (name, layer) in children {
            shape = try layer.summarize(inputShape: shape, path: path.isEmpty ? name : "\(path).\(name)", into: &rows)
        }
        return shape
    }
}
