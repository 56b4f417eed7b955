// Concatenation of parallel branches along the channels: the Inception module (Szegedy et al. 2015, "Going deeper
// with convolutions", figure 2(b)) and its descendants in Inception v3, v4 and Inception-ResNet.
//
//     Concat {
//         Conv2D(inputChannels: 192, outputChannels: 64, kernelSize: 1)                       // branch1
//         Sequential {                                                                       // branch2
//             Conv2D(inputChannels: 192, outputChannels: 96, kernelSize: 1)
//             ReLU()
//             Conv2D(inputChannels: 96, outputChannels: 128, kernelSize: 3, padding: .uniform(1))
//         }
//         MaxPool2D(kernelSize: 3, stride: 1, padding: .uniform(1)).named("pool")             // pool
//     }
//
// Legend: N batch, C_i the channels of branch i, C = sum C_i, R = the elements per channel (H * W for images).
import CNNKernels

/// Feeds the same input to every branch and concatenates their outputs along dimension 1 (channels, in NCHW).
/// The branches must agree on every other dimension. Backward splits the output gradient by channels and sums the
/// branches' input gradients.
///
/// Branches are named `branch1`, `branch2`, ... in order (torchvision's GoogLeNet and Inception v3 names), unless
/// given a name with `.named(_:)`.
public final class Concat: Layer {
    public let kind = "Concat"
    public let children: [(name: String, layer: any Layer)]
    private var inputShape: [Int] = []
    /// C_i of each branch in the last forward.
    private var branchChannels: [Int] = []
    private var output: Tensor?, inputGradient: Tensor?
    private var branchGradients: [Tensor?] = []

    public init(@LayerBuilder _ build: () -> [LayerEntry]) {
        self.children = Concat.name(build())
    }

    public init(_ entries: [LayerEntry]) {
        self.children = Concat.name(entries)
    }

    private static func name(_ entries: [LayerEntry]) -> [(name: String, layer: any Layer)] {
        precondition(!entries.isEmpty, "Concat needs at least one branch")
        return entries.enumerated().map { index, entry in (name: entry.name ?? "branch\(index + 1)", layer: entry.layer) }
    }

    public var branches: [any Layer] { children.map(\.layer) }

    /// The concatenation of the branches' output shapes, or a `ShapeError` naming the branch that disagrees.
    private func concatenated(_ shapes: [[Int]]) throws -> [Int] {
        guard let first = shapes.first, first.count >= 2 else {
            throw ShapeError(layer: kind, "branch outputs need a channel dimension, got \(shapes.first?.shapeText() ?? "none")")
        }
        for (shape, child) in zip(shapes, children) where shape.count != first.count || shape[0] != first[0] || shape[2...] != first[2...] {
            throw ShapeError(layer: kind, "\(child.name) gives \(shape.shapeText()), but \(children[0].name) gives \(first.shapeText()): only channels may differ")
        }
        var result = first
        result[1] = shapes.reduce(0) { $0 + $1[1] }
        return result
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        try concatenated(children.map { try $0.layer.outputShape(for: inputShape) })
    }

    /// One row per layer of each branch (paths `branch1.0`, ...), then this layer's own row with the concatenated shape.
    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        var shapes: [[Int]] = []
        for (name, layer) in children {
            shapes.append(try layer.summarize(inputShape: inputShape, path: path.isEmpty ? name : "\(path).\(name)", into: &rows))
        }
        let output = try concatenated(shapes)
        rows.append(SummaryRow(name: path.isEmpty ? kind : path, kind: kind, outputShape: output, parameters: 0,
                               fixedParameters: 0, cost: LayerCost()))
        return output
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        inputShape = input.shape
        let outputs = children.map { $0.layer.forward(input, training: training) }
        let shape = try! concatenated(outputs.map(\.shape))
        branchChannels = outputs.map { $0.shape[1] }
        let y = Tensor.reuse(&output, shape: shape)
        let (n, c) = (shape[0], shape[1])
        let r = shape.dropFirst(2).reduce(1, *)
        let out = y.data
        var offset = 0
        for branch in outputs {
            let ci = branch.shape[1], source = branch.data
            for image in 0..<n {
                (out + (image * c + offset) * r).update(from: source + image * ci * r, count: ci * r)
            }
            offset += ci
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        let (n, c) = (outputGradient.shape[0], outputGradient.shape[1])
        let r = outputGradient.shape.dropFirst(2).reduce(1, *)
        if branchGradients.count != children.count { branchGradients = Array(repeating: nil, count: children.count) }
        let dx = Tensor.reuseGradient(&inputGradient, shape: inputShape)
        let dy = outputGradient.data
        var offset = 0
        for (index, child) in children.enumerated() {
            let ci = branchChannels[index]
            var shape = outputGradient.shape
            shape[1] = ci
            let g = Tensor.reuseGradient(&branchGradients[index], shape: shape)
            for image in 0..<n {
                (g.data + image * ci * r).update(from: dy + (image * c + offset) * r, count: ci * r)
            }
            offset += ci
            // g is this layer's own copy, read by nobody after the branch: a fused ReLU may mask it in place.
            let branchInputGradient = (child.layer as? Sequential)?.backward(g, overwriting: true) ?? child.layer.backward(g)
            if index == 0 {
                dx.assign(from: branchInputGradient)
            } else {
                cnn_add(dx.data, branchInputGradient.data, dx.count)
            }
            // Both read: the branch's share and the branch's own gradients go back to the pool for the next branch.
            Tensor.releaseGradient(&branchGradients[index])
            child.layer.releaseGradients()
        }
        return dx
    }

    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
}
