// ONNX export: a model's inference graph as an ONNX file (opset 17), for ONNX Runtime and the tools around it.
//
// The layer tree is walked by layer type, never by model: each kind of layer maps to standard ONNX operators, and a
// container maps its children. The input is `input` [N, C, S, S] and the output `output` [N, classes], with the batch
// dimension symbolic ("N"); every other size is fixed at the model's input size (adaptive pooling, adapted windows).
// What exists only in training is left out: auxiliary heads and dropout.
//
// The protobuf types (`Onnx_*`) are generated from onnx.proto by Scripts/generate_onnx_proto.sh and stay internal.
import Foundation
import SwiftProtobuf
import ClassicCNNEngine

/// Why a model could not be exported or its file not written.
public struct ONNXExportError: Error, CustomStringConvertible {
    /// The file being written, or "" when the model itself cannot be expressed.
    public let path: String
    public let reason: String
    public init(path: String = "", _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

public enum ONNXExport {
    /// The operator set the graphs use.
    public static let opsetVersion: Int64 = 17
    /// The IR version that goes with opset 17.
    static let irVersion: Int64 = 8

    /// The serialized ONNX model of `model`'s inference graph.
    public static func serialize(_ model: Model) throws -> Data {
        try graph(of: model).serializedData()
    }

    /// Writes `model` as an ONNX file, atomically: to `"<path>.tmp-<pid>"` in the same folder, flushed, then renamed.
    /// Errors name `path`.
    public static func write(_ model: Model, to path: String) throws {
        let bytes: Data
        do { bytes = try serialize(model) } catch let error as ONNXExportError {
            throw ONNXExportError(path: path, error.reason)
        }
        try writeAtomically(bytes, to: path)
    }

    /// What the exported graph holds, for tests that check it without the protobuf types: the opset, the input's
    /// dimensions (a symbolic one by its name), the output's (0 for a symbolic one), the initializers' names and the
    /// nodes' operator types.
    package struct GraphSummary {
        package let opset: Int64
        package let inputDimensions: [String]
        package let outputDimensions: [Int64]
        package let initializers: [String]
        package let operators: [String]
    }

    package static func summary(of model: Model) throws -> GraphSummary {
        let proto = try graph(of: model)
        let input = proto.graph.input.first?.type.tensorType.shape.dim ?? []
        return GraphSummary(
            opset: proto.opsetImport.first?.version ?? 0,
            inputDimensions: input.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam },
            outputDimensions: proto.graph.output.first?.type.tensorType.shape.dim.map { $0.dimValue } ?? [],
            initializers: proto.graph.initializer.map(\.name), operators: proto.graph.node.map(\.opType))
    }

    /// The ONNX model proto: one graph from `input` to `output`, the parameters as initializers.
    static func graph(of model: Model) throws -> Onnx_ModelProto {
        var builder = GraphBuilder()
        let inputShape = [1] + model.inputShape
        let (last, shape) = try builder.emit(model.network, path: "", input: "input", shape: inputShape)
        builder.node("Identity", [last], output: "output")

        var graph = Onnx_GraphProto()
        graph.name = model.name
        graph.node = builder.nodes
        graph.initializer = builder.initializers
        graph.input = [valueInfo("input", dimensions: inputShape.dropFirst().map { Int64($0) })]
        graph.output = [valueInfo("output", dimensions: shape.dropFirst().map { Int64($0) })]

        var proto = Onnx_ModelProto()
        proto.irVersion = irVersion
        proto.producerName = "ClassicCNN"
        proto.graph = graph
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = opsetVersion
        proto.opsetImport = [opset]
        var architecture = Onnx_StringStringEntryProto()
        architecture.key = "model"
        architecture.value = model.name
        proto.metadataProps = [architecture]
        return proto
    }

    /// A float tensor [N, dimensions...] with the batch dimension named "N".
    private static func valueInfo(_ name: String, dimensions: [Int64]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "N"
        shape.dim = [batch] + dimensions.map { size in
            var dimension = Onnx_TensorShapeProto.Dimension()
            dimension.dimValue = size
            return dimension
        }
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }

    private static func writeAtomically(_ bytes: Data, to path: String) throws {
        let tempPath = SafeTensors.temporaryPath(for: path)
        func fail(_ reason: String) -> ONNXExportError { ONNXExportError(path: path, reason) }
        func describeErrno() -> String { String(cString: strerror(errno)) }
        let fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temp file \(tempPath): \(describeErrno())") }
        var isOpen = true
        do {
            try bytes.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
                guard var pointer = buffer.baseAddress else { return }
                var remaining = buffer.count
                while remaining > 0 {
                    let written = posixWrite(fd, pointer, min(remaining, 1 << 30))
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw fail("write failed: \(written < 0 ? describeErrno() : "no bytes written")") }
                    pointer += written
                    remaining -= written
                }
            }
            guard fsync(fd) == 0 else { throw fail("cannot flush \(tempPath) to disk: \(describeErrno())") }
            isOpen = false
            guard close(fd) == 0 else { throw fail("cannot close \(tempPath): \(describeErrno())") }
            guard rename(tempPath, path) == 0 else { throw fail("cannot rename \(tempPath) to \(path): \(describeErrno())") }
        } catch {
            if isOpen { close(fd) }
            unlink(tempPath)
            throw error
        }
    }
}


/// Collects nodes and initializers while the layer tree is walked. Shapes are tracked for a batch of one.
struct GraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var usedNames: Set<String> = ["input", "output"]

    /// A fresh value name based on `base` (a layer path).
    mutating func name(_ base: String) -> String {
        let stem = base.isEmpty ? "value" : base
        var candidate = stem, index = 1
        while usedNames.contains(candidate) {
            candidate = "\(stem)_\(index)"
            index += 1
        }
        usedNames.insert(candidate)
        return candidate
    }

    /// Adds a node and returns its output's name (a fresh one from `output`).
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], output: String, attributes: [Onnx_AttributeProto] = []) -> String {
        let result = output == "output" ? output : name(output)
        var node = Onnx_NodeProto()
        node.opType = op
        node.name = name("\(result)/\(op)")
        node.input = inputs
        node.output = [result]
        node.attribute = attributes
        nodes.append(node)
        return result
    }

    /// Adds a float initializer and returns its name.
    mutating func constant(_ base: String, shape: [Int], values: [Float]) -> String {
        precondition(shape.reduce(1, *) == values.count)
        var tensor = Onnx_TensorProto()
        tensor.name = name(base)
        tensor.dims = shape.map { Int64($0) }
        tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        #if _endian(little)
        tensor.rawData = values.withUnsafeBytes { Data($0) }
        #else
        tensor.rawData = Data(values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        #endif
        initializers.append(tensor)
        return tensor.name
    }

    /// Adds a uint8 or int8 initializer (bytes, an int8 value as its bit pattern) and returns its name.
    mutating func bytes(_ base: String, shape: [Int], values: [UInt8], type: Onnx_TensorProto.DataType) -> String {
        precondition(shape.reduce(1, *) == values.count)
        var tensor = Onnx_TensorProto()
        tensor.name = name(base)
        tensor.dims = shape.map { Int64($0) }
        tensor.dataType = Int32(type.rawValue)
        tensor.rawData = Data(values)
        initializers.append(tensor)
        return tensor.name
    }

    /// Adds an int64 initializer (shapes, axes) and returns its name.
    mutating func integers(_ base: String, _ values: [Int]) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = name(base)
        tensor.dims = [Int64(values.count)]
        tensor.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        tensor.int64Data = values.map { Int64($0) }
        initializers.append(tensor)
        return tensor.name
    }

    // MARK: - Layers

    /// Emits `layer` (at `path`) applied to the value `input` of shape `shape`; returns the output value and shape.
    mutating func emit(_ layer: any Layer, path: String, input: String, shape: [Int]) throws -> (String, [Int]) {
        let outputShape: [Int]
        do { outputShape = try layer.outputShape(for: shape) } catch {
            throw ONNXExportError("\(path.isEmpty ? layer.kind : path): \(error)")
        }
        let label = path.isEmpty ? layer.kind : path
        switch layer {
        case let sequential as Sequential:
            var (value, current) = (input, shape)
            for (name, child) in sequential.children {
                (value, current) = try emit(child, path: join(path, name), input: value, shape: current)
            }
            return (value, current)

        case let concat as Concat:
            var outputs: [String] = []
            for (name, branch) in concat.children {
                outputs.append(try emit(branch, path: join(path, name), input: input, shape: shape).0)
            }
            return (node("Concat", outputs, output: label, attributes: [.int("axis", 1)]), outputShape)

        case let residual as Residual:
            var (body, _) = try emit(residual.body, path: path, input: input, shape: shape)
            if residual.scale != 1 {
                let scale = constant("\(label).scale", shape: [], values: [residual.scale])
                body = node("Mul", [body, scale], output: "\(label).scaled")
            }
            return (node("Add", [input, body], output: label), outputShape)

        case let wired as any WiredLayer:
            return try emit(wired.wiring, path: path, input: input, shape: shape)

        case is AuxiliaryClassifier, is Dropout:
            // Training only: the main path passes through unchanged.
            return (input, outputShape)

        case let conv as Conv2D:
            return (try emitConvolution(conv, weight: conv.weight.value.values, bias: conv.bias?.value.values, label: label,
                                        input: input, shape: shape), outputShape)

        case let partial as PartiallyConnectedConv2D:
            // C3 as a full convolution whose absent connections are zero weights.
            var dense = [Float](repeating: 0, count: partial.dense.weight.count)
            let area = partial.kernelSize * partial.kernelSize, compact = partial.weight.value.values
            var connection = 0
            for (o, inputs) in partial.table.enumerated() {
                for i in inputs {
                    for k in 0..<area { dense[(o * partial.inputChannels + i) * area + k] = compact[connection * area + k] }
                    connection += 1
                }
            }
            return (try emitConvolution(partial.dense, weight: dense, bias: partial.bias.value.values, label: label,
                                        input: input, shape: shape), outputShape)

        case let pool as MaxPool2D:
            let g = try geometry(pool, shape)
            return (node("MaxPool", [input], output: label, attributes: [
                .ints("kernel_shape", [pool.kernelSize.0, pool.kernelSize.1]), .ints("strides", [pool.stride.0, pool.stride.1]),
                .ints("pads", try poolPads(g, pool, shape, label)),
            ]), outputShape)

        case let pool as AvgPool2D:
            return (try emitAveragePool(pool, label: label, input: input, shape: shape), outputShape)

        case let pool as GlobalAvgPool2D:
            let pooled = node("GlobalAveragePool", [input], output: pool.keepDimensions ? label : "\(label).pooled")
            return (pool.keepDimensions ? pooled : node("Flatten", [pooled], output: label, attributes: [.int("axis", 1)]), outputShape)

        case let pool as AdaptiveAvgPool2D:
            return (emitAdaptivePool(pool, label: label, input: input, shape: shape), outputShape)

        case let norm as BatchNorm2D:
            let c = norm.channels
            let scale = constant("\(label).weight", shape: [c], values: norm.weight?.value.values ?? Array(repeating: 1, count: c))
            let bias = constant("\(label).bias", shape: [c], values: norm.bias?.value.values ?? Array(repeating: 0, count: c))
            let mean = constant("\(label).running_mean", shape: [c], values: norm.runningMean.value.values)
            let variance = constant("\(label).running_var", shape: [c], values: norm.runningVar.value.values)
            return (node("BatchNormalization", [input, scale, bias, mean, variance], output: label,
                         attributes: [.float("epsilon", norm.epsilon)]), outputShape)

        case let lrn as LocalResponseNorm:
            // ONNX sums over c - floor((size-1)/2) ... c + ceil((size-1)/2) and divides alpha by size; ours centres the
            // window the other way for an even size, and `sumCoefficient` is alpha already divided (or not).
            guard lrn.size % 2 == 1 else {
                throw ONNXExportError("\(label): an LRN window of even size (\(lrn.size)) is placed differently in ONNX")
            }
            return (node("LRN", [input], output: label, attributes: [
                .int("size", lrn.size), .float("alpha", lrn.sumCoefficient * Float(lrn.size)), .float("beta", lrn.beta),
                .float("bias", lrn.k),
            ]), outputShape)

        case is ReLU:
            return (node("Relu", [input], output: label), outputShape)
        case is Sigmoid:
            return (node("Sigmoid", [input], output: label), outputShape)
        case is Tanh:
            return (node("Tanh", [input], output: label), outputShape)
        case is ScaledTanh:
            // A tanh(S a)
            let slope = constant("\(label).slope", shape: [], values: [ScaledTanh.slope])
            let amplitude = constant("\(label).amplitude", shape: [], values: [ScaledTanh.amplitude])
            let scaled = node("Mul", [input, slope], output: "\(label).scaled_input")
            let squashed = node("Tanh", [scaled], output: "\(label).tanh")
            return (node("Mul", [squashed, amplitude], output: label), outputShape)

        case is Flatten:
            return (node("Flatten", [input], output: label, attributes: [.int("axis", 1)]), outputShape)

        case let linear as Linear:
            let flat = shape.count == 2 ? input : node("Flatten", [input], output: "\(label).flat", attributes: [.int("axis", 1)])
            let weight = constant("\(label).weight", shape: linear.weight.shape, values: linear.weight.value.values)
            let bias = linear.bias.map { constant("\(label).bias", shape: $0.shape, values: $0.value.values) }
            return (node("Gemm", [flat, weight] + (bias.map { [$0] } ?? []), output: label, attributes: [.int("transB", 1)]),
                    outputShape)

        case let subsampling as Subsampling:
            // S2 / S4: the window sum (average times area) times a coefficient plus a bias, per map.
            let c = subsampling.channels, area = Float(subsampling.window * subsampling.window)
            let window = subsampling.window
            let average = node("AveragePool", [input], output: "\(label).average", attributes: [
                .ints("kernel_shape", [window, window]), .ints("strides", [window, window]),
            ])
            let coefficient = constant("\(label).coefficient_times_area", shape: [1, c, 1, 1],
                                       values: subsampling.coefficient.value.values.map { $0 * area })
            let bias = constant("\(label).bias", shape: [1, c, 1, 1], values: subsampling.bias.value.values)
            let scaled = node("Mul", [average, coefficient], output: "\(label).scaled")
            return (node("Add", [scaled, bias], output: label), outputShape)

        case let rbf as EuclideanRBF:
            // y_i = sum_j (x_j - w_ij)^2: [N, 1, F] - [classes, F] -> [N, classes, F], squared, summed over F.
            let reshape = integers("\(label).shape", [0, 1, rbf.inputFeatures])
            let x = node("Reshape", [input, reshape], output: "\(label).input")
            let centres = constant("\(label).centres", shape: [rbf.classes, rbf.inputFeatures], values: rbf.centres.value.values)
            let difference = node("Sub", [x, centres], output: "\(label).difference")
            let squared = node("Mul", [difference, difference], output: "\(label).squared")
            let axes = integers("\(label).axes", [2])
            return (node("ReduceSum", [squared, axes], output: label, attributes: [.int("keepdims", 0)]), outputShape)

        default:
            guard layer.children.isEmpty else {
                throw ONNXExportError("\(label): no ONNX mapping for a \(layer.kind) container")
            }
            throw ONNXExportError("\(label): no ONNX mapping for a \(layer.kind) layer")
        }
    }

    private func join(_ path: String, _ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    private mutating func emitConvolution(_ conv: Conv2D, weight: [Float], bias: [Float]?, label: String, input: String,
                                          shape: [Int]) throws -> String {
        let g = try WindowGeometry(layer: label, inputShape: shape, kernel: conv.kernelSize, stride: conv.stride,
                                   padding: conv.padding, adapting: conv.adaptsToSmallInputs)
        var (input, weightName) = (input, "")
        if let q = conv.int8 {
            // Int8 (`cnn quantize`) as ONNX's QDQ form: the input through QuantizeLinear and DequantizeLinear with its
            // scale and zero point, the weights stored as int8 with one scale per output channel (axis 0) and
            // dequantized; what our int8 convolution computes, up to the float rounding of the sums.
            let scale = constant("\(label).input_scale", shape: [], values: [q.inputScale])
            let zeroPoint = bytes("\(label).input_zero_point", shape: [], values: [UInt8(q.inputZeroPoint)], type: .uint8)
            let quantized = node("QuantizeLinear", [input, scale, zeroPoint], output: "\(label).input_quantized")
            input = node("DequantizeLinear", [quantized, scale, zeroPoint], output: "\(label).input_dequantized")
            let levels = Int8Quantization.quantizedWeights(Tensor(shape: conv.weight.shape, values: weight), scales: q.weightScales)
                .map { UInt8(bitPattern: $0) }
            let weightLevels = bytes("\(label).weight_quantized", shape: conv.weight.shape, values: levels, type: .int8)
            let weightScales = constant("\(label).weight_scale", shape: [conv.outputChannels], values: q.weightScales)
            let weightZeros = bytes("\(label).weight_zero_point", shape: [conv.outputChannels],
                                    values: [UInt8](repeating: 0, count: conv.outputChannels), type: .int8)
            weightName = node("DequantizeLinear", [weightLevels, weightScales, weightZeros], output: "\(label).weight_dequantized",
                              attributes: [.int("axis", 0)])
        } else {
            weightName = constant("\(label).weight", shape: conv.weight.shape, values: weight)
        }
        let biasName = bias.map { constant("\(label).bias", shape: [conv.outputChannels], values: $0) }
        return node("Conv", [input, weightName] + (biasName.map { [$0] } ?? []), output: label, attributes: [
            .ints("kernel_shape", [conv.kernelSize.height, conv.kernelSize.width]),
            .ints("strides", [conv.stride.height, conv.stride.width]),
            .ints("pads", [g.padTop, g.padLeft, g.padBottom, g.padRight]),
            .int("group", conv.groups),
        ])
    }

    private func geometry(_ pool: any SlidingWindowPool, _ shape: [Int]) throws -> WindowGeometry {
        try WindowGeometry(layer: pool.kind, inputShape: shape, kernel: pool.kernelSize, stride: pool.stride, padding: pool.padding,
                           ceilMode: pool.ceilMode, adapting: pool.adaptsToSmallInputs)
    }

    /// Explicit pads giving our output size with ONNX's floor rule: ceil mode becomes extra padding at the end, which
    /// max pooling ignores and average pooling excludes (its divisor is corrected separately).
    private func poolPads(_ g: WindowGeometry, _ pool: any SlidingWindowPool, _ shape: [Int], _ label: String) throws -> [Int] {
        func end(_ size: Int, _ kernel: Int, _ stride: Int, _ before: Int, _ after: Int, _ outputs: Int) throws -> Int {
            let floorOutputs = { (after: Int) in (size + before + after - kernel) / stride + 1 }
            let padding = floorOutputs(after) == outputs ? after : (outputs - 1) * stride + kernel - size - before
            guard floorOutputs(padding) == outputs, padding >= 0, padding < kernel else {
                throw ONNXExportError("\(label): no explicit padding gives \(outputs) outputs from \(size) with a \(kernel)-wide window")
            }
            return padding
        }
        let bottom = try end(shape[2], pool.kernelSize.0, pool.stride.0, g.padTop, g.padBottom, g.outputHeight)
        let right = try end(shape[3], pool.kernelSize.1, pool.stride.1, g.padLeft, g.padRight, g.outputWidth)
        return [g.padTop, g.padLeft, bottom, right]
    }

    /// ONNX's AveragePool without padding in its divisor (the number of input values in each window), then, where our
    /// divisor differs (padding counted: PyTorch's `count_include_pad`), a constant map of the ratio of the two.
    private mutating func emitAveragePool(_ pool: AvgPool2D, label: String, input: String, shape: [Int]) throws -> String {
        let g = try geometry(pool, shape)
        let (h, w, kh, kw, sh, sw) = (shape[2], shape[3], pool.kernelSize.0, pool.kernelSize.1, pool.stride.0, pool.stride.1)
        var ratios: [Float] = []
        for i in 0..<g.outputHeight {
            for j in 0..<g.outputWidth {
                // As cnn_avgpool_forward's avg_window: the window clipped to the padded input, then to the input.
                let hs = i * sh - g.padTop, ws = j * sw - g.padLeft
                let he = min(hs + kh, h + g.padTop), we = min(ws + kw, w + g.padLeft)
                let padded = (he - hs) * (we - ws)
                let inside = (min(he, h) - max(hs, 0)) * (min(we, w) - max(ws, 0))
                let divisor = pool.countIncludesPadding ? padded : max(inside, 1)
                ratios.append(inside > 0 ? Float(inside) / Float(divisor) : 1)
            }
        }
        let needsCorrection = ratios.contains { $0 != 1 }
        let pooled = node("AveragePool", [input], output: needsCorrection ? "\(label).unpadded" : label, attributes: [
            .ints("kernel_shape", [kh, kw]), .ints("strides", [sh, sw]), .ints("pads", try poolPads(g, pool, shape, label)),
            .int("count_include_pad", 0),
        ])
        guard needsCorrection else { return pooled }
        let correction = constant("\(label).divisor_correction", shape: [1, 1, g.outputHeight, g.outputWidth], values: ratios)
        return node("Mul", [pooled, correction], output: label)
    }

    /// Adaptive average pooling at the fixed input size: an AveragePool when the windows tile the input evenly, else
    /// a MatMul of the flattened maps [N, C, H * W] with the averaging matrix [H * W, OH * OW].
    private mutating func emitAdaptivePool(_ pool: AdaptiveAvgPool2D, label: String, input: String, shape: [Int]) -> String {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let (oh, ow) = pool.outputSize
        if h % oh == 0 && w % ow == 0 {
            return node("AveragePool", [input], output: label, attributes: [
                .ints("kernel_shape", [h / oh, w / ow]), .ints("strides", [h / oh, w / ow]),
            ])
        }
        var matrix = [Float](repeating: 0, count: h * w * oh * ow)
        for i in 0..<oh {
            for j in 0..<ow {
                let rows = AdaptiveAvgPool2D.window(i, size: h, count: oh), columns = AdaptiveAvgPool2D.window(j, size: w, count: ow)
                let weight = 1 / Float(rows.count * columns.count)
                for r in rows { for q in columns { matrix[(r * w + q) * oh * ow + i * ow + j] = weight } }
            }
        }
        let flat = node("Reshape", [input, integers("\(label).flat_shape", [0, c, h * w])], output: "\(label).flat")
        let averaging = constant("\(label).averaging", shape: [h * w, oh * ow], values: matrix)
        let pooled = node("MatMul", [flat, averaging], output: "\(label).pooled")
        return node("Reshape", [pooled, integers("\(label).shape", [0, c, oh, ow])], output: label)
    }
}

extension Onnx_AttributeProto {
    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .int
        attribute.i = Int64(value)
        return attribute
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .ints
        attribute.ints = values.map { Int64($0) }
        return attribute
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .float
        attribute.f = value
        return attribute
    }
}
