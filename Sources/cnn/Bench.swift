import ArgumentParser
import ClassicCNN
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training or inference speed on synthetic data: images/s, ms per step, GFLOP/s and the share of the measured GEMM peak.")

    @OptionGroup var network: ModelOptions
    @Option(help: "Images per step.") var batchSize = 32
    @Flag(help: "Measure training steps (forward, backward, update): the default.") var train = false
    @Flag(help: "Measure inference (forward only).") var infer = false
    @Option(help: "Timed steps; the median step time is reported.") var steps = 50
    @Option(help: "Untimed warm-up steps.") var warmup = 5
    @Flag(help: "Also print the median time of each layer's forward and backward pass (inside sequences such as VGG's features; Inception modules whole).") var profile = false
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Lower 3x3 and 5x5 stride-1 convolutions to im2col + GEMM instead of Winograd, to measure what it gains.")
    var noWinograd = false
    @Flag(help: "Run each ReLU as a layer of its own instead of fused into the convolution, linear or batch-norm layer before it.")
    var noFusion = false
    @Flag(help: "At inference, run each batch norm as a layer of its own instead of folded into the convolution before it.")
    var noBnFolding = false
    @Flag(help: "Keep every layer's gradient buffers for the life of the network instead of sharing them through a pool, to measure the memory the pool saves.")
    var noGradientPool = false
    @Flag(help: "With --infer: quantise the convolutions to int8 first (calibrated on the benchmark's own batch), as `cnn quantize` does.")
    var int8 = false
    @Option(help: "Run the kernels with this instruction set (avx2 or portable on an AVX-512 machine; default: the widest the CPU has, or $CNN_ISA).")
    var isa: InstructionSet?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if train && infer { throw ValidationError("give --train or --infer, not both") }
        try validateBatchSize(batchSize)
        if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if warmup < 0 { throw ValidationError("--warmup must be non-negative, got \(warmup)") }
        if int8 && !infer { throw ValidationError("--int8 is for --infer: training computes in float") }
    }

    struct Report: Encodable {
        let model: String, mode: String, batch_size: Int, threads: Int, steps: Int, instruction_set: String
        let images_per_second: Double, ms_per_step: Double, ms_per_step_mean: Double
        let gflops: Double, gemm_peak_gflops: Double, share_of_peak: Double
    }

    func run() throws {
        runtime.apply()
        if let isa { InstructionSet.select(isa) }
        EngineOptions.process.winograd = !noWinograd
        EngineOptions.process.fusesActivations = !noFusion
        EngineOptions.process.foldsBatchNorm = !noBnFolding
        EngineOptions.process.poolsGradients = !noGradientPool
        let model = network.model
        let built = try network.make()
        built.initialize(seed: 0)
        let training = !infer
        var rng = RandomGenerator(seed: 1)
        let batch = Tensor(shape: [batchSize] + built.inputShape, values: (0..<(batchSize * built.inputShape.reduce(1, *))).map { _ in rng.nextFloat() })
        let labels = (0..<batchSize).map { Int32($0 % built.configuration.classes) }
        let optimizer = SGD(learningRate: 1e-4, momentum: 0.9)
        if int8 && built.quantize(calibration: [batch]) == 0 {
            throw CommandError(description: "\(model) has no convolution that int8 inference can serve")
        }
        func step() {
            if training { built.trainStep(batch: batch, labels: labels, optimizer: optimizer) } else { _ = built.forward(batch) }
        }
        for _ in 0..<warmup { step() }
        var times: [Double] = []
        for _ in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            step()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        let median = times.sorted()[times.count / 2]
        let mean = times.reduce(0, +) / Double(times.count)
        // A training step costs about three forward passes (forward, input gradient, weight gradient).
        let macs = try built.summary().reduce(0) { $0 + $1.cost.multiplyAdds }
        let flopsPerStep = Double(macs) * 2 * Double(batchSize) * (training ? 3 : 1)
        let gflops = flopsPerStep / (median / 1000) / 1e9
        let peak = Bench.gemmPeak()
        let report = Report(model: model, mode: training ? "train" : int8 ? "infer-int8" : "infer", batch_size: batchSize, threads: Parallel.threads,
                            steps: steps, instruction_set: InstructionSet.active.rawValue, images_per_second: Double(batchSize) / (median / 1000), ms_per_step: median,
                            ms_per_step_mean: mean, gflops: gflops, gemm_peak_gflops: peak, share_of_peak: gflops / peak)
        if json { return try printJSON(report) }
        if profile { try Bench.profile(built, batch: batch, labels: labels, training: training, steps: steps) }
        let kernels = int8 ? "\(report.instruction_set) kernels (int8: \(InstructionSet.int8Kernel))" : "\(report.instruction_set) kernels"
        print("\(model) \(report.mode), batch \(batchSize), \(Parallel.threads) threads, \(kernels), median of \(steps) steps:")
        print(String(format: "  %.1f images/s, %.3f ms/step (mean %.3f), %.1f GFLOP/s = %.0f%% of the %.0f GFLOP/s GEMM peak measured now",
                     report.images_per_second, median, mean, gflops, report.share_of_peak * 100, peak))
    }

    /// The layers a sequence runs one after the other, with sequences inside it opened (`features.3`); other
    /// containers (Inception modules, residual blocks) stay whole.
    static func sequenceLayers(_ layer: any Layer, path: String) -> [(name: String, layer: any Layer)] {
        guard let sequential = layer as? Sequential else { return [(path, layer)] }
        return sequential.children.flatMap { sequenceLayers($0.layer, path: path.isEmpty ? $0.name : "\(path).\($0.name)") }
    }

    /// Times each layer separately (median over `steps`), forward and, when training, backward: the top-level layers,
    /// with the sequences among them opened.
    static func profile(_ model: Model, batch: Tensor, labels: [Int32], training: Bool, steps: Int) throws {
        let layers = sequenceLayers(model.network, path: "")
        var forward = Array(repeating: [Double](), count: layers.count), backward = forward
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        for _ in 0..<steps {
            var x = batch
            for (i, layer) in layers.enumerated() {
                let t = now()
                x = layer.layer.forward(x, training: training)
                forward[i].append(Double(now() - t) / 1e6)
            }
            guard training else { continue }
            _ = labels.withUnsafeBufferPointer { model.loss.evaluate(output: x, labels: $0, computeGradient: true) }
            var g = model.loss.gradient
            for (i, layer) in layers.enumerated().reversed() {
                let t = now()
                g = layer.layer.backward(g)
                backward[i].append(Double(now() - t) / 1e6)
            }
        }
        func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }
        print("layer".padding(toLength: 22, withPad: " ", startingAt: 0) + "forward ms".leftPad(12) + (training ? "backward ms".leftPad(13) : ""))
        for (i, layer) in layers.enumerated() {
            print(layer.name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%12.4f", median(forward[i]))
                  + (training ? String(format: "%13.4f", median(backward[i])) : ""))
        }
    }

    /// The best of a few 1024 x 1024 x 1024 GEMMs on the configured threads, in GFLOP/s.
    static func gemmPeak() -> Double {
        let n = 1024
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            Gemm.multiply(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}

extension InstructionSet: ExpressibleByArgument {}
