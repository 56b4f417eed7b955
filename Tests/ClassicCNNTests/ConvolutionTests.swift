// Every convolution algorithm (direct, Winograd, fully connected, lowered in batches or in bands) against the naive
// convolution and its gradients, on awkward shapes, on 1 and 2 threads; and the plan's choices.
import CNNKernels
import Testing
import TestSupport
import ClassicCNNEngine

@Suite("Convolution algorithms against the naive convolution")
struct ConvolutionTests {
    struct Shape: CustomStringConvertible, Sendable {
        var n: Int, c: Int, h: Int, w: Int, co: Int, groups = 1, kernel: (Int, Int), stride = (1, 1)
        var padding: Padding = .valid
        var description: String {
            "\(n)x\(c)x\(h)x\(w) -> \(co), \(kernel.0)x\(kernel.1)/\(stride.0),\(stride.1), groups \(groups), \(padding)"
        }
    }

    static let shapes: [Shape] = [
        Shape(n: 2, c: 1, h: 32, w: 32, co: 6, kernel: (5, 5)),                                    // LeNet's C1: direct
        Shape(n: 3, c: 16, h: 11, w: 9, co: 17, kernel: (3, 3), padding: .uniform(1)),              // Winograd 3x3, partial tiles
        Shape(n: 2, c: 16, h: 10, w: 13, co: 16, kernel: (5, 5), padding: .uniform(2)),             // Winograd 5x5
        Shape(n: 3, c: 16, h: 5, w: 5, co: 7, kernel: (5, 5)),                                      // LeNet's conv3: fully connected
        Shape(n: 2, c: 6, h: 9, w: 7, co: 4, groups: 2, kernel: (3, 2), stride: (2, 1),
              padding: .explicit(top: 1, left: 0, bottom: 2, right: 1)),                           // groups, asymmetric
        Shape(n: 5, c: 8, h: 6, w: 6, co: 12, kernel: (1, 1)),                                      // pointwise
        Shape(n: 8, c: 4, h: 6, w: 6, co: 5, kernel: (3, 3)),                                       // several images per GEMM
        Shape(n: 1, c: 3, h: 150, w: 150, co: 8, kernel: (7, 7), stride: (2, 2), padding: .uniform(3)), // bands of rows
        Shape(n: 3, c: 16, h: 9, w: 9, co: 16, kernel: (3, 3), padding: .same),                     // Winograd, same
        Shape(n: 5, c: 32, h: 4, w: 4, co: 24, kernel: (3, 3), padding: .uniform(1)),              // one whole tile: VGG's 4x4
        Shape(n: 6, c: 32, h: 2, w: 2, co: 24, kernel: (3, 3), padding: .uniform(1)),              // 2x2: the share in one GEMM
        Shape(n: 3, c: 6, h: 14, w: 14, co: 16, kernel: (5, 5)),                                    // LeNet's conv2: directChannels on AVX2
        Shape(n: 2, c: 5, h: 10, w: 12, co: 20, kernel: (4, 4)),                                    // ... a partial block of channels
    ]

    /// The naive input gradient: dx[n, ci, iy, ix] += w[co, ci - g * cg, ky, kx] * dy[n, co, oy, ox] over every
    /// window that reads (iy, ix).
    static func naiveInputGradient(_ s: Shape, _ g: WindowGeometry, weight: [Float], dy: [Float]) -> [Float] {
        let (cg, cog, oh, ow) = (s.c / s.groups, s.co / s.groups, g.outputHeight, g.outputWidth)
        var dx = [Double](repeating: 0, count: s.n * s.c * s.h * s.w)
        for n in 0..<s.n {
            for co in 0..<s.co {
                let group = co / cog
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let d = Double(dy[((n * s.co + co) * oh + oy) * ow + ox])
                        for ci in 0..<cg {
                            for ky in 0..<s.kernel.0 {
                                let iy = oy * s.stride.0 - g.padTop + ky
                                guard iy >= 0 && iy < s.h else { continue }
                                for kx in 0..<s.kernel.1 {
                                    let ix = ox * s.stride.1 - g.padLeft + kx
                                    guard ix >= 0 && ix < s.w else { continue }
                                    let wv = Double(weight[((co * cg + ci) * s.kernel.0 + ky) * s.kernel.1 + kx])
                                    dx[((n * s.c + group * cg + ci) * s.h + iy) * s.w + ix] += wv * d
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx.map(Float.init)
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    }

    /// Forward, weight, bias and input gradients of `algorithm` against the naive ones.
    static func check(_ s: Shape, _ algorithm: ConvolutionPlan.Algorithm, threads: Int) throws {
        let conv = Conv2D(inputChannels: s.c, outputChannels: s.co, kernelSize: s.kernel, stride: s.stride, padding: s.padding,
                          groups: s.groups)
        var rng = RandomGenerator(seed: 7)
        conv.resetParameters(using: &rng)
        conv.bias!.value = randomTensor([s.co], seed: 8)
        conv.forcedAlgorithm = algorithm
        let x = randomTensor([s.n, s.c, s.h, s.w], seed: 9)
        let g = conv.plan(for: x.shape).geometry
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let dy = randomTensor([s.n, s.co, oh, ow], seed: 10)
        let (y, dx) = EngineOptions(threads: threads).run { () -> (Tensor, Tensor) in
            let y = Tensor(copying: conv.forward(x, training: true))
            conv.weight.zeroGradient()
            conv.bias!.zeroGradient()
            return (y, Tensor(copying: conv.backward(dy)))
        }
        #expect(conv.plan(for: x.shape).forward == algorithm)

        var naiveY = [Float](repeating: 0, count: s.n * s.co * oh * ow)
        var naiveW = [Float](repeating: 0, count: conv.weight.count)
        var naiveB = [Float](repeating: 0, count: s.co)
        let (xs, ws, bs, dys) = (x.values, conv.weight.value.values, conv.bias!.value.values, dy.values)
        for n in 0..<s.n {
            xs.withUnsafeBufferPointer { xp in
                dys.withUnsafeBufferPointer { dyp in
                    let image = xp.baseAddress! + n * s.c * s.h * s.w, grad = dyp.baseAddress! + n * s.co * oh * ow
                    naiveY.withUnsafeMutableBufferPointer { yp in
                        cnn_conv2d_naive(image, Int32(s.c), Int32(s.h), Int32(s.w), ws, bs, Int32(s.co), Int32(s.groups),
                                         Int32(s.kernel.0), Int32(s.kernel.1), Int32(s.stride.0), Int32(s.stride.1),
                                         Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow), yp.baseAddress! + n * s.co * oh * ow)
                    }
                    cnn_conv2d_weight_gradient_naive(image, Int32(s.c), Int32(s.h), Int32(s.w), grad, Int32(s.co), Int32(s.groups),
                                                     Int32(s.kernel.0), Int32(s.kernel.1), Int32(s.stride.0), Int32(s.stride.1),
                                                     Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow), &naiveW)
                }
            }
            for co in 0..<s.co { for i in 0..<(oh * ow) { naiveB[co] += dys[(n * s.co + co) * oh * ow + i] } }
        }
        let naiveDX = naiveInputGradient(s, g, weight: ws, dy: dys)
        let what = "\(s), \(algorithm), \(threads) thread(s)"
        #expect(relativeError(y.values, naiveY) < 1e-4, "forward: \(what)")
        #expect(relativeError(conv.weight.gradient.values, naiveW) < 1e-3, "weight gradient: \(what)")
        #expect(relativeError(conv.bias!.gradient.values, naiveB) < 1e-4, "bias gradient: \(what)")
        #expect(relativeError(dx.values, naiveDX) < 1e-4, "input gradient: \(what)")
    }

    @Test("each applicable algorithm equals the naive convolution", arguments: 0..<shapes.count)
    func algorithmsEqualTheNaiveConvolution(_ index: Int) throws {
        let s = Self.shapes[index]
        let conv = Conv2D(inputChannels: s.c, outputChannels: s.co, kernelSize: s.kernel, stride: s.stride, padding: s.padding,
                          groups: s.groups)
        let shape = [s.n, s.c, s.h, s.w]
        let g = conv.plan(for: shape).geometry
        let algorithms = ConvolutionPlan.Algorithm.allCases.filter {
            ConvolutionPlan.applies($0, to: conv, inputShape: shape, geometry: g, winogradAllowed: true)
        }
        #expect(algorithms.contains(.lowered))
        for algorithm in algorithms {
            for threads in [1, 2] { try Self.check(s, algorithm, threads: threads) }
        }
    }

    /// The shapes above reach every algorithm and both ways of lowering (on a CPU with the direct kernels).
    @Test func theShapesCoverEveryPath() {
        var seen = Set<String>()
        for s in Self.shapes {
            let conv = Conv2D(inputChannels: s.c, outputChannels: s.co, kernelSize: s.kernel, stride: s.stride, padding: s.padding,
                              groups: s.groups)
            let plan = EngineOptions(threads: 2).run { conv.plan(for: [s.n, s.c, s.h, s.w]) }
            seen.insert("\(plan.forward)")
            seen.insert("\(plan.backward)")
            if plan.band < plan.geometry.outputHeight { seen.insert("bands") }
            if plan.span > 1 { seen.insert("spans") }
            if plan.pointwise { seen.insert("pointwise") }
        }
        var expected: Set<String> = ["winograd", "fullyConnected", "lowered", "bands", "spans", "pointwise"]
        if cnn_isa_detected() == CNN_ISA_AVX512 { expected.insert("direct") }
        if cnn_isa_active() == CNN_ISA_AVX2 { expected.insert("directChannels") }
        #expect(expected.isSubset(of: seen), "seen: \(seen.sorted())")
    }

    /// The plan prefers what it did inline before plans existed: forward direct, Winograd, fully connected, lowered;
    /// backward fully connected, Winograd, direct weight gradient, lowered.
    @Test func thePlanChoosesAsBefore() {
        let winograd = Conv2D(inputChannels: 16, outputChannels: 16, kernelSize: 3, padding: .uniform(1))
        let plan = winograd.plan(for: [2, 16, 12, 12])
        #expect(plan.forward == .winograd && plan.backward == .winograd)
        let small = winograd.plan(for: [2, 16, 7, 7])
        #expect(small.forward == .lowered && small.backward == .lowered)
        // A 4x4 output is one whole F(4x4, 3x3) tile: Winograd. A 2x2 one is lowered, each thread's share of the batch
        // in one GEMM.
        #expect(winograd.plan(for: [2, 16, 4, 4]).forward == .winograd)
        let tiny = EngineOptions(threads: 2).run { winograd.plan(for: [128, 16, 2, 2]) }
        #expect(tiny.forward == .lowered && tiny.span == 64 && tiny.chunks == 2)
        let off = EngineOptions(winograd: false).run { winograd.plan(for: [2, 16, 12, 12]) }
        #expect(off.forward == .lowered)
        let whole = Conv2D(inputChannels: 16, outputChannels: 120, kernelSize: 5)
        #expect(whole.plan(for: [4, 16, 5, 5]).backward == .fullyConnected)
    }
}
