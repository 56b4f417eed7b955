// ONNX export: every network of the registry, with formula weights (batch-norm statistics included), is exported and
// run in ONNX Runtime through Scripts/onnx_check.py; its outputs must match ours within 1e-4 of the largest logit, at
// batch sizes 3 and 1 from the same file (the batch dimension is symbolic). The Python is `testPython()`: CNN_TEST_PYTHON,
// or .venv-ci made on first use; without one these tests fail and say so.
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo
import Foundation
import TestSupport
import Testing

@Suite("ONNX export")
struct ONNXTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let script = repository.appendingPathComponent("Scripts/onnx_check.py").path
    /// The tolerance, relative to the largest absolute output.
    static let tolerance: Float = 1e-4

    /// Each network at a reduced size where it takes one (the small-input adaptation below its own size, so that
    /// adapted windows are exported too), LeNet-5 at its own.
    static let cases: [(name: String, inputSize: Int)] = ModelZoo.all.map { descriptor in
        (descriptor.name, descriptor.defaultInputSize <= 32 ? descriptor.defaultInputSize : 64)
    } + [("googlenet", 45), ("inception-v3", 75), ("inception-resnet-v2", 75)]

    struct PythonError: Error, CustomStringConvertible { let description: String }

    /// Runs `python arguments...`; throws with its standard error when it fails.
    static func runPython(_ arguments: [String], environment: [String: String] = [:]) throws {
        let python = try testPython()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw PythonError(description: "CNN_TEST_PYTHON=\(python) cannot be started: \(error)")
        }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PythonError(description: "\(python) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): \(message)")
        }
    }

    /// Fills every parameter but fixed ones (LeNet-5's RBF centres) with the fixture formula's values.
    static func formulaWeights(_ model: Model) {
        for (name, parameter) in model.parameters where parameter.isTrainable || !name.hasSuffix("centres") {
            parameter.value = Tensor(shape: parameter.shape, values: FormulaWeights.values(name, shape: parameter.shape))
        }
    }

    static func randomInput(_ shape: [Int], seed: UInt64) -> Tensor {
        Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { Float(2 * FormulaWeights.uniform(seed, $0) - 1) })
    }

    /// The largest |ours - theirs| over the largest |ours|.
    static func relativeDifference(_ ours: [Float], _ theirs: [Float]) -> Float {
        let scale = max(ours.map(abs).max() ?? 0, Float.leastNormalMagnitude)
        return zip(ours, theirs).map { abs($0 - $1) }.max().map { $0 / scale } ?? .infinity
    }

    @Test("the exported graph gives our outputs in ONNX Runtime, at batch sizes 3 and 1", arguments: cases.map { "\($0.name)@\($0.inputSize)" })
    func matchesOnnxRuntime(_ label: String) throws {
        let parts = label.split(separator: "@")
        let name = String(parts[0]), size = Int(parts[1])!
        let model = try ModelZoo.make(name, inputSize: size, classes: 10, seed: 1)
        try Self.check(model, label: label)
    }

    /// Small networks for what the zoo's weights hardly exercise (LRN at random weights is nearly a constant factor)
    /// or what no zoo network uses at inference (uneven adaptive pooling, sigmoid, tanh, even strides on "same").
    static let layerCases: [String: (inputSize: Int, network: () -> any Layer)] = [
        "strong LRN, both alpha conventions": (9, {
            Sequential {
                Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: .uniform(1))
                LocalResponseNorm(size: 5, alpha: 2, beta: 0.75, k: 1)
                LocalResponseNorm(size: 3, alpha: 0.5, beta: 0.6, k: 2, alphaIsDividedBySize: false)
                Flatten()
                Linear(inputFeatures: 8 * 9 * 9, outputFeatures: 10)
            }
        }),
        "ceil-mode pooling with counted padding, uneven adaptive pooling": (11, {
            Sequential {
                Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 2, stride: 2, padding: .same, groups: 1)
                AvgPool2D(kernelSize: 3, stride: 2, padding: .uniform(1), ceilMode: true, countIncludesPadding: true)
                Conv2D(inputChannels: 4, outputChannels: 6, kernelSize: 3, padding: .explicit(top: 0, left: 1, bottom: 2, right: 0), groups: 2)
                MaxPool2D(kernelSize: 2, stride: 2, ceilMode: true)
                AdaptiveAvgPool2D(outputSize: (2, 3))
                Flatten()
                Linear(inputFeatures: 6 * 2 * 3, outputFeatures: 10)
            }
        }),
        "sigmoid, tanh, scaled tanh, scaled residual": (6, {
            Sequential {
                Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: 3, padding: .same)
                Sigmoid()
                Residual(scale: 0.3) {
                    Conv2D(inputChannels: 4, outputChannels: 4, kernelSize: 3, padding: .same)
                    Tanh()
                }
                ScaledTanh()
                GlobalAvgPool2D()
                Linear(inputFeatures: 4, outputFeatures: 10)
            }
        }),
    ]

    /// Exports `model` with formula weights and checks it in ONNX Runtime at batch sizes 3 and 1; returns the
    /// largest relative difference.
    @discardableResult
    static func check(_ model: Model, label: String) throws -> Float {
        formulaWeights(model)
        let folder = freshDirectory("onnx")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let onnx = folder + "/model.onnx"
        try ONNXExport.write(model, to: onnx)
        let batch = randomInput([3] + model.inputShape, seed: 7)
        let single = Tensor(shape: [1] + model.inputShape, values: Array(batch.values.prefix(model.inputShape.reduce(1, *))))
        let ours3 = model.forward(batch).values, ours1 = model.forward(single).values
        #expect(ours3.allSatisfy { $0.isFinite })
        try SafeTensors.write([NamedTensor(name: "input", shape: batch.shape, values: batch.values)], metadata: [:], to: folder + "/in3.safetensors")
        try SafeTensors.write([NamedTensor(name: "input", shape: single.shape, values: single.values)], metadata: [:], to: folder + "/in1.safetensors")
        try runPython([script, onnx, folder + "/in3.safetensors", folder + "/out3.safetensors",
                       folder + "/in1.safetensors", folder + "/out1.safetensors"])
        var worst: Float = 0
        for (ours, file, n) in [(ours3, "out3", 3), (ours1, "out1", 1)] {
            let theirs = try #require(try SafeTensors.read(path: "\(folder)/\(file).safetensors").tensors.first { $0.name == "output" })
            #expect(theirs.shape == [n, model.configuration.classes])
            let difference = relativeDifference(ours, theirs.values)
            worst = max(worst, difference)
            print("ONNX \(label) batch \(n): max relative difference \(difference)")
            #expect(difference <= tolerance, "\(label), batch \(n): ONNX Runtime differs by \(difference) of the largest output")
        }
        return worst
    }

    /// A network quantised by `Model.quantize` exports as ONNX's QDQ form (QuantizeLinear and DequantizeLinear around
    /// each convolution's input, int8 weights with per-channel scales). Run node by node as written (ONNX Runtime
    /// without graph optimisations), a small network with batch norm gives our int8 outputs within 1e-5: the same
    /// arithmetic. Deeper networks, with ONNX Runtime's optimisations (which fuse the pairs into integer kernels), give
    /// the same top-1 class for every image and outputs within 1% of the largest: there, float rounding that differs
    /// from ours (batch norm unfolded, fused requantisation) moves values across the rounding boundaries of the next
    /// quantisation, each crossing a step of 1/255 of a layer's input range.
    @Test("a quantised network's QDQ graph gives our int8 outputs in ONNX Runtime", arguments: ["tiny@8", "vgg11-bn@32", "googlenet@45"])
    func quantisedGraphMatchesOnnxRuntime(_ label: String) throws {
        let parts = label.split(separator: "@")
        let exact = label == "tiny@8"
        let model = exact ? Model(name: "tiny", configuration: ModelConfiguration(inputSize: 8, classes: 10, inputChannels: 3), network: Sequential {
            Conv2D(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: .same)
            BatchNorm2D(channels: 8)
            ReLU()
            Conv2D(inputChannels: 8, outputChannels: 16, kernelSize: 3, stride: 2, padding: .same)
            Flatten()
            Linear(inputFeatures: 16 * 16, outputFeatures: 10)
        }, loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 3)) : try ModelZoo.make(String(parts[0]), inputSize: Int(parts[1])!, classes: 10, seed: 1)
        Self.formulaWeights(model)
        let batch = Self.randomInput([6] + model.inputShape, seed: 7)
        #expect(model.quantize(calibration: [batch]) == model.convolutions.count - (label.hasPrefix("googlenet") ? 2 : 0))  // not the aux heads
        let folder = freshDirectory("onnx-int8")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try ONNXExport.write(model, to: folder + "/model.onnx")
        let summary = try ONNXExport.summary(of: model)
        #expect(summary.operators.filter { $0 == "QuantizeLinear" }.count == model.convolutions.filter { $0.layer.int8 != nil }.count)
        let ours = model.forward(batch).values
        try SafeTensors.write([NamedTensor(name: "input", shape: batch.shape, values: batch.values)], metadata: [:], to: folder + "/in.safetensors")
        try Self.runPython([Self.script, folder + "/model.onnx", folder + "/in.safetensors", folder + "/out.safetensors"],
                           environment: exact ? ["ONNX_CHECK_NO_OPTIMIZATION": "1"] : [:])
        let theirs = try #require(try SafeTensors.read(path: folder + "/out.safetensors").tensors.first { $0.name == "output" }).values
        let difference = Self.relativeDifference(ours, theirs)
        print("ONNX QDQ \(label): max relative difference \(difference)")
        #expect(difference <= (exact ? 1e-5 : 1e-2), "\(label): ONNX Runtime's QDQ graph differs by \(difference) of the largest output")
        let classes = model.configuration.classes
        func top(_ values: [Float], _ row: Int) -> Int { (0..<classes).max { values[row * classes + $0] < values[row * classes + $1] }! }
        #expect((0..<6).allSatisfy { top(ours, $0) == top(theirs, $0) })
        if exact {
            // The same graph exported in float (the int8 switched off) is not what ONNX Runtime ran.
            let float = EngineOptions.with({ $0.int8 = false }) { model.forward(batch).values }
            #expect(Self.relativeDifference(float, ours) > 100 * difference)
        }
    }

    @Test("layers the zoo hardly exercises give our outputs in ONNX Runtime", arguments: layerCases.keys.sorted())
    func layersMatchOnnxRuntime(_ label: String) throws {
        let (size, network) = try #require(Self.layerCases[label])
        let model = Model(name: "layers", configuration: ModelConfiguration(inputSize: size, classes: 10, inputChannels: 3),
                          network: network(), loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 3))
        try Self.check(model, label: label)
    }

    @Test func anEvenLRNWindowIsRefusedByName() throws {
        let model = Model(name: "even", configuration: ModelConfiguration(inputSize: 4, classes: 4, inputChannels: 4),
                          network: Sequential { LocalResponseNorm(size: 4).named("norm"); GlobalAvgPool2D() },
                          loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 4))
        #expect { try ONNXExport.serialize(model) } throws: { "\($0)".contains("norm") && "\($0)".contains("even") }
    }

    @Test func theGraphHasASymbolicBatchAndNoTrainingOnlyParts() throws {
        let model = try ModelZoo.make("googlenet", inputSize: 64, classes: 10)
        let graph = try ONNXExport.summary(of: model)
        #expect(graph.opset == 17)
        #expect(graph.inputDimensions == ["N", "3", "64", "64"])
        #expect(graph.outputDimensions == [0, 10])
        #expect(!graph.initializers.contains { $0.hasPrefix("aux") } && !graph.initializers.isEmpty)
        #expect(!graph.operators.contains("Dropout") && graph.operators.contains("Conv"))
    }

    @Test func aFailedWriteNamesTheFileAndLeavesNothing() throws {
        let model = try ModelZoo.make("lenet5")
        let folder = freshDirectory("onnx-write")
        let path = folder + "/missing/model.onnx"
        #expect { try ONNXExport.write(model, to: path) } throws: { "\($0)".contains(path) }
        #expect(!FileManager.default.fileExists(atPath: SafeTensors.temporaryPath(for: path)))
    }
}
