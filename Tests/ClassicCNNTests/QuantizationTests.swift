// Int8 inference (Conv2D+Int8.swift, Quantization.swift): a quantised convolution computes the float convolution of
// its quantised input and weights, whichever way it lowers them; calibration follows ONNX Runtime's MinMax rule; a
// quantised checkpoint round-trips and a malformed one is refused naming the file; training drops the quantisation.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNZoo

@Suite("Int8 quantisation")
struct QuantizationTests {
    /// What ONNX's QuantizeLinear then DequantizeLinear give for x.
    static func fakeQuantized(_ x: Float, scale: Float, zeroPoint: Int) -> Float {
        let q = Swift.min(255, Swift.max(0, Int(Swift.min(Swift.max(x / scale, -512), 512).rounded(.toNearestOrEven)) + zeroPoint))
        return Float(q - zeroPoint) * scale
    }

    /// (batch, C, H, W, CO, kernel, stride, padding, groups): the full-width lowering (stride 1 on maps of >= 48 positions),
    /// small maps side by side, a 1x1, strides, two groups, a 5x5 first layer of 3 channels.
    static let shapes: [(n: Int, c: Int, h: Int, w: Int, co: Int, k: Int, s: Int, p: Int, g: Int)] = [
        (3, 16, 16, 18, 24, 3, 1, 1, 1), (5, 32, 4, 4, 40, 3, 1, 1, 1), (2, 48, 7, 7, 20, 1, 1, 0, 1), (3, 8, 15, 15, 12, 3, 2, 1, 1),
        (2, 8, 9, 9, 12, 3, 1, 1, 2), (2, 3, 20, 20, 16, 5, 1, 2, 1), (1, 16, 14, 14, 8, 3, 1, 0, 1),
        (2, 24, 7, 7, 16, 3, 1, 1, 1), (2, 8, 17, 17, 12, 5, 1, 2, 1),  // 7x7 at full width; 5x5 on 17x17 plain
        (1, 32, 32, 32, 16, 3, 1, 1, 1), (1, 32, 40, 40, 16, 3, 2, 1, 1),  // one image: the lowering shared over the threads
    ]

    @Test("A quantised convolution is the float convolution of its quantised input and weights", arguments: 0..<shapes.count)
    func int8ConvolutionIsTheFloatConvolutionOfQuantisedValues(_ index: Int) throws {
        let s = Self.shapes[index]
        func make() -> Conv2D {
            Conv2D(inputChannels: s.c, outputChannels: s.co, kernelSize: s.k, stride: s.s, padding: .symmetric(height: s.p, width: s.p), groups: s.g)
        }
        let conv = make(), reference = make()
        conv.weight.value = randomTensor(conv.weight.shape, seed: UInt64(index) + 1)
        conv.bias!.value = randomTensor([s.co], seed: UInt64(index) + 2)
        // A signed input (zero point inside the range) with values outside the calibrated range, which saturate.
        let x = randomTensor([s.n, s.c, s.h, s.w], seed: UInt64(index) + 3)
        let input = Int8Quantization.input(minimum: -0.8, maximum: 0.9)
        let q = Int8Quantization(inputScale: input.scale, inputZeroPoint: input.zeroPoint, weightScales: Int8Quantization.weightScales(conv.weight.value))
        conv.int8 = q
        reference.bias!.value = conv.bias!.value
        let fanIn = conv.weight.count / s.co
        reference.weight.value = Tensor(shape: conv.weight.shape, values: conv.weight.value.values.enumerated().map { i, w in
            let scale = q.weightScales[i / fanIn]
            return Swift.min(Swift.max((w / scale).rounded(.toNearestOrEven), -63), 63) * scale
        })
        let xq = Tensor(shape: x.shape, values: x.values.map { Self.fakeQuantized($0, scale: q.inputScale, zeroPoint: q.inputZeroPoint) })
        // Two threads first, while the layer's buffers are new: one thread's run must not leave them right for the other.
        for threads in [2, 1] {
            EngineOptions.with({ $0.threads = threads }) {
                let got = Tensor(copying: conv.forward(x, training: false))
                let expected = reference.forward(xq, training: false)
                #expect(got.shape == expected.shape)
                let error = FoldingTests.relativeError(got, expected)
                #expect(error < 2e-5, "shape \(index), \(threads) threads: \(error)")
                // Without int8, the layer is the float convolution of its own float weights.
                let float = EngineOptions.with({ $0.int8 = false }) { Tensor(copying: conv.forward(x, training: false)) }
                let plain = make()
                (plain.weight.value, plain.bias!.value) = (conv.weight.value, conv.bias!.value)
                #expect(FoldingTests.relativeError(float, plain.forward(x, training: false)) < 1e-5)
            }
        }
    }

    @Test func calibrationFollowsOnnxRuntimesMinMaxRule() {
        // After a ReLU: the range starts at 0, zero point 0.
        let relu = Int8Quantization.input(minimum: 0, maximum: 5.1)
        #expect(relu.zeroPoint == 0 && relu.scale == Float(5.1) / 255)
        // A range that excludes 0 is widened to include it; the zero point is where 0.0 falls.
        let positive = Int8Quantization.input(minimum: 2, maximum: 4)
        #expect(positive.zeroPoint == 0 && positive.scale == Float(4) / 255)
        let signed = Int8Quantization.input(minimum: -1, maximum: 3)
        #expect(signed.scale == Float(4) / 255 && signed.zeroPoint == 64)  // 1 / (4 / 255) = 63.75
        let empty = Int8Quantization.input(minimum: 0, maximum: 0)
        #expect(empty.scale == 1 && empty.zeroPoint == 0)
        // A range too small for a normal scale (zeros and one denormal) is treated as empty, not divided by.
        let tiny = Int8Quantization.input(minimum: -Float.leastNonzeroMagnitude, maximum: Float.leastNonzeroMagnitude)
        #expect(tiny.scale == 1 && tiny.zeroPoint == 0)
        let weights = Tensor(shape: [2, 3], values: [0.5, -1.26, 0.1, 0, 0, 0])
        #expect(Int8Quantization.weightScales(weights) == [Float(1.26) / 63, 1])
    }

    /// A network with batch norm (folded at inference) and ReLUs, quantised on random images: its logits stay close to
    /// the float ones, a checkpoint keeps the quantisation exactly, and the int8 outputs survive the round trip bit
    /// for bit.
    @Test func quantisedCheckpointRoundTrips() throws {
        let model = try ModelZoo.make("vgg11-bn", inputSize: 32, classes: 10)
        model.initialize(seed: 3)
        FoldingTests.randomizeNorms(model.network, seed: 4)
        let batches = (0..<2).map { randomTensor([8, 3, 32, 32], seed: 10 + UInt64($0)) }
        #expect(model.quantize(calibration: batches) == 8)
        #expect(model.isQuantized)
        let probe = randomTensor([4, 3, 32, 32], seed: 20)
        let int8 = Tensor(copying: model.forward(probe))
        let float = EngineOptions.with({ $0.int8 = false }) { Tensor(copying: model.forward(probe)) }
        let drift = FoldingTests.relativeError(int8, float)
        #expect(drift > 0 && drift < 0.1, "int8 against float: \(drift)")

        let path = NSTemporaryDirectory() + "cnn-int8-\(ProcessInfo.processInfo.processIdentifier).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var info = CheckpointInfo(model: "vgg11-bn", configuration: model.configuration, epoch: 1, dataset: "cifar10")
        info.extraTensors = model.quantizationTensors
        try Checkpoint.save(model: model, optimizer: nil, info: info, to: path)
        let (loaded, _, _) = try Checkpoint.load(path: path)
        #expect(loaded.convolutions.map(\.layer.int8) == model.convolutions.map(\.layer.int8))
        #expect(loaded.forward(probe).values == int8.values)

        // New weights drop the quantisation calibrated for the old ones; so does training.
        let reloaded = try Checkpoint.load(path: path).model
        #expect(reloaded.isQuantized)
        try reloaded.loadParameters(model.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) })
        #expect(!reloaded.isQuantized)
        // Training the loaded model drops the quantisation (its weights will move away from the calibration).
        let data = ImageDataset(name: "random", channels: 3, height: 32, width: 32, pixels: [UInt8](repeating: 0, count: 3 * 32 * 32),
                                labels: [0], classNames: (0..<10).map(String.init))
        _ = Trainer(model: loaded, optimizer: SGD(learningRate: 0.01), trainingSet: data, validationSet: nil, options: TrainingOptions())
        #expect(!loaded.isQuantized)
    }

    /// The README's Swift for int8 inference, on MNIST with a LeNet-5 trained for 300 steps.
    @Test func theReadmesLibraryExampleRuns() throws {
        let root = try sharedDataRoot()
        let train = try MNIST.load(.train, from: root + "/mnist"), test = try MNIST.load(.test, from: root + "/mnist")
        let trained = try ModelZoo.make("lenet5", seed: 0)
        _ = try Trainer(model: trained, optimizer: Adam(learningRate: 0.001), trainingSet: train, validationSet: nil,
                        options: TrainingOptions(epochs: 1, stepsPerEpoch: 300)).fit()
        let loader = BatchLoader(dataset: train, batchSize: 64, inputSize: trained.configuration.inputSize,
                                 format: trained.inputFormat, shuffleSeed: nil, limit: 512)
        var calibration: [Tensor] = []
        while let batch = loader.next() { calibration.append(Tensor(copying: batch.images)) }
        #expect(trained.quantize(calibration: calibration) == 3)
        let report = try Evaluation.compareInt8(model: trained, dataset: test, limit: 2000)
        #expect(report.count == 2000 && report.floatAccuracy > 0.7, "\(report)")
        #expect(report.agreement > 0.98 && abs(report.int8Accuracy - report.floatAccuracy) < 0.01, "\(report)")
    }

    @Test func malformedQuantisationIsRefusedNamingTheFile() throws {
        let model = try ModelZoo.make("vgg11-bn", inputSize: 32, classes: 10)
        model.initialize(seed: 3)
        model.quantize(calibration: [randomTensor([2, 3, 32, 32], seed: 1)])
        let good = model.quantizationTensors
        let cases: [(String, [NamedTensor])] = [
            ("not a quantisation tensor", good + [NamedTensor(name: "int8.features.0.bias", shape: [1], values: [1])]),
            ("has no convolution 'features.99'", good + [NamedTensor(name: "int8.features.99.input", shape: [2], values: [1, 0])]),
            ("come in pairs", good.filter { $0.name != "int8.features.0.weight_scale" }),
            ("zero point in 0...255", good.map { $0.name == "int8.features.0.input" ? NamedTensor(name: $0.name, shape: [2], values: [0.1, 300]) : $0 }),
            ("positive scales", good.map { $0.name == "int8.features.0.weight_scale" ? NamedTensor(name: $0.name, shape: $0.shape, values: $0.values.map { _ in -1 }) : $0 }),
        ]
        for (index, (message, tensors)) in cases.enumerated() {
            let path = NSTemporaryDirectory() + "cnn-int8-bad-\(ProcessInfo.processInfo.processIdentifier)-\(index).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            var info = CheckpointInfo(model: "vgg11-bn", configuration: model.configuration, epoch: 1, dataset: "cifar10")
            info.extraTensors = tensors
            try Checkpoint.save(model: model, optimizer: nil, info: info, to: path)
            do {
                _ = try Checkpoint.load(path: path)
                Issue.record("case \(index) (\(message)) was accepted")
            } catch {
                let text = "\(error)"
                #expect(text.contains(path) && text.contains(message), "\(text)")
            }
        }
    }
}
