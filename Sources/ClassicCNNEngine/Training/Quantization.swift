// Post-training int8 quantisation of a model's convolutions: calibration on a few hundred images, then inference in
// int8 (Conv2D+Int8.swift). The quantisation is data beside the float weights: each convolution's input scale and
// zero point and its weights' per-channel scales, saved in a checkpoint as `int8.<path>.input` ([scale, zero point])
// and `int8.<path>.weight_scale` ([CO]), so a quantised checkpoint still holds the float model.
extension Model {
    /// The convolutions that int8 inference may serve, by path (`features.0`), in the network's order.
    public var convolutions: [(path: String, layer: Conv2D)] {
        network.namedLayers.compactMap { path, layer in (layer as? Conv2D).map { (path, $0) } }
    }

    /// Whether any convolution computes in int8 at inference.
    public var isQuantized: Bool { convolutions.contains { $0.layer.int8 != nil } }

    /// Calibrates and quantises: runs `batches` (already in the network's input format) through the network in float
    /// inference, records the range of every convolution's input, and sets each convolution's `int8` from it (ONNX
    /// Runtime's MinMax rule, ``Int8Quantization/input(minimum:maximum:)``) and from its weights (symmetric, per
    /// channel). Convolutions that inference does not run (auxiliary heads) stay in float. Returns how many were
    /// quantised.
    @discardableResult
    public func quantize(calibration batches: some Sequence<Tensor>) -> Int {
        let convolutions = self.convolutions.map(\.layer)
        for conv in convolutions {
            conv.int8 = nil
            conv.int8State.observedMinimum = .infinity
            conv.int8State.observedMaximum = -.infinity
            conv.int8State.observesInputRange = true
        }
        defer { for conv in convolutions { conv.int8State.observesInputRange = false } }
        EngineOptions.with({ $0.int8 = false }) {
            for batch in batches { _ = network.forward(batch, training: false) }
        }
        var quantized = 0
        for conv in convolutions {
            let (low, high) = (conv.int8State.observedMinimum, conv.int8State.observedMaximum)
            guard low <= high else { continue }
            let input = Int8Quantization.input(minimum: low, maximum: high)
            conv.int8 = Int8Quantization(inputScale: input.scale, inputZeroPoint: input.zeroPoint,
                                         weightScales: Int8Quantization.weightScales(conv.weight.value))
            quantized += 1
        }
        return quantized
    }

    /// Every convolution back to float inference.
    public func removeQuantization() {
        for (_, conv) in convolutions { conv.int8 = nil }
    }

    /// The quantisation as tensors for a checkpoint (``Checkpoint/int8Prefix``).
    public var quantizationTensors: [NamedTensor] {
        convolutions.flatMap { path, conv -> [NamedTensor] in
            guard let q = conv.int8 else { return [] }
            let prefix = Checkpoint.int8Prefix + path
            return [NamedTensor(name: prefix + ".input", shape: [2], values: [q.inputScale, Float(q.inputZeroPoint)]),
                    NamedTensor(name: prefix + ".weight_scale", shape: [q.weightScales.count], values: q.weightScales)]
        }
    }

    /// Sets the convolutions' quantisation from a checkpoint's `int8.*` tensors (the others go back to float); every
    /// tensor must name a convolution of this model with the right shape and usable values.
    public func loadQuantization(_ tensors: [NamedTensor]) throws {
        let byPath = Dictionary(convolutions.map { ($0.path, $0.layer) }, uniquingKeysWith: { first, _ in first })
        var inputs: [String: [Float]] = [:], scales: [String: [Float]] = [:]
        for tensor in tensors where tensor.name.hasPrefix(Checkpoint.int8Prefix) {
            let name = tensor.name.dropFirst(Checkpoint.int8Prefix.count)
            if name.hasSuffix(".input") {
                inputs[String(name.dropLast(".input".count))] = tensor.values
            } else if name.hasSuffix(".weight_scale") {
                scales[String(name.dropLast(".weight_scale".count))] = tensor.values
            } else {
                throw ConfigurationError("'\(tensor.name)' is not a quantisation tensor (int8.<convolution>.input or .weight_scale)")
            }
        }
        var settings: [(Conv2D, Int8Quantization)] = []
        for path in Set(inputs.keys).union(scales.keys).sorted() {
            guard let conv = byPath[path] else { throw ConfigurationError("int8.\(path): \(name) has no convolution '\(path)'") }
            guard let input = inputs[path], let weightScales = scales[path] else {
                throw ConfigurationError("int8.\(path): the input's scale and zero point and the weights' scales come in pairs; one is missing")
            }
            guard input.count == 2, input[0].isFinite, input[0] > 0, input[1] >= 0, input[1] <= 255, input[1] == input[1].rounded() else {
                throw ConfigurationError("int8.\(path).input must be [scale > 0, zero point in 0...255], got \(input)")
            }
            guard weightScales.count == conv.outputChannels, weightScales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ConfigurationError("int8.\(path).weight_scale must hold \(conv.outputChannels) positive scales")
            }
            settings.append((conv, Int8Quantization(inputScale: input[0], inputZeroPoint: Int(input[1]), weightScales: weightScales)))
        }
        removeQuantization()
        for (conv, q) in settings { conv.int8 = q }
    }
}

/// Int8 inference against float inference on the same images: what `cnn quantize` reports.
public struct Int8Comparison: Sendable {
    /// Images compared.
    public var count: Int
    /// Top-1 accuracy in float and in int8.
    public var floatAccuracy: Double, int8Accuracy: Double
    /// The share of images whose top-1 class is the same in both.
    public var agreement: Double
}

extension Evaluation {
    /// Runs the (first `limit`) images of `dataset` through `model` twice, in float and in int8, and compares.
    ///
    /// - Throws: the error of an image of an on-demand dataset that could not be read.
    public static func compareInt8(model: Model, dataset: ImageDataset, batchSize: Int = 256, limit: Int? = nil) throws -> Int8Comparison {
        let loader = BatchLoader(dataset: dataset, batchSize: batchSize, inputSize: model.configuration.inputSize,
                                 format: model.inputFormat, shuffleSeed: nil, limit: limit)
        defer { loader.stop() }
        var (count, floatCorrect, int8Correct, same) = (0, 0, 0, 0)
        while let batch = loader.next() {
            // A copy: the network reuses its output buffer on the next forward.
            let floatOutput = Tensor(copying: EngineOptions.with({ $0.int8 = false }) { model.forward(batch.images) })
            let int8Output = model.forward(batch.images)
            for row in 0..<batch.labels.count {
                let (a, b) = (model.loss.predictedClass(output: floatOutput, row: row), model.loss.predictedClass(output: int8Output, row: row))
                let truth = Int(batch.labels[row])
                floatCorrect += a == truth ? 1 : 0
                int8Correct += b == truth ? 1 : 0
                same += a == b ? 1 : 0
            }
            count += batch.labels.count
        }
        if let failure = loader.failure { throw failure }
        let n = Double(Swift.max(count, 1))
        return Int8Comparison(count: count, floatAccuracy: Double(floatCorrect) / n, int8Accuracy: Double(int8Correct) / n,
                              agreement: Double(same) / n)
    }
}
