// Kernel benchmark: GFLOP/s of the GEMM at square sizes and at the GEMM shapes that the classic networks' layers
// produce, on 1 and 2 threads. The layer shapes are not written down by hand: each workload of the speed issue's goal
// table (a training step or an inference pass) runs layer by layer with the engine's GEMM trace on, and every
// distinct product that each layer sends, forward and backward, is measured, with its share of the workload's GEMM
// work and the thread count the layer gave it. Medians of repeated runs; `--json` for scripts.
//
//     swift run -c release kernel-bench [--json] [--quick] [--list] [--isa portable|avx2|avx512]
//                                       [--models lenet5,alexnet-cifar,vgg16|none] [--shape OP,M,N,K]
import CNNKernels
import ClassicCNN
import ClassicCNNEngine  // directly too: a change in the engine then rebuilds this (through the umbrella alone it did not)
import Foundation

struct Shape {
    let name: String
    let m: Int, n: Int, k: Int
    let transposeA: Bool, transposeB: Bool
    /// The workload and the layer and pass (`features.2 backward`) that send this product.
    var workload = "", layer = ""
    /// That pass's calls of this shape, their share of the workload's GEMM multiply-adds, and the threads its layer used.
    var calls = 1, share = 1.0, layerThreads = 0
}

/// The distinct GEMMs that each layer of `model` sends in one step at `batch` (training: forward, then backward), with
/// their share of the step's GEMM work. The layers run one at a time as their `Sequential` runs them, so they send
/// the same products as in `Model.trainStep`.
func traced(_ model: String, batch: Int, training: Bool, classes: Int? = nil) throws -> [Shape] {
    let network = try ModelZoo.make(model, classes: classes)
    var rng = RandomGenerator(seed: 1)
    let count = batch * network.inputShape.reduce(1, *)
    let images = Tensor(shape: [batch] + network.inputShape, values: (0..<count).map { _ in rng.nextFloat() })
    let labels = (0..<batch).map { Int32($0 % network.configuration.classes) }
    let workload = "\(model) \(training ? "train" : "infer") b\(batch)"
    let layers = network.leafLayers()  // Sequentials opened, as featureMaps walks them
    var shapes: [Shape] = []
    func record(_ label: String, _ pass: () -> Void) {
        cnn_gemm_trace_begin()
        pass()
        var found = [cnn_gemm_shape](repeating: cnn_gemm_shape(), count: 1024)
        let distinct = Int(cnn_gemm_trace_end(&found, Int32(found.count)))
        precondition(distinct <= found.count, "more than \(found.count) distinct GEMM shapes in \(workload) \(label)")
        // Sorted: the threads of a layer's batch report their products in either order.
        let sorted = found[..<distinct].sorted {
            ($0.trans_a, $0.trans_b, $0.m, $0.n, $0.k, $0.threads) < ($1.trans_a, $1.trans_b, $1.m, $1.n, $1.k, $1.threads)
        }
        shapes += sorted.map { s in
            Shape(name: "\(workload) \(label)", m: Int(s.m), n: Int(s.n), k: Int(s.k), transposeA: s.trans_a != 0,
                  transposeB: s.trans_b != 0, workload: workload, layer: label, calls: s.calls, layerThreads: Int(s.threads))
        }
    }
    for round in 0..<2 {  // the first round lets buffers and plans settle; the second is traced
        var x = images
        for (path, layer) in layers {
            if round == 0 { x = layer.forward(x, training: training) } else { record("\(path) forward") { x = layer.forward(x, training: training) } }
        }
        guard training else { continue }
        _ = labels.withUnsafeBufferPointer { network.loss.evaluate(output: x, labels: $0, computeGradient: true) }
        var g = network.loss.gradient
        for (path, layer) in layers.reversed() {
            if round == 0 { g = layer.backward(g) } else { record("\(path) backward") { g = layer.backward(g) } }
        }
    }
    let work = shapes.map { Double($0.m) * Double($0.n) * Double($0.k) * Double($0.calls) }
    let total = max(work.reduce(0, +), 1)
    for i in shapes.indices { shapes[i].share = work[i] / total }
    return shapes
}

let arguments = CommandLine.arguments
let json = arguments.contains("--json")
let quick = arguments.contains("--quick")
// --isa measures a slower instruction set on this CPU (clamped to what it supports).
if let flag = arguments.firstIndex(of: "--isa"), flag + 1 < arguments.count {
    let names: [String: cnn_isa] = ["portable": CNN_ISA_PORTABLE, "avx2": CNN_ISA_AVX2, "avx512": CNN_ISA_AVX512]
    guard let isa = names[arguments[flag + 1]] else {
        FileHandle.standardError.write(Data("--isa must be portable, avx2 or avx512\n".utf8))
        exit(64)
    }
    cnn_isa_select(isa)
}

var shapes: [Shape] = [512, 1024, 2048].map { Shape(name: "square \($0)", m: $0, n: $0, k: $0, transposeA: false, transposeB: false) }
// The goal table's workloads (the speed issue): LeNet-5 training at 32 and 128 and inference at 1000, AlexNet (CIFAR
// widths at 224) training at 32, VGG16 training at 16. Inference passes of AlexNet and VGG16 send the same products
// as their training steps' forward passes.
var chosen = ["lenet5", "alexnet-cifar", "vgg16"]
if let flag = arguments.firstIndex(of: "--models"), flag + 1 < arguments.count {
    chosen = arguments[flag + 1] == "none" ? [] : arguments[flag + 1].split(separator: ",").map(String.init)
}
// VGG16 with 10 classes, as the side-by-side harness runs it.
let workloads: [(String, Int, Bool, Int?)] = [("lenet5", 32, true, nil), ("lenet5", 128, true, nil), ("lenet5", 1000, false, nil),
                                              ("alexnet-cifar", 32, true, nil), ("vgg16", 16, true, 10)]
for name in chosen where !workloads.contains(where: { $0.0 == name }) {
    FileHandle.standardError.write(Data("--models: no workload for '\(name)'; choose from lenet5, alexnet-cifar, vgg16 or none\n".utf8))
    exit(64)
}
// --shape NT,M,N,K measures one product only (for work on the kernel).
if let flag = arguments.firstIndex(of: "--shape"), flag + 1 < arguments.count {
    let parts = arguments[flag + 1].split(separator: ",").map(String.init)
    guard parts.count == 4, parts[0].count == 2, let m = Int(parts[1]), let n = Int(parts[2]), let k = Int(parts[3]), m > 0, n > 0, k > 0 else {
        FileHandle.standardError.write(Data("--shape takes OP,M,N,K with OP one of NN, NT, TN, TT, got '\(arguments[flag + 1])'\n".utf8))
        exit(64)
    }
    shapes = [Shape(name: "given", m: m, n: n, k: k, transposeA: parts[0].hasPrefix("T"), transposeB: parts[0].hasSuffix("T"))]
    chosen = []
}
for (model, batch, training, classes) in workloads where chosen.contains(model) {
    shapes += try traced(model, batch: batch, training: training, classes: classes)
}
if arguments.contains("--list") {
    for s in shapes {
        print(s.name.padding(toLength: 48, withPad: " ", startingAt: 0) + "\(s.transposeA ? "T" : "N")\(s.transposeB ? "T" : "N") "
              + "\(s.m) x \(s.n) x \(s.k)".padding(toLength: 22, withPad: " ", startingAt: 0)
              + String(format: "%6d calls %6.1f%% of the work, layer threads %d", s.calls, 100 * s.share, s.layerThreads))
    }
    exit(0)
}

struct Result: Encodable {
    let shape: String, m: Int, n: Int, k: Int, transpose_a: Bool, transpose_b: Bool, threads: Int, gflops: Double
    let workload: String, layer: String, calls: Int, share: Double, layer_threads: Int
}

func measure(_ s: Shape, threads: Int) -> Double {
    let a = [Float](repeating: 0.5, count: s.m * s.k), b = [Float](repeating: 0.25, count: s.k * s.n)
    var c = [Float](repeating: 0, count: s.m * s.n)
    let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
    // Enough repetitions for about 0.2 s per measurement (0.05 s with --quick), at least 3.
    let once: () -> Void = {
        Gemm.multiply(transposeA: s.transposeA, transposeB: s.transposeB, m: s.m, n: s.n, k: s.k,
                      a: a, lda: s.transposeA ? s.m : s.k, b: b, ldb: s.transposeB ? s.k : s.n,
                      c: &c, ldc: s.n, threads: threads)
    }
    once()
    let start = DispatchTime.now().uptimeNanoseconds
    once()
    let single = max(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, 1e-7)
    let repetitions = max(3, min(1000, Int((quick ? 0.05 : 0.2) / single)))
    var times: [Double] = []
    for _ in 0..<repetitions {
        let t = DispatchTime.now().uptimeNanoseconds
        once()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
    }
    return flops / times.sorted()[times.count / 2] / 1e9
}

var results: [Result] = []
if !json {
    print("GEMM, \(String(cString: cnn_isa_name(cnn_isa_active()))) micro-kernel, GFLOP/s (median)")
    print("shape".padding(toLength: 48, withPad: " ", startingAt: 0) + "op M x N x K".padding(toLength: 25, withPad: " ", startingAt: 0)
          + "work".leftPadded(7) + "layer".leftPadded(6) + "1 thread".leftPadded(10) + "2 threads".leftPadded(11))
}
for shape in shapes {
    let one = measure(shape, threads: 1), two = measure(shape, threads: 2)
    for (threads, gflops) in [(1, one), (2, two)] {
        results.append(Result(shape: shape.name, m: shape.m, n: shape.n, k: shape.k, transpose_a: shape.transposeA,
                              transpose_b: shape.transposeB, threads: threads, gflops: gflops, workload: shape.workload, layer: shape.layer, calls: shape.calls,
                              share: shape.share, layer_threads: shape.layerThreads))
    }
    if !json {
        print(shape.name.padding(toLength: 48, withPad: " ", startingAt: 0)
              + "\(shape.transposeA ? "T" : "N")\(shape.transposeB ? "T" : "N") \(shape.m) x \(shape.n) x \(shape.k)".padding(toLength: 25, withPad: " ", startingAt: 0)
              + String(format: "%6.1f%%", 100 * shape.share) + (shape.layerThreads == 0 ? "" : "\(shape.layerThreads)t").leftPadded(6)
              + String(format: "%10.1f%11.1f", one, two))
    }
}
if json {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(results), as: UTF8.self))
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
