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

    public init(@LayerBuilder _ build: () -> [LayerEntry]) {
        self.children = Sequential.name(build())
    }

    public init(_ entries: [LayerEntry]) {
        self.children = Sequential.name(entries)
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

    public func backward(_ outputGradient: Tensor) -> Tensor {
        var g = outputGradient
        for child in children.reversed() { g = child.layer.backward(g) }
        return g
    }

    public func summarize(inputShape: [Int], path: String, into rows: inout [SummaryRow]) throws -> [Int] {
        var shape = inputShape
        for (name, layer) in children {
            shape = try layer.summarize(inputShape: shape, path: path.isEmpty ? name : "\(path).\(name)", into: &rows)
        }
        return shape
    }
}
