// The fast kernels against their naive twins, on awkward shapes, for every instruction set this CPU has.
import CNNKernels
import Testing
import TestSupport
import ClassicCNNEngine

@Suite("Kernels against their naive twins")
struct KernelTests {
    static var instructionSets: [cnn_isa] {
        [CNN_ISA_PORTABLE, CNN_ISA_AVX2, CNN_ISA_AVX512].filter { $0.rawValue <= cnn_isa_detected().rawValue }
    }

    static let gemmShapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (3, 5, 7), (12, 32, 1), (13, 33, 17), (6, 784, 25), (120, 1, 400), (64, 64, 300),
        (1, 1000, 257), (200, 37, 513), (5, 3100, 9),
        (7, 70, 300), (16, 66, 272),  // few rows against B^T: the dot-product path (partial 4x4 blocks, with and without a K tail)
        (9, 3, 260), (30, 10, 513),  // ... and with fewer columns than a 4x4 block
        (200, 16, 40), (70, 9, 300), (25, 13, 513),  // at most 16 columns: the 16-wide micro-kernels, K across KC blocks
        (13, 70, 300), (32, 200, 100),  // few rows against B read where it lies (AVX2), with partial slivers of A and B
        (200, 16, 300), (97, 29, 600), (61, 200, 300),  // many rows against few columns: A read where it lies (AVX2), partial slivers
        (30, 1030, 40), (10, 200, 16),  // few rows against B: copied sliver by sliver (above 24 rows, rows 4 KB apart), a shallow K
        (16, 200, 10), (4, 100, 300), (17, 90, 70), (11, 64, 600),  // ... copied below 16 rows of B; a last sliver of 1-5 rows straight into C
    ]

    @Test("sgemm equals the naive product", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemm(_ transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        for isa in Self.instructionSets {
            for (m, n, k) in Self.gemmShapes {
                let a = randomTensor([m * k], seed: 1).values, b = randomTensor([k * n], seed: 2).values
                let c0 = randomTensor([m * n], seed: 3).values
                var fast = c0, slow = c0
                let lda = ta ? m : k, ldb = tb ? k : n
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-1, 0.25)] {
                    fast = c0
                    slow = c0
                    cnn_sgemm_isa(isa, ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, &fast, Int32(n))
                    cnn_sgemm_naive(ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, &slow, Int32(n))
                    let error = zip(fast, slow).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                    #expect(error < 1e-4, "\(String(cString: cnn_isa_name(isa))) \(m)x\(n)x\(k) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta): \(error)")
                }
            }
        }
    }

    @Test("A packed once gives the same product as cnn_sgemm, bit for bit", arguments: [false, true])
    func prepackedGemm(_ transposeA: Bool) {
        // Rows on each side of a sliver and of MC (192), columns with a partial tile, K across two KC blocks (256).
        // And at most 16 columns, where the 16-wide micro-kernels take the same packed A.
        for (m, n, k) in [(1, 5, 3), (13, 33, 17), (24, 64, 300), (193, 70, 513), (7, 70, 300), (193, 16, 513), (13, 5, 17)] {
            let a = randomTensor([m * k], seed: 6).values, b = randomTensor([k * n], seed: 7).values
            let lda = transposeA ? m : k
            var packed = [Float](repeating: .nan, count: cnn_sgemm_packed_a_size(Int32(m), Int32(k)))
            cnn_sgemm_pack_a(transposeA ? 1 : 0, Int32(m), Int32(k), a, Int32(lda), &packed)
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1)] {
                let c0 = randomTensor([m * n], seed: 8).values
                var once = c0, each = c0, slow = c0
                cnn_sgemm_packed(Int32(m), Int32(n), Int32(k), alpha, packed, 0, b, Int32(n), beta, &once, Int32(n))
                cnn_sgemm(transposeA ? 1 : 0, 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(n), beta, &each, Int32(n))
                cnn_sgemm_naive(transposeA ? 1 : 0, 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(n), beta, &slow, Int32(n))
                #expect(once.map(\.bitPattern) == each.map(\.bitPattern), "\(m)x\(n)x\(k) transposeA=\(transposeA)")
                #expect(zip(once, slow).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4)
            }
        }
    }

    @Test func gemmTraceCountsTheShapesAsTheCallerSendsThem() {
        // Other tests may run GEMMs meanwhile, so the trace is checked for what this test sent, not for nothing else.
        let (m, n, k) = (37, 300, 123)
        let a = randomTensor([m * k], seed: 4).values, b = randomTensor([n * k], seed: 5).values
        var c = [Float](repeating: 0, count: m * n)
        cnn_gemm_trace_begin()
        for _ in 0..<3 { Gemm.multiply(transposeB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n, threads: 2) }
        var shapes = [cnn_gemm_shape](repeating: cnn_gemm_shape(), count: 1024)
        let count = Int(cnn_gemm_trace_end(&shapes, Int32(shapes.count)))
        let mine = shapes[..<min(count, shapes.count)].first { $0.m == m && $0.n == n && $0.k == k }
        #expect(mine?.trans_a == 0 && mine?.trans_b == 1)
        #expect(mine?.calls == 3, "one call per product, not per thread's share")
        #expect(mine?.threads == 2, "1.4 million multiply-adds are split over the 2 threads asked for")
        // A new trace starts empty.
        cnn_gemm_trace_begin()
        let again = Int(cnn_gemm_trace_end(&shapes, Int32(shapes.count)))
        #expect(!shapes[..<min(again, shapes.count)].contains { $0.m == m && $0.n == n && $0.k == k })
    }

    @Test("Dropout's vectorised mask equals its naive twin, element for element", arguments: [1, 15, 16, 17, 1000])
    func dropoutMask(_ count: Int) {
        let seeds: [UInt64] = (0..<16).map { 0x9E37_79B9 &* UInt64($0 + 1) }
        let x = randomTensor([count], seed: 9).values
        var y = [Float](repeating: .nan, count: count + 1), mask = y
        cnn_dropout_forward(x, &y, &mask, count, 0.6, seeds)
        let naive = Dropout.naiveMask(count: count, rate: 0.4, seeds: seeds)
        #expect(Array(mask[..<count]) == naive)
        #expect(Array(y[..<count]) == zip(x, naive).map { $0 * $1 })
        #expect(mask[count].isNaN && y[count].isNaN, "nothing written past the end")
        #expect(Set(naive).isSubset(of: [0, 1 / Float(0.6)]))
        if count == 1000 {
            let kept = naive.filter { $0 > 0 }.count
            #expect((540...660).contains(kept), "about 60% kept: \(kept)")
        }
    }

    @Test func dropoutLayerDrawsNewMasksAndMasksTheGradient() {
        let layer = Dropout(rate: 0.5)
        layer.rng = RandomGenerator(seed: 3)
        let x = Tensor(shape: [4, 100], values: [Float](repeating: 1, count: 400))
        let first = layer.forward(x, training: true).values
        let dx = layer.backward(Tensor(shape: [4, 100], values: [Float](repeating: 3, count: 400))).values
        #expect(dx == first.map { $0 * 3 }, "the gradient passes where the input did, scaled alike")
        let second = layer.forward(x, training: true).values
        #expect(first != second, "each step draws a new mask")
        layer.rng = RandomGenerator(seed: 3)
        #expect(layer.forward(x, training: true).values == first, "the same generator state gives the same mask")
    }

    @Test("softmax cross-entropy equals its naive twin", arguments: [(1, 1), (3, 10), (2, 16), (4, 17), (2, 1000)])
    func softmaxCrossEntropy(_ size: (n: Int, classes: Int)) {
        let (n, classes) = size
        // Logits spread over +-60, so that some exponentials reach the clamp at -87.3 and some are tiny.
        let logits = randomTensor([n, classes], seed: 12).values.map { $0 * 60 }
        var labels = (0..<n).map { Int32(($0 * 7) % classes) }
        if n > 2 { labels[2] = Int32(classes) }  // a label past the classes: no class is the target's
        for smoothing in [Float(0), 0.1] {
            let loss = SoftmaxCrossEntropy(labelSmoothing: smoothing)
            let fast = labels.withUnsafeBufferPointer { loss.evaluate(output: Tensor(shape: [n, classes], values: logits), labels: $0, computeGradient: true) }
            let (slow, slowGradient) = SoftmaxCrossEntropy.naive(logits: logits, labels: labels, classes: classes, labelSmoothing: smoothing)
            #expect(abs(fast - slow) <= 1e-5 * max(1, abs(slow)), "loss \(fast) vs \(slow)")
            let error = zip(loss.gradient.values, slowGradient).map { abs($0 - $1) }.max() ?? 0
            #expect(error < 1e-6, "gradient differs by \(error)")
        }
        // A logit that is not finite makes the loss and the gradient NaN, as a plain exp would.
        var poisoned = logits
        poisoned[0] = .nan
        let loss = SoftmaxCrossEntropy()
        let value = labels.withUnsafeBufferPointer { loss.evaluate(output: Tensor(shape: [n, classes], values: poisoned), labels: $0, computeGradient: true) }
        #expect(value.isNaN && loss.gradient.values[0].isNaN)
    }

    @Test func threadedGemmEqualsSingleThreaded() {
        let (m, n, k) = (150, 700, 90)
        let a = randomTensor([m * k], seed: 4).values, b = randomTensor([k * n], seed: 5).values
        var one = [Float](repeating: 0, count: m * n), two = one
        Gemm.multiply(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &one, ldc: n, threads: 1)
        Gemm.multiply(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &two, ldc: n, threads: 2)
        #expect(one == two, "splitting the columns must not change a single bit")
    }

    @Test func betaZeroIgnoresNaNInTheOutput() {
        var c = [Float](repeating: .nan, count: 4)
        cnn_sgemm(0, 0, 2, 2, 1, 1, [1, 2], 1, [3, 4], 2, 0, &c, 2)
        #expect(c == [3, 4, 6, 8])
    }

    static let convolutions: [(c: Int, h: Int, w: Int, co: Int, groups: Int, kernel: (Int, Int), stride: (Int, Int), padding: Padding)] = [
        (1, 32, 32, 6, 1, (5, 5), (1, 1), .valid),
        (3, 17, 13, 8, 1, (11, 11), (4, 4), .uniform(2)),
        (4, 9, 9, 6, 2, (3, 3), (1, 1), .uniform(1)),
        (5, 7, 6, 3, 1, (1, 1), (1, 1), .valid),
        (3, 8, 8, 4, 1, (1, 1), (2, 2), .valid),
        (2, 10, 11, 3, 1, (1, 7), (1, 1), .same),
        (2, 10, 11, 3, 1, (7, 1), (2, 2), .same),
        (6, 5, 5, 12, 3, (3, 3), (2, 2), .explicit(top: 0, left: 1, bottom: 1, right: 0)),
        (2, 17, 17, 4, 1, (1, 7), (1, 1), .same),
        (2, 9, 9, 3, 1, (3, 3), (1, 1), .symmetric(height: 1, width: 0)),
        (16, 5, 5, 12, 1, (5, 5), (1, 1), .valid),  // the kernel covers the input: the fully connected path
    ]

    @Test("Conv2D (im2col + GEMM) equals the direct convolution", arguments: 0..<convolutions.count)
    func convolution(_ index: Int) throws {
        let spec = Self.convolutions[index]
        for batch in [1, 3] {
            let conv = Conv2D(inputChannels: spec.c, outputChannels: spec.co, kernelSize: spec.kernel, stride: spec.stride,
                              padding: spec.padding, groups: spec.groups)
            var rng = RandomGenerator(seed: 9)
            conv.resetParameters(using: &rng)
            conv.bias!.value = randomTensor([spec.co], seed: 10)
            let x = randomTensor([batch, spec.c, spec.h, spec.w], seed: 11)
            let y = conv(x)
            let (top, left, bottom, right) = spec.padding.amounts(height: spec.h, width: spec.w, kernel: spec.kernel, stride: spec.stride)
            // PyTorch's formula, independently of the layer's own geometry.
            let (oh, ow) = ((spec.h + top + bottom - spec.kernel.0) / spec.stride.0 + 1, (spec.w + left + right - spec.kernel.1) / spec.stride.1 + 1)
            #expect(y.shape == [batch, spec.co, oh, ow], "case \(index)")
            let xs = x.values, ws = conv.weight.value.values, bs = conv.bias!.value.values
            let per = spec.c * spec.h * spec.w
            for image in 0..<batch {
                var expected = [Float](repeating: 0, count: spec.co * oh * ow)
                cnn_conv2d_naive(Array(xs[(image * per)..<((image + 1) * per)]), Int32(spec.c), Int32(spec.h), Int32(spec.w), ws, bs,
                                 Int32(spec.co), Int32(spec.groups), Int32(spec.kernel.0), Int32(spec.kernel.1),
                                 Int32(spec.stride.0), Int32(spec.stride.1), Int32(top), Int32(left), Int32(oh), Int32(ow), &expected)
                let got = Array(y.values[(image * expected.count)..<((image + 1) * expected.count)])
                let error = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(error < 1e-4, "case \(index), batch \(batch), image \(image): max error \(error)")
            }
        }
    }

    @Test("A large image lowered in bands of output rows equals the naive convolution, forward and backward", arguments: [1, 2])
    func bandedConvolution(_ batch: Int) throws {
        // 147 x 2,160 columns per group: bands of 39 and 9 output rows. Batch 1 splits each GEMM over the threads, batch
        // 2 the images (with the weights packed once).
        let (c, h, w, co, groups) = (6, 95, 90, 8, 2)
        let conv = Conv2D(inputChannels: c, outputChannels: co, kernelSize: 7, stride: 2, padding: .uniform(3), groups: groups)
        var rng = RandomGenerator(seed: 12)
        conv.resetParameters(using: &rng)
        conv.bias!.value = randomTensor([co], seed: 13)
        let x = randomTensor([batch, c, h, w], seed: 14)
        let y = Tensor(copying: conv.forward(x, training: true))
        let (oh, ow) = (48, 45)
        #expect(y.shape == [batch, co, oh, ow])
        let dy = randomTensor(y.shape, seed: 15)
        conv.weight.zeroGradient()
        conv.bias!.zeroGradient()
        let dx = Tensor(copying: conv.backward(dy))
        let (xs, ws, bs, dys) = (x.values, conv.weight.value.values, conv.bias!.value.values, dy.values)
        let (inPlane, outPlane) = (c * h * w, co * oh * ow)
        var expectedDW = [Float](repeating: 0, count: ws.count)
        var forwardWithoutBias = [Float](repeating: 0, count: batch * outPlane)
        for image in 0..<batch {
            let xi = Array(xs[(image * inPlane)..<((image + 1) * inPlane)]), dyi = Array(dys[(image * outPlane)..<((image + 1) * outPlane)])
            var expected = [Float](repeating: 0, count: outPlane), plain = expected
            cnn_conv2d_naive(xi, Int32(c), Int32(h), Int32(w), ws, bs, Int32(co), Int32(groups), 7, 7, 2, 2, 3, 3, Int32(oh), Int32(ow), &expected)
            cnn_conv2d_naive(xi, Int32(c), Int32(h), Int32(w), ws, nil, Int32(co), Int32(groups), 7, 7, 2, 2, 3, 3, Int32(oh), Int32(ow), &plain)
            forwardWithoutBias.replaceSubrange((image * outPlane)..<((image + 1) * outPlane), with: plain)
            let got = y.values[(image * outPlane)..<((image + 1) * outPlane)]
            #expect(zip(got, expected).map { abs($0 - $1) }.max()! < 1e-4, "image \(image)")
            cnn_conv2d_weight_gradient_naive(xi, Int32(c), Int32(h), Int32(w), dyi, Int32(co), Int32(groups), 7, 7, 2, 2, 3, 3,
                                             Int32(oh), Int32(ow), &expectedDW)
        }
        let dwError = zip(conv.weight.gradient.values, expectedDW).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(dwError < 1e-4, "weight gradient error \(dwError)")
        // The input gradient is the adjoint of the convolution: <dY, conv(x)> = <dX, x>.
        let lhs = zip(dys, forwardWithoutBias).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(dx.values, xs).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "<dY, conv x> = \(lhs), <dX, x> = \(rhs)")
    }

    /// Shapes the direct kernels take: LeNet's C1, a masked tail (OW = 17), two output-channel blocks (8 = 6 + 2),
    /// two kernel-column blocks for the weight gradient (5 = 4 + 1), several input channels; and for the 16-wide
    /// chunks' whole-chunk and tail paths: OW = 24 (a tail of exactly 8), 16 (no tail), 12 (only a tail).
    static let directShapes: [(c: Int, h: Int, w: Int, co: Int, kh: Int, kw: Int)] = [
        (1, 32, 32, 6, 5, 5), (3, 20, 19, 8, 3, 3), (2, 12, 40, 13, 4, 5), (1, 9, 24, 1, 1, 7),
        (2, 10, 28, 7, 3, 5), (1, 7, 18, 3, 3, 3), (1, 8, 14, 2, 2, 3),
    ]

    @Test("direct convolution equals the naive twins, on every instruction set the CPU has",
          arguments: 0..<directShapes.count)
    func directConvolution(_ index: Int) throws {
        let s = Self.directShapes[index]
        let (oh, ow) = (s.h - s.kh + 1, s.w - s.kw + 1)
        let x = randomTensor([s.c * s.h * s.w], seed: 31).values
        let w = randomTensor([s.co * s.c * s.kh * s.kw], seed: 32).values, b = randomTensor([s.co], seed: 33).values
        let dy = randomTensor([s.co * oh * ow], seed: 34).values
        var slow = [Float](repeating: 0, count: s.co * oh * ow)
        cnn_conv2d_naive(x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, Int32(s.co), 1, Int32(s.kh), Int32(s.kw), 1, 1, 0, 0, Int32(oh), Int32(ow), &slow)
        var slowW = [Float](repeating: 0.5, count: w.count)
        cnn_conv2d_weight_gradient_naive(x, Int32(s.c), Int32(s.h), Int32(s.w), dy, Int32(s.co), 1, Int32(s.kh), Int32(s.kw), 1, 1, 0, 0, Int32(oh), Int32(ow), &slowW)
        for isa in Self.instructionSets {
            let name = String(cString: cnn_isa_name(isa))
            // x86: AVX2 and AVX-512 have direct kernels; the portable path falls back to the naive convolution.
            #if arch(x86_64)
            #expect((cnn_conv2d_direct_available_isa(isa, Int32(s.c), Int32(s.kh), Int32(s.kw), Int32(ow)) != 0) == (isa != CNN_ISA_PORTABLE), "\(name)")
            #endif
            var fast = [Float](repeating: 0, count: s.co * oh * ow)
            cnn_conv2d_direct_forward_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, 0, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &fast)
            #expect(zip(fast, slow).map { abs($0 - $1) }.max()! < 1e-4, "\(name)")
            // With the fused ReLU: exactly max(0, .) of the same sums.
            var rectified = [Float](repeating: .nan, count: fast.count)
            cnn_conv2d_direct_forward_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, 1, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &rectified)
            #expect(rectified == fast.map { max(0, $0) }, "\(name)")
            #expect(rectified.contains(0) && rectified.contains { $0 > 0 })
            var fastW = [Float](repeating: 0.5, count: w.count)
            cnn_conv2d_direct_weight_gradient_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), dy, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &fastW)
            #expect(zip(fastW, slowW).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4, "\(name)")
        }
    }

    /// Shapes of the kernel vectorised over output channels: LeNet's conv2, a partial block of channels (20) and
    /// positions that end mid-block (63 = 10 x 6 + 3), two blocks of channels (32) with 15 positions.
    static let directChannelShapes: [(c: Int, h: Int, w: Int, co: Int, kh: Int, kw: Int)] = [
        (6, 14, 14, 16, 5, 5), (5, 10, 12, 20, 4, 4), (3, 8, 9, 32, 6, 5),
    ]

    @Test("the forward kernel vectorised over output channels equals the naive convolution, on every instruction set",
          arguments: 0..<directChannelShapes.count)
    func directChannelConvolution(_ index: Int) throws {
        let s = Self.directChannelShapes[index]
        let (oh, ow) = (s.h - s.kh + 1, s.w - s.kw + 1)
        let x = randomTensor([s.c * s.h * s.w], seed: 35).values
        let w = randomTensor([s.co * s.c * s.kh * s.kw], seed: 36).values, b = randomTensor([s.co], seed: 37).values
        var slow = [Float](repeating: 0, count: s.co * oh * ow), slowNoBias = slow
        cnn_conv2d_naive(x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, Int32(s.co), 1, Int32(s.kh), Int32(s.kw), 1, 1, 0, 0, Int32(oh), Int32(ow), &slow)
        cnn_conv2d_naive(x, Int32(s.c), Int32(s.h), Int32(s.w), w, nil, Int32(s.co), 1, Int32(s.kh), Int32(s.kw), 1, 1, 0, 0, Int32(oh), Int32(ow), &slowNoBias)
        for isa in Self.instructionSets {
            let name = String(cString: cnn_isa_name(isa))
            #if arch(x86_64)
            // Offered on AVX2 only: on AVX-512 the lowered path's GEMM is fast enough.
            #expect((cnn_conv2d_direct_channels_available_isa(isa, Int32(s.c), Int32(s.kh), Int32(s.kw), Int32(s.co)) != 0) == (isa == CNN_ISA_AVX2), "\(name)")
            #endif
            var fast = [Float](repeating: .nan, count: slow.count), noBias = fast, rectified = fast
            cnn_conv2d_direct_channels_forward_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, 0, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &fast)
            #expect(zip(fast, slow).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4, "\(name)")
            cnn_conv2d_direct_channels_forward_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), w, nil, 0, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &noBias)
            #expect(zip(noBias, slowNoBias).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4, "\(name), no bias")
            // With the fused ReLU: exactly max(0, .) of the same sums.
            cnn_conv2d_direct_channels_forward_isa(isa, x, Int32(s.c), Int32(s.h), Int32(s.w), w, b, 1, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &rectified)
            #expect(rectified == fast.map { max(0, $0) }, "\(name)")
            #expect(rectified.contains(0) && rectified.contains { $0 > 0 })
        }
        // The weight gradient over two images, added to what dw holds, against the naive twin image by image.
        let images = 2, inPlane = s.c * s.h * s.w, outPlane = s.co * oh * ow
        let xs = randomTensor([images * inPlane], seed: 38).values, dys = randomTensor([images * outPlane], seed: 39).values
        var slowW = [Float](repeating: 0.5, count: w.count)
        for image in 0..<images {
            cnn_conv2d_weight_gradient_naive(Array(xs[(image * inPlane)..<((image + 1) * inPlane)]), Int32(s.c), Int32(s.h), Int32(s.w),
                                             Array(dys[(image * outPlane)..<((image + 1) * outPlane)]), Int32(s.co), 1, Int32(s.kh),
                                             Int32(s.kw), 1, 1, 0, 0, Int32(oh), Int32(ow), &slowW)
        }
        for isa in Self.instructionSets {
            var fastW = [Float](repeating: 0.5, count: w.count)
            cnn_conv2d_direct_channels_weight_gradient_isa(isa, xs, Int32(images), Int32(s.c), Int32(s.h), Int32(s.w), dys, Int32(s.co),
                                                           Int32(s.kh), Int32(s.kw), Int32(oh), Int32(ow), &fastW)
            #expect(zip(fastW, slowW).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4, "\(String(cString: cnn_isa_name(isa))): weight gradient")
        }
        // Not offered where the column-vectorised kernel serves (LeNet's C1) or Winograd can (16 channels in).
        #expect(cnn_conv2d_direct_channels_available_isa(CNN_ISA_AVX2, 1, 5, 5, 16) == 0)
        #expect(cnn_conv2d_direct_channels_available_isa(CNN_ISA_AVX2, 16, 3, 3, 16) == 0)
    }

    @Test func directAndLoweredConvolutionsAgreeInsideTheLayer() throws {
        // The same layer computed with the direct kernels and with im2col + GEMM.
        try #require(cnn_conv2d_direct_available(1, 5, 5, 28) != 0 || cnn_isa_active() == CNN_ISA_PORTABLE)
        func run(direct: Bool) -> [Tensor] {
            let conv = Conv2D(inputChannels: 1, outputChannels: 6, kernelSize: 5)
            conv.allowsDirectKernels = direct
            var rng = RandomGenerator(seed: 4)
            conv.resetParameters(using: &rng)
            let y = Tensor(copying: conv.forward(randomTensor([5, 1, 32, 32], seed: 5), training: true))
            conv.weight.zeroGradient()
            conv.bias!.zeroGradient()
            let dx = Tensor(copying: conv.backward(randomTensor(y.shape, seed: 6)))
            return [y, Tensor(copying: conv.weight.gradient), Tensor(copying: conv.bias!.gradient), dx]
        }
        let direct = run(direct: true), lowered = run(direct: false)
        for (a, b) in zip(direct, lowered) {
            #expect(zip(a.values, b.values).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-4)
        }
    }

    /// Winograd shapes (R = 3 for F(4x4, 3x3), 5 for F(2x2, 5x5)): a single partial tile, odd sizes, asymmetric
    /// padding, several images per block, a batch whose tiles end mid-group, and several blocks.
    static let winogradShapes: [(r: Int, n: Int, c: Int, h: Int, w: Int, co: Int, padding: (top: Int, left: Int, bottom: Int, right: Int))] = [
        (3, 1, 1, 3, 3, 1, (0, 0, 0, 0)), (3, 2, 3, 9, 7, 5, (1, 1, 1, 1)), (3, 3, 16, 14, 14, 32, (1, 1, 1, 1)),
        (3, 1, 17, 6, 11, 19, (1, 0, 0, 1)), (3, 2, 8, 30, 30, 8, (0, 0, 0, 0)), (3, 5, 4, 5, 5, 3, (2, 2, 2, 2)),
        (3, 5, 16, 130, 130, 16, (0, 0, 0, 0)),  // 5,120 tiles: two blocks (4,096 and 1,024)
        (5, 1, 1, 5, 5, 1, (0, 0, 0, 0)), (5, 2, 3, 9, 8, 5, (2, 2, 2, 2)), (5, 3, 16, 13, 13, 24, (2, 2, 2, 2)),
        (5, 1, 6, 7, 10, 7, (1, 3, 2, 0)), (5, 2, 5, 6, 6, 4, (4, 4, 4, 4)),
        (5, 3, 16, 94, 94, 16, (0, 0, 0, 0)),  // 6,075 tiles: two blocks
    ]

    @Test("Winograd equals the naive convolution: forward, input gradient and weight gradient", arguments: 0..<winogradShapes.count)
    func winogradConvolution(_ index: Int) throws {
        let s = Self.winogradShapes[index], p = s.padding, r = s.r
        let (oh, ow) = (s.h + p.top + p.bottom - r + 1, s.w + p.left + p.right - r + 1)
        let x = randomTensor([s.n * s.c * s.h * s.w], seed: 41).values
        let w = randomTensor([s.co * s.c * r * r], seed: 42).values, b = randomTensor([s.co], seed: 43).values
        var u = [Float](repeating: 0, count: cnn_winograd_filter_size(Int32(s.c), Int32(s.co)))
        cnn_winograd_transform_filter(w, Int32(s.co), Int32(s.c), Int32(r), 0, &u)
        var fast = [Float](repeating: .nan, count: s.n * s.co * oh * ow), twoThreads = fast
        cnn_winograd_conv(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), u, b, 0, Int32(s.co), Int32(r), Int32(p.top), Int32(p.left),
                          Int32(oh), Int32(ow), &fast, 1)
        cnn_winograd_conv(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), u, b, 0, Int32(s.co), Int32(r), Int32(p.top), Int32(p.left),
                          Int32(oh), Int32(ow), &twoThreads, 2)
        #expect(fast.map(\.bitPattern) == twoThreads.map(\.bitPattern), "the thread count must not change a bit")
        // With the fused ReLU: exactly max(0, .) of the same values.
        var rectified = [Float](repeating: .nan, count: fast.count)
        cnn_winograd_conv(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), u, b, 1, Int32(s.co), Int32(r), Int32(p.top), Int32(p.left),
                          Int32(oh), Int32(ow), &rectified, 2)
        #expect(rectified == fast.map { max(0, $0) })
        let (inPlane, outPlane) = (s.c * s.h * s.w, s.co * oh * ow)
        // The filter prepared once (as inference keeps it) gives the same bits; with a scale and a shift (a folded
        // batch norm), each output channel is y * scale + shift of the unshifted convolution, as
        // cnn_channel_scale_shift computes it.
        var packed = [Float](repeating: .nan, count: cnn_winograd_packed_filter_size(Int32(s.c), Int32(s.co)))
        cnn_winograd_prepare_filter(w, Int32(s.co), Int32(s.c), Int32(r), 0, &packed, 2)
        var prepared = [Float](repeating: .nan, count: fast.count)
        cnn_winograd_conv_packed(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), packed, nil, b, 0, Int32(s.co), Int32(r),
                                 Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &prepared, 2)
        #expect(prepared.map(\.bitPattern) == fast.map(\.bitPattern))
        let channelScale = randomTensor([s.co], seed: 44).values, channelShift = randomTensor([s.co], seed: 45).values
        var plain = [Float](repeating: .nan, count: fast.count), folded = plain
        cnn_winograd_conv_packed(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), packed, nil, nil, 0, Int32(s.co), Int32(r),
                                 Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &plain, 1)
        cnn_winograd_conv_packed(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), packed, channelScale, channelShift, 1, Int32(s.co), Int32(r),
                                 Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &folded, 1)
        cnn_channel_scale_shift(&plain, channelScale, channelShift, Int32(s.n), Int32(s.co), Int32(oh * ow), 1)
        #expect(folded.map(\.bitPattern) == plain.map(\.bitPattern))
        if folded.count >= 100 { #expect(folded.contains(0) && folded.contains { $0 > 0 }) }
        for image in 0..<s.n {
            var expected = [Float](repeating: 0, count: outPlane)
            cnn_conv2d_naive(Array(x[(image * inPlane)..<((image + 1) * inPlane)]), Int32(s.c), Int32(s.h), Int32(s.w), w, b,
                             Int32(s.co), 1, Int32(r), Int32(r), 1, 1, Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &expected)
            let got = fast[(image * outPlane)..<((image + 1) * outPlane)]
            let error = zip(got, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(error < 1e-4, "case \(index), image \(image): error \(error)")
        }
        // The input gradient: the flipped filter over dY with the complementary padding is the adjoint of the
        // forward (checked as <dY, conv(x)> = <dX(dY), x>, without bias).
        let dy = randomTensor([s.n * outPlane], seed: 44).values
        var flipped = [Float](repeating: 0, count: u.count)
        cnn_winograd_transform_filter(w, Int32(s.co), Int32(s.c), Int32(r), 1, &flipped)
        var dx = [Float](repeating: .nan, count: s.n * inPlane)
        cnn_winograd_conv(dy, Int32(s.n), Int32(s.co), Int32(oh), Int32(ow), flipped, nil, 0, Int32(s.c), Int32(r), Int32(r - 1 - p.top),
                          Int32(r - 1 - p.left), Int32(s.h), Int32(s.w), &dx, 2)
        var forward = [Float](repeating: 0, count: s.n * outPlane)
        for image in 0..<s.n {
            var part = [Float](repeating: 0, count: outPlane)
            cnn_conv2d_naive(Array(x[(image * inPlane)..<((image + 1) * inPlane)]), Int32(s.c), Int32(s.h), Int32(s.w), w, nil,
                             Int32(s.co), 1, Int32(r), Int32(r), 1, 1, Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &part)
            forward.replaceSubrange((image * outPlane)..<((image + 1) * outPlane), with: part)
        }
        let left = zip(dy, forward).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let right = zip(dx, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "case \(index): <dY, conv x> = \(left), <dX, x> = \(right)")
        // The weight gradient, added to what dw holds, against the naive twin image by image.
        var fastW = [Float](repeating: 0.5, count: w.count), slowW = fastW
        cnn_winograd_weight_gradient(x, Int32(s.n), Int32(s.c), Int32(s.h), Int32(s.w), dy, Int32(s.co), Int32(r), Int32(p.top),
                                     Int32(p.left), Int32(oh), Int32(ow), &fastW, 2)
        for image in 0..<s.n {
            cnn_conv2d_weight_gradient_naive(Array(x[(image * inPlane)..<((image + 1) * inPlane)]), Int32(s.c), Int32(s.h), Int32(s.w),
                                             Array(dy[(image * outPlane)..<((image + 1) * outPlane)]), Int32(s.co), 1, Int32(r), Int32(r),
                                             1, 1, Int32(p.top), Int32(p.left), Int32(oh), Int32(ow), &slowW)
        }
        let scale = slowW.map { abs($0) }.max()!
        let errorW = zip(fastW, slowW).map { abs($0 - $1) }.max()! / max(1, scale)
        #expect(errorW < 1e-5, "case \(index): weight gradient error \(errorW) of the largest \(scale)")
    }

    @Test func winogradAndLoweredConvolutionsAgreeInsideTheLayer() throws {
        // The same layer (3x3 with padding 1, 3x3 with asymmetric padding, 5x5 with padding 2) with Winograd and with
        // im2col + GEMM.
        for (kernel, padding, shape) in [(3, Padding.uniform(1), [3, 16, 9, 10]), (3, .explicit(top: 0, left: 1, bottom: 1, right: 0), [2, 16, 8, 8]),
                                         (5, .uniform(2), [2, 16, 11, 9])] {
            func run(winograd: Bool) -> [Tensor] {
                let conv = Conv2D(inputChannels: 16, outputChannels: 24, kernelSize: kernel, padding: padding)
                conv.allowsWinograd = winograd
                var rng = RandomGenerator(seed: 4)
                conv.resetParameters(using: &rng)
                conv.bias!.value = randomTensor([24], seed: 7)
                let y = Tensor(copying: conv.forward(randomTensor(shape, seed: 5), training: true))
                conv.weight.zeroGradient()
                conv.bias!.zeroGradient()
                let dx = Tensor(copying: conv.backward(randomTensor(y.shape, seed: 6)))
                return [y, Tensor(copying: conv.weight.gradient), Tensor(copying: conv.bias!.gradient), dx]
            }
            let winograd = run(winograd: true), lowered = run(winograd: false)
            for (name, (a, b)) in zip(["y", "dW", "db", "dX"], zip(winograd, lowered)) {
                #expect(a.shape == b.shape)
                let error = zip(a.values, b.values).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                #expect(error < 1e-4, "\(name), \(kernel)x\(kernel) with \(padding): \(error)")
            }
        }
    }

    @Test func samePaddingFollowsTensorFlow() {
        // TensorFlow: output ceil(in / stride), the odd extra padding at the bottom/right.
        let p = Padding.same.amounts(height: 224, width: 224, kernel: (7, 7), stride: (2, 2))
        #expect(p == (2, 2, 3, 3))
        let q = Padding.same.amounts(height: 5, width: 6, kernel: (3, 3), stride: (1, 1))
        #expect(q == (1, 1, 1, 1))
        let r = Padding.same.amounts(height: 8, width: 8, kernel: (3, 3), stride: (2, 2))
        #expect(r == (0, 0, 1, 1))
    }

    @Test func maxPoolingForwardByHand() {
        // 4x4 arange, 2x2 windows: the bottom-right of each window.
        let pool = MaxPool2D(kernelSize: 2)
        let x = Tensor(shape: [1, 1, 4, 4], values: (0..<16).map(Float.init))
        #expect(pool(x).values == [5, 7, 13, 15])
        // 3x3 stride 2, ceil mode on 4x4: windows start at 0 and 2, the second clipped.
        let ceil = MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true)
        #expect(ceil(x).values == [10, 11, 14, 15])
    }

    @Test func maxPoolingAtInferenceGivesTheTrainingValuesWithoutIndices() {
        for (kernel, stride, shape) in [(2, 2, [2, 3, 8, 7]), (3, 2, [2, 3, 9, 9]), (2, 2, [1, 2, 5, 5])] {
            var x = randomTensor(shape, seed: 21)
            x[3] = .nan  // a NaN wins in both
            let pool = MaxPool2D(kernelSize: kernel, stride: stride)
            let inference = Tensor(copying: pool.forward(x, training: false))
            let training = pool.forward(x, training: true)
            #expect(inference.values.map(\.bitPattern) == training.values.map(\.bitPattern), "\(kernel)x\(kernel) on \(shape)")
        }
    }

    @Test func separableMaxPoolingEqualsTheGeneralLoop() {
        // Pooling for any window, with and without indices: GoogLeNet's 3x3 stride 1 with padding 1, 3x3 stride 2 in ceil mode, a wide
        // 5x5 window with padding 2 and stride 3, 2x1 and 1x1; ties (values in quarters, +0 beside -0), NaNs, infinities.
        let (planes, h, w) = (3, 9, 37)  // rows of 37: two full vectors of 16 (four of 8) and a tail
        var values = randomTensor([planes * h * w], seed: 22).values.map { ($0 * 4).rounded() / 4 }
        values[7] = .nan
        values[30] = .infinity
        values[31] = -.infinity
        // Zeros of both signs that are their windows' maxima: below every other value around them, side by side in
        // a row (+0 then -0, -0 then +0) and one above the other (-0 over +0).
        for row in 0..<4 { for column in 10..<27 { values[row * w + column] = -0.75 } }
        values[50] = 0
        values[51] = -0.0
        values[60] = -0.0
        values[61] = 0
        values[2 * w + 14] = 0
        // Without the NaN, inference takes the passes that keep no indices and use plain maxima (the first plane
        // still holds the ties and the infinities).
        var withoutNaN = values
        withoutNaN[7] = 0.5
        for (kh, kw, sh, sw, ph, pw, oh, ow) in [(3, 3, 1, 1, 1, 1, 9, 37), (3, 3, 2, 2, 0, 0, 4, 18), (5, 5, 3, 3, 2, 2, 3, 13),
                                                 (2, 1, 1, 1, 0, 0, 8, 37), (1, 1, 1, 1, 0, 0, 9, 37), (3, 5, 1, 1, 0, 2, 7, 37),
                                                 (3, 3, 2, 2, 1, 1, 5, 19), (2, 2, 2, 2, 0, 0, 4, 18)] {
          for (isa, values) in Self.instructionSets.flatMap({ isa in [(isa, values), (isa, withoutNaN)] }) {
            let name = String(cString: cnn_isa_name(isa))
            var fast = [Float](repeating: 1, count: planes * oh * ow), slow = fast
            cnn_maxpool_forward_isa(isa, values, Int32(planes), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(sh), Int32(sw), Int32(ph), Int32(pw),
                                    Int32(oh), Int32(ow), &fast, nil)
            cnn_maxpool_forward_naive(values, Int32(planes), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(sh), Int32(sw), Int32(ph),
                                      Int32(pw), Int32(oh), Int32(ow), &slow, nil)
            #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern), "\(name): \(kh)x\(kw) stride \(sh)x\(sw) padding \(ph)x\(pw)")
            // Training keeps the indices: the same ones as the general loop's.
            var fastIndex = [Int32](repeating: -1, count: fast.count), slowIndex = fastIndex
            cnn_maxpool_forward_isa(isa, values, Int32(planes), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(sh), Int32(sw), Int32(ph), Int32(pw),
                                    Int32(oh), Int32(ow), &fast, &fastIndex)
            cnn_maxpool_forward_naive(values, Int32(planes), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(sh), Int32(sw), Int32(ph),
                                      Int32(pw), Int32(oh), Int32(ow), &slow, &slowIndex)
            #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern) && fastIndex == slowIndex, "\(name) with indices: \(kh)x\(kw) stride \(sh)x\(sw)")
          }
        }
    }

    @Test func maxPoolingFastPathEqualsTheGeneralLoop() {
        // Odd sizes (the last row and column are dropped), ties, NaNs and infinities.
        let (planes, h, w) = (3, 9, 11)
        var values = randomTensor([planes * h * w], seed: 21).values.map { ($0 * 4).rounded() / 4 }
        values[5] = .nan
        values[40] = .infinity
        values[41] = -.infinity
        values[100] = .nan
        values[101] = .nan
        let (oh, ow) = (h / 2, w / 2)
        var fast = [Float](repeating: 0, count: planes * oh * ow), slow = fast
        var fastIndex = [Int32](repeating: 0, count: fast.count), slowIndex = fastIndex
        cnn_maxpool_forward(values, Int32(planes), Int32(h), Int32(w), 2, 2, 2, 2, 0, 0, Int32(oh), Int32(ow), &fast, &fastIndex)
        cnn_maxpool_forward_naive(values, Int32(planes), Int32(h), Int32(w), 2, 2, 2, 2, 0, 0, Int32(oh), Int32(ow), &slow, &slowIndex)
        #expect(fastIndex == slowIndex)
        #expect(zip(fast, slow).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
        #expect(fast.contains { $0.isNaN }, "a NaN in a window must win")
    }

    @Test func averagePoolingDivisors() {
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        // 3x3 window, padding 1, stride 2 over 2x2: one window covering everything.
        let included = AvgPool2D(kernelSize: 3, stride: 2, padding: .uniform(1))
        let excluded = AvgPool2D(kernelSize: 3, stride: 2, padding: .uniform(1), countIncludesPadding: false)
        #expect(included(x).values == [10.0 / 9])
        #expect(excluded(x).values == [2.5])
    }
}
