// The int8 kernels against the naive int32 convolution, bit for bit, on every instruction set this CPU has.
import CNNKernels
import Foundation
import Testing
import ClassicCNNEngine

@Suite("Int8 kernels against the naive int32 convolution")
struct Int8KernelTests {
    static var instructionSets: [cnn_isa] { KernelTests.instructionSets }

    /// (C, H, W, CO, KH, KW, stride, padding): a first layer, odd channel counts (K not a multiple of 4), a 1x1,
    /// strides, paddings, fewer output channels than a panel, more columns than one block with a tail.
    static let shapes: [(c: Int, h: Int, w: Int, co: Int, kh: Int, kw: Int, s: Int, p: Int)] = [
        (3, 11, 13, 16, 3, 3, 1, 1), (1, 28, 28, 6, 5, 5, 1, 0), (5, 9, 9, 7, 3, 3, 2, 1), (64, 7, 7, 24, 1, 1, 1, 0),
        (17, 6, 5, 9, 1, 1, 1, 0), (3, 20, 20, 33, 7, 7, 2, 3), (130, 4, 4, 70, 3, 3, 1, 1), (8, 3, 17, 8, 1, 7, 1, 0),
        (5, 9, 40, 12, 3, 3, 1, 1), (6, 5, 37, 10, 1, 1, 1, 0),  // rows wide enough for the vector lowering, with padding
    ]

    /// Random unsigned activations and seven-bit weights, extremes included, so that AVX2's int16 pairs are tested
    /// at their largest sums (255 * 63 * 2).
    static func operands(_ s: (c: Int, h: Int, w: Int, co: Int, kh: Int, kw: Int, s: Int, p: Int), seed: UInt64)
        -> (x: [UInt8], w: [Int8]) {
        var rng = RandomGenerator(seed: seed)
        func next() -> UInt64 { rng.next() }
        let x = (0..<s.c * s.h * s.w).map { i in i % 11 == 0 ? UInt8(255) : UInt8(truncatingIfNeeded: next()) }
        let w = (0..<s.co * s.c * s.kh * s.kw).map { i in
            i % 13 == 0 ? Int8(i % 2 == 0 ? 63 : -63) : Int8(Int(next() % 127) - 63)
        }
        return (x, w)
    }

    @Test("im2col + the int8 GEMM equal the naive int32 convolution, bit for bit", arguments: 0..<shapes.count)
    func gemmEqualsNaive(_ index: Int) {
        let s = Self.shapes[index]
        let oh = (s.h + 2 * s.p - s.kh) / s.s + 1, ow = (s.w + 2 * s.p - s.kw) / s.s + 1, n = oh * ow
        let k = s.c * s.kh * s.kw
        let (x, w) = Self.operands(s, seed: UInt64(index + 1))
        let zeroPoint: UInt8 = index % 2 == 0 ? 0 : 128
        var expected = [Int32](repeating: 0, count: s.co * n)
        cnn_int8_conv_naive(x, Int32(s.c), Int32(s.h), Int32(s.w), w, Int32(s.co), Int32(s.kh), Int32(s.kw), Int32(s.s), Int32(s.s),
                            Int32(s.p), Int32(s.p), Int32(oh), Int32(ow), zeroPoint, &expected)
        // Two images side by side, the second one's columns after the first's, as the layer lays out small maps.
        let ldb = Int(cnn_int8_columns_stride(Int32(2 * n)))
        var columns = [UInt8](repeating: 0xA5, count: cnn_int8_columns_size(Int32(k), Int32(ldb)))
        for image in 0..<2 {
            cnn_int8_im2col(x, Int32(s.c), Int32(s.h), Int32(s.w), Int32(s.kh), Int32(s.kw), Int32(s.s), Int32(s.s), Int32(s.p),
                            Int32(s.p), Int32(oh), Int32(ow), zeroPoint, &columns, Int32(ldb), Int32(image * n), Int32(1 + image))
        }
        var packed = [Int8](repeating: 0, count: cnn_int8_packed_weights_size(Int32(s.co), Int32(k)))
        var sums = [Int32](repeating: 0, count: s.co)
        cnn_int8_pack_weights(w, Int32(s.co), Int32(k), Int32(k), &packed, &sums)
        for o in 0..<s.co { #expect(sums[o] == w[o * k..<(o + 1) * k].reduce(0) { $0 + Int32($1) }) }
        for isa in Self.instructionSets {
            let name = String(cString: cnn_int8_kernel_name(isa))
            for threads in [1, 2] {
                var got = [Int32](repeating: -7, count: s.co * 2 * n)
                cnn_int8_gemm_isa(isa, Int32(s.co), Int32(2 * n), Int32(k), packed, columns, Int32(ldb), nil, nil, 0, nil, 0, &got,
                                  Int32(2 * n), Int32(threads))
                for image in 0..<2 {
                    let mismatches = (0..<s.co * n).filter { got[($0 / n) * 2 * n + image * n + $0 % n] != expected[$0] }.count
                    #expect(mismatches == 0, "\(name), \(threads) threads, shape \(index), image \(image): \(mismatches) of \(s.co * n) differ")
                }
            }
        }
    }

    @Test("The float output is fma(sum, scale, shift), ReLU'd, the same on every instruction set")
    func floatOutput() {
        let s = Self.shapes[6]
        let (oh, ow) = (s.h, s.w), n = oh * ow, k = s.c * s.kh * s.kw
        let (x, w) = Self.operands(s, seed: 9)
        let ldb = Int(cnn_int8_columns_stride(Int32(n)))
        var columns = [UInt8](repeating: 0, count: cnn_int8_columns_size(Int32(k), Int32(ldb)))
        cnn_int8_im2col(x, Int32(s.c), Int32(s.h), Int32(s.w), 3, 3, 1, 1, 1, 1, Int32(oh), Int32(ow), 3, &columns, Int32(ldb), 0, 2)
        var packed = [Int8](repeating: 0, count: cnn_int8_packed_weights_size(Int32(s.co), Int32(k)))
        var sums = [Int32](repeating: 0, count: s.co)
        cnn_int8_pack_weights(w, Int32(s.co), Int32(k), Int32(k), &packed, &sums)
        let scale = (0..<s.co).map { Float($0 + 1) * 1e-4 }, shift = (0..<s.co).map { Float($0 % 5) - 2.5 }
        var sumsOut = [Int32](repeating: 0, count: s.co * n)
        cnn_int8_gemm_isa(CNN_ISA_PORTABLE, Int32(s.co), Int32(n), Int32(k), packed, columns, Int32(ldb), nil, nil, 0, nil, 0, &sumsOut,
                          Int32(n), 1)
        for relu in [0, 1] {
            let expected = (0..<s.co * n).map { i -> Float in
                let y = fmaf(Float(sumsOut[i]), scale[i / n], shift[i / n])
                return relu == 1 ? max(0, y) : y
            }
            for isa in Self.instructionSets {
                var got = [Float](repeating: .nan, count: s.co * n)
                cnn_int8_gemm_isa(isa, Int32(s.co), Int32(n), Int32(k), packed, columns, Int32(ldb), scale, shift, Int32(relu), &got,
                                  Int32(n), nil, 0, 2)
                #expect(got == expected, "\(String(cString: cnn_int8_kernel_name(isa))), relu \(relu)")
            }
        }
    }

    @Test("Quantisation is ONNX's QuantizeLinear: x / scale rounded half to even, plus the zero point, saturated")
    func quantization() {
        let x: [Float] = [0, 0.5, 1.5, 2.5, -0.5, -1.5, 127.4, 300, -300, .infinity, -.infinity, .nan, 1e30, 3.5, 0.49999997]
        // With scale 1 and zero point 128: half to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2), saturation.
        let expected: [UInt8] = [128, 128, 130, 130, 128, 126, 255, 255, 0, 255, 0, 0, 255, 132, 128]
        for isa in Self.instructionSets {
            let padded = x + Array(repeating: 2.5, count: 20)  // a full vector and a tail
            var y = [UInt8](repeating: 7, count: padded.count)
            cnn_quantize_u8_isa(isa, padded, padded.count, 1, 128, &y)
            let name = String(cString: cnn_isa_name(isa))
            #expect(Array(y.prefix(x.count)) == expected, "\(name)")
            #expect(y.dropFirst(x.count).allSatisfy { $0 == 130 }, "\(name)")
        }
        var w = [Int8](repeating: 0, count: 5)
        cnn_quantize_weights_s7([0.25, -0.75, 10, -10, 0.125], 5, 0.25, &w)
        #expect(w == [1, -3, 40, -40, 0])  // 0.125 / 0.25 = 0.5 rounds to 0
        cnn_quantize_weights_s7([100, -100, 15.75, -15.875, 0], 5, 0.25, &w)
        #expect(w == [63, -63, 63, -63, 0])
    }
}
