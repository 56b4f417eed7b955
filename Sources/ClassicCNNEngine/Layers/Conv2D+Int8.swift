// Int8 inference for a convolution: the input quantised once to unsigned bytes (its calibrated scale and zero
// point), lowered into quads of rows, multiplied by the seven-bit per-channel weights in int32 and turned back into
// floats as the GEMM stores them, with the bias, a folded batch norm and the ReLU in the same multiply-add
// (cnn_int8.h). What ONNX's QuantizeLinear -> DequantizeLinear -> Conv computes, up to the float rounding of the
// last step.
//
// Legend as in Conv2D.swift: N batch, C input channels, CO output channels, G groups, P = OH * OW,
// K = (C / G) * KH * KW.
import CNNKernels

/// How a convolution computes in int8: x_q = saturate(round(x / inputScale) + inputZeroPoint) in 0 ... 255,
/// w_q = clamp(round(w / weightScales[o]), -63, 63) per output channel o.
public struct Int8Quantization: Equatable, Sendable {
    public var inputScale: Float
    public var inputZeroPoint: Int
    public var weightScales: [Float]

    public init(inputScale: Float, inputZeroPoint: Int, weightScales: [Float]) {
        (self.inputScale, self.inputZeroPoint, self.weightScales) = (inputScale, inputZeroPoint, weightScales)
    }

    /// The largest weight magnitude: seven bits, so that AVX2's pairs of products stay exact in int16.
    public static let weightLevels: Float = 63

    /// ONNX Runtime's unsigned asymmetric MinMax rule: the range widened to include 0, scale = range / 255 and the
    /// zero point where 0.0 falls (0 for a range that starts at 0, after a ReLU).
    public static func input(minimum: Float, maximum: Float) -> (scale: Float, zeroPoint: Int) {
        let (low, high) = (Swift.min(minimum, 0), Swift.max(maximum, 0))
        let scale = (high - low) / 255
        // An empty, infinite or subnormal range (all zeros but a denormal): no usable scale.
        guard scale.isNormal else { return (1, 0) }
        let zeroPoint = Swift.min(255, Swift.max(0, Int((-low / scale).rounded(.toNearestOrEven))))
        return (scale, zeroPoint)
    }

    /// Weights [CO, fanIn] quantised with per-channel `scales` as the int8 convolution quantises them:
    /// clamp(round_half_to_even(w / scale), -63, 63), NaN to -63 (the C kernel's arithmetic, which the ONNX export uses too).
    public static func quantizedWeights(_ weight: Tensor, scales: [Float]) -> [Int8] {
        let co = weight.shape[0], fanIn = weight.count / co
        precondition(scales.count == co, "one scale per output channel")
        var levels = [Int8](repeating: 0, count: weight.count)
        levels.withUnsafeMutableBufferPointer { target in
            for o in 0..<co { cnn_quantize_weights_s7(weight.data + o * fanIn, fanIn, scales[o], target.baseAddress! + o * fanIn) }
        }
        return levels
    }

    /// Symmetric per-channel scales of weights [CO, fanIn]: each channel's largest magnitude over 63 (1 for a zero channel).
    public static func weightScales(_ weight: Tensor) -> [Float] {
        let co = weight.shape[0], fanIn = weight.count / co, values = weight.data
        return (0..<co).map { o in
            var largest: Float = 0
            for i in 0..<fanIn { largest = Swift.max(largest, abs(values[o * fanIn + i])) }
            return largest > 0 ? largest / weightLevels : 1
        }
    }
}

/// Bytes aligned for the vector kernels, owned by the layer that uses them between calls.
final class ByteBuffer {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var count: Int

    init(count: Int = 0) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 64), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: Swift.max(count, 64))
    }

    /// Grows (zeroed) to at least `count` bytes.
    func reserve(_ count: Int) {
        guard count > self.count else { return }
        pointer.deallocate()
        pointer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        self.count = count
    }

    var bytes: UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }
    var signedBytes: UnsafeMutablePointer<Int8> { pointer.assumingMemoryBound(to: Int8.self) }

    deinit { pointer.deallocate() }
}

/// A convolution's int8 working state: the weights quantised and packed (per group) with their row sums, made again
/// when the weights or the quantisation change; the quantised input and the column matrices; the calibration range.
final class Int8State {
    var packedFor: (version: Int, quantization: Int8Quantization)?
    let packed = ByteBuffer(), input = ByteBuffer()
    var rowSums: [Int32] = []
    var columns: [ByteBuffer] = [], padded: [ByteBuffer] = []
    var scratch: [Tensor] = []
    var scale: [Float] = [], shift: [Float] = []

    var observesInputRange = false
    var observedMinimum = Float.infinity, observedMaximum = -Float.infinity

    func observe(_ x: Tensor) {
        let values = UnsafeBufferPointer(start: x.data, count: x.count)
        var (low, high) = (observedMinimum, observedMaximum)
        for v in values where v.isFinite {
            low = Swift.min(low, v)
            high = Swift.max(high, v)
        }
        (observedMinimum, observedMaximum) = (low, high)
    }
}

extension Conv2D {
    /// y = the int8 convolution of x, finished in float: per output channel o, y = S * scale[o] + shift[o] (ReLU'd with
    /// the fused ReLU), with scale[o] = s_x s_w[o] (times a folded norm's scale) and shift[o] = the bias (or the
    /// folded norm's shift) - zero_point * sum(w_q[o]) * scale[o].
    func int8Forward(_ input: Tensor, _ plan: ConvolutionPlan, _ q: Int8Quantization, into y: Tensor) {
        let g = plan.geometry
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow, co) = (g.outputHeight, g.outputWidth, outputChannels)
        let (cg, cog, k, p) = (c / groups, outputChannels / groups, plan.k, oh * ow)
        let state = int8State
        preparePackedWeights(q)

        state.scale = (0..<co).map { q.inputScale * q.weightScales[$0] * (finish.scale?[$0] ?? 1) }
        state.shift = (0..<co).map { (finish.shift?[$0] ?? 0) - Float(q.inputZeroPoint) * Float(state.rowSums[$0]) * state.scale[$0] }
        let relu: Int32 = finish.relu ? 1 : 0

        // The input, quantised once (the lowering then reads each byte KH * KW times).
        state.input.reserve(input.count)
        let bytes = state.input.bytes, x = input.data
        Parallel.forEachSlice(input.count, grain: 1 << 16) { range in
            cnn_quantize_u8(x + range.lowerBound, range.count, q.inputScale, Int32(q.inputZeroPoint), bytes + range.lowerBound)
        }

        // Stride 1 on maps of at least 48 positions: lowered at full padded width, each row of the column matrix one
        // contiguous run of the padded image (`cnn_int8_im2col_wide`), and the padding's output columns dropped after
        // the GEMM. Rows narrower than 16 have no vector lowering otherwise, and the extra columns cost little in a
        // GEMM that works in blocks of 32 (`Scripts/int8/layers.sh`: 512 channels on 14x14, 1.39 against 1.97 ms;
        // on 7x7, 0.45 against 0.60 ms); wider rows go full width while that adds at most an eighth (not a 1x7 kernel on
        // 17x17, whose plain lowering is vectorised). Smaller maps (CIFAR's 4x4) go side by side in one GEMM instead
        // (LeNet's C5 has one position per image): at least 64 columns.
        let (kh, kw, sh, sw) = (kernelSize.height, kernelSize.width, stride.height, stride.width)
        let (hp, wp) = (oh + kh - 1, ow + kw - 1)
        let wide = !plan.pointwise && sh == 1 && sw == 1 && p >= 48 && (ow < 16 || wp * 8 <= ow * 9)
        let (chunks, gemmThreads) = (plan.chunks, plan.gemmThreads)
        let share = (n + chunks - 1) / chunks
        let span = wide || p >= 64 ? 1 : Swift.min(share, (64 + p - 1) / p)
        let columnCount = wide ? oh * wp : span * p
        let ldb = Int(cnn_int8_columns_stride(Int32(columnCount)))
        let columnBytes = cnn_int8_columns_size(Int32(k), Int32(ldb))
        if state.columns.count != chunks { state.columns = (0..<chunks).map { _ in ByteBuffer() } }
        for buffer in state.columns { buffer.reserve(columnBytes) }
        if wide {
            if state.padded.count != chunks { state.padded = (0..<chunks).map { _ in ByteBuffer() } }
            for buffer in state.padded { buffer.reserve(cg * hp * wp + kw) }
        }
        if span > 1 || wide, state.scratch.count != chunks || state.scratch.first?.shape != [cog, columnCount] {
            state.scratch = (0..<chunks).map { _ in Tensor(shape: [cog, columnCount]) }
        }
        let packedBytes = cnn_int8_packed_weights_size(Int32(cog), Int32(k))
        let (packed, out, scale, shift) = (UnsafePointer(state.packed.signedBytes), y.data, state.scale, state.shift)
        let zeroPoint = UInt8(q.inputZeroPoint)
        scale.withUnsafeBufferPointer { scale in
            shift.withUnsafeBufferPointer { shift in
                Parallel.forEachChunk(n, chunks: chunks) { chunk, images in
                    let columns = state.columns[chunk].bytes
                    for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: span) {
                        let count = Swift.min(span, images.upperBound - first)
                        for group in 0..<groups {
                            let image = bytes + (first * c + group * cg) * h * w
                            if wide {
                                let padded = state.padded[chunk].bytes
                                cnn_int8_pad(image, Int32(cg), Int32(h), Int32(w), Int32(g.padTop), Int32(g.padLeft), Int32(hp), Int32(wp),
                                             zeroPoint, padded)
                                cnn_int8_im2col_wide(padded, Int32(cg), Int32(hp), Int32(wp), Int32(kh), Int32(kw), Int32(oh), columns,
                                                     Int32(ldb), 0, Int32(gemmThreads))
                            } else {
                                for i in 0..<count {
                                    cnn_int8_im2col(image + i * c * h * w, Int32(cg), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(sh),
                                                    Int32(sw), Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow), zeroPoint, columns,
                                                    Int32(ldb), Int32(i * p), Int32(gemmThreads))
                                }
                            }
                            let rows = group * cog
                            let direct = count == 1 && !wide
                            let target = direct ? out + (first * co + rows) * p : state.scratch[chunk].data
                            let width = wide ? columnCount : count * p
                            cnn_int8_gemm(Int32(cog), Int32(width), Int32(k), packed + group * packedBytes, columns, Int32(ldb),
                                          scale.baseAddress! + rows, shift.baseAddress! + rows, relu, target, Int32(width),
                                          Int32(gemmThreads))
                            if direct { continue }
                            if wide {
                                // [cog, OH, Wp] to [cog, OH, OW]: the padding's columns dropped.
                                for o in 0..<cog {
                                    for oy in 0..<oh {
                                        (out + ((first * co + rows + o) * oh + oy) * ow).update(from: target + (o * oh + oy) * wp, count: ow)
                                    }
                                }
                                continue
                            }
                            // [cog, count, P] to [count, co, P].
                            for i in 0..<count {
                                for o in 0..<cog {
                                    (out + ((first + i) * co + rows + o) * p).update(from: target + o * count * p + i * p, count: p)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The weights quantised with `q`'s scales and packed for the int8 GEMM, one block per group, with each output
    /// channel's sum of quantised weights; made once per change of the weights or of `q`.
    private func preparePackedWeights(_ q: Int8Quantization) {
        let state = int8State
        if let made = state.packedFor, made.version == weight.version, made.quantization == q { return }
        let cog = outputChannels / groups, fanIn = weight.count / outputChannels
        let packedBytes = cnn_int8_packed_weights_size(Int32(cog), Int32(fanIn))
        state.packed.reserve(packedBytes * groups)
        let quantized = Int8Quantization.quantizedWeights(weight.value, scales: q.weightScales)
        state.rowSums = [Int32](repeating: 0, count: outputChannels)
        quantized.withUnsafeBufferPointer { quantized in
            state.rowSums.withUnsafeMutableBufferPointer { sums in
                for group in 0..<groups {
                    cnn_int8_pack_weights(quantized.baseAddress! + group * cog * fanIn, Int32(cog), Int32(fanIn), Int32(fanIn),
                                          state.packed.signedBytes + group * packedBytes, sums.baseAddress! + group * cog)
                }
            }
        }
        state.packedFor = (weight.version, q)
    }
}
