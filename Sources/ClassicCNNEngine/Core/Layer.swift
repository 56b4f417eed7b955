// The Layer protocol: an explicit forward and backward per layer, in the Torch7 `nn` / Caffe lineage that these
// networks were first built in. `backward` takes the gradient of the loss with respect to the layer's output,
// accumulates the gradients of its parameters and returns the gradient with respect to its input.

/// What one layer costs for one image, as LeCun et al. (1998) count it: `connections` are the input-output links
/// including the bias (C1 of LeNet-5 has 122,304), `multiplyAdds` the products computed (bias excluded).
public struct LayerCost: Equatable, Sendable {
    public var connections: Int
    public var multiplyAdds: Int
    public init(connections: Int = 0, multiplyAdds: Int = 0) {
        self.connections = connections
        self.multiplyAdds = multiplyAdds
    }
}

/// A shape that a layer cannot take, such as an input smaller than a kernel.
public struct ShapeError: Error, CustomStringConvertible {
    public let layer: String
    public let message: String
    public init(layer: String, _ message: String) {
        self.layer = layer
        self.message = message
    }
    public var description: String { "\(layer): \(message)" }
}

/// One row of a model summary.
public struct SummaryRow: Sendable {
    public var name: String
    public var kind: String
    public var outputShape: [Int]
    public var parameters: Int
    public var fixedParameters: Int
    public var cost: LayerCost
}

public protocol Layer: AnyObject {
    /// A short name for the kind of layer, as summaries show it ("Conv2D").
    var kind: String { get }
    /// This layer's own parameters with local names ("weight", "bias"); containers list their children instead.
    var ownParameters: [(name: String, parameter: Parameter)] { get }
    /// Sub-layers with their local names; empty for a leaf.
    var children: [(name: String, layer: any Layer)] { get }

    /// The output shape (batch dimension included) for an input shape, or a `ShapeError`.
    func outputShape(for inputShape: [Int]) throws -> [Int]
    /// Computes the output. `training` switches dropout, batch statistics and auxiliary heads.
    func forward(_ input: Tensor, training: Bool) -> Tensor
    /// Accumulates parameter gradients and returns the input gradient. Valid after a `forward` with `training`.
    func backward(_ outputGradient: Tensor) -> Tensor
    /// Gives the buffer of the input gradient that `backward` returned (and any other gradient buffer still held)
    /// back to the pool that the layers share: called by the container once that gradient has been read.
    func releaseGradients()
    /// Connections and multiply-adds for one image of `inputShape`.
    func cost(inputShape: [Int]) -> LayerCost
    /// Appends this layer's summary rows; containers append one row per descendant. Returns the output shape.
    func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int]
}

extension Layer {
    public var ownParameters: [(name: String, parameter: Parameter)] { [] }
    public var children: [(name: String, layer: any Layer)] { [] }
    public func cost(inputShape: [Int]) -> LayerCost { LayerCost() }
    public func releaseGradients() {}

    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        let output = try outputShape(for: inputShape)
        let parameters = ownParameters.map(\.parameter)
        rows.append(SummaryRow(
            name: path.isEmpty ? kind : path, kind: kind, outputShape: output,
            parameters: parameters.filter(\.trainable).reduce(0) { $0 + $1.count },
            fixedParameters: parameters.filter { !$0.trainable }.reduce(0) { $0 + $1.count },
            cost: cost(inputShape: inputShape)))
        return output
    }

    /// Every parameter below this layer, named by path (`features.0.weight`), in a stable order.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var result = ownParameters
        for (childName, child) in children {
            result += child.namedParameters.map { (name: "\(childName).\($0.name)", parameter: $0.parameter) }
        }
        return result
    }

    /// Every layer below this one (itself included), depth first.
    public var allLayers: [any Layer] { [self] + children.flatMap { $0.layer.allLayers } }

    /// Every layer below this one with its path (`features.3`), depth first; this layer's path is "".
    public var namedLayers: [(path: String, layer: any Layer)] {
        [(path: "", layer: self)] + children.flatMap { name, child in
            child.namedLayers.map { (path: $0.path.isEmpty ? name : "\(name).\($0.path)", layer: $0.layer) }
        }
    }

    /// Inference: `forward(input, training: false)`.
    public func callAsFunction(_ input: Tensor) -> Tensor { forward(input, training: false) }
}

extension Array where Element == Int {
    /// "[32, 6, 28, 28]"-style text with the batch dimension shown as "N" when `batch` is false.
    func shapeText(batch: Bool = true) -> String {
        let dims = batch ? map(String.init) : ["N"] + dropFirst().map(String.init)
        return "[" + dims.joined(separator: ", ") + "]"
    }
}

/// A layer that computes what another layer tree computes, with its parameters listed under other names (the
/// Inception modules, whose `children` are torchvision's and timm's attributes and whose wiring is `body`).
/// Exporters (ONNX) walk `wiring` instead of the layer.
public protocol WiredLayer: Layer {
    var wiring: any Layer { get }
}
