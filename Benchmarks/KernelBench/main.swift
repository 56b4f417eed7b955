// Kernel benchmark: GFLOP/s of the GEMM at square sizes and at the GEMM shapes that the classic networks' layers
// produce, forward and backward, on 1 and 2 threads. Medians of repeated runs; `--json` for scripts.
//
//     swift run -c release kernel-bench [--json] [--quick] [--isa portable|avx2|avx512]
import CNNKernels
import ClassicCNN
import Foundation

struct Shape {
    let name: String
    let m: Int, n: Int, k: Int
    let transposeA: Bool, transposeB: Bool
}

/// A convolution layer as the three GEMMs of its training step, per image (C_out x P output, K = C_in * kh * kw).
func convolution(_ name: String, cout: Int, p: Int, k: Int, images: Int = 1) -> [Shape] {
    [
        Shape(name: "\(name) forward", m: cout, n: p * images, k: k, transposeA: false, transposeB: false),
        Shape(name: "\(name) backward-data", m: k, n: p * images, k: cout, transposeA: true, transposeB: false),
        Shape(name: "\(name) backward-weights", m: cout, n: k, k: p * images, transposeA: false, transposeB: true),
    ]
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
// LeNet-5 at batch 32, 16 images per thread, as Conv2D batches them (13, 16 and 16 images per GEMM).
shapes += convolution("lenet5 conv1", cout: 6, p: 784, k: 25, images: 13)
shapes += convolution("lenet5 conv2", cout: 16, p: 100, k: 150, images: 16)
shapes += convolution("lenet5 conv3", cout: 120, p: 1, k: 400, images: 16)
shapes.append(Shape(name: "lenet5 fc1 forward", m: 32, n: 84, k: 120, transposeA: false, transposeB: true))
// AlexNet (torchvision / Keras CIFAR widths at 224) and VGG16 (D), one image per GEMM.
shapes += convolution("alexnet conv1 11x11/4", cout: 96, p: 55 * 55, k: 3 * 121)
shapes += convolution("alexnet conv2 5x5", cout: 256, p: 27 * 27, k: 96 * 25)
shapes += convolution("alexnet conv3 3x3", cout: 384, p: 13 * 13, k: 256 * 9)
shapes.append(Shape(name: "alexnet fc6 forward (batch 32)", m: 32, n: 4096, k: 9216, transposeA: false, transposeB: true))
shapes += convolution("vgg16 conv1_2", cout: 64, p: 224 * 224, k: 64 * 9)
shapes += convolution("vgg16 conv3_3", cout: 256, p: 56 * 56, k: 256 * 9)
shapes += convolution("vgg16 conv5_3", cout: 512, p: 14 * 14, k: 512 * 9)
shapes.append(Shape(name: "vgg16 fc6 forward (batch 16)", m: 16, n: 4096, k: 25088, transposeA: false, transposeB: true))

struct Result: Encodable {
    let shape: String, m: Int, n: Int, k: Int, transpose_a: Bool, transpose_b: Bool, threads: Int, gflops: Double
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
    print("shape".padding(toLength: 42, withPad: " ", startingAt: 0) + "M x N x K".padding(toLength: 22, withPad: " ", startingAt: 0)
          + "1 thread".leftPadded(10) + "2 threads".leftPadded(11))
}
for shape in shapes {
    let one = measure(shape, threads: 1), two = measure(shape, threads: 2)
    for (threads, gflops) in [(1, one), (2, two)] {
        results.append(Result(shape: shape.name, m: shape.m, n: shape.n, k: shape.k, transpose_a: shape.transposeA,
                              transpose_b: shape.transposeB, threads: threads, gflops: gflops))
    }
    if !json {
        print(shape.name.padding(toLength: 42, withPad: " ", startingAt: 0)
              + "\(shape.m) x \(shape.n) x \(shape.k)".padding(toLength: 22, withPad: " ", startingAt: 0)
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
