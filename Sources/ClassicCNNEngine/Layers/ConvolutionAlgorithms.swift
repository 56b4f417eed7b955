// The convolution's algorithms, one forward and backward pair each, in llm.c's manner: each takes the input (and
// the output gradient), the plan made for its shape, and the buffer it writes. `ConvolutionPlan` says which serves a
// shape; `ConvolutionTests` checks every one against the naive convolution and its gradients on awkward shapes.
//
// Legend: N batch, C input channels, H x W input, CO output channels, G groups, KH x KW kernel,
// OH x OW output, P = OH * OW, K = (C / G) * KH * KW (the rows of a column matrix).
import CNNKernels

extension Conv2D {
    // MARK: - Direct

    /// y = conv(x) by the direct kernels (`.direct`: vectorised over output columns; `.directChannels`: over output
    /// channels), image by image over the threads, bias and fused ReLU included (a folded batch norm's scale in a
    /// pass after each image).
    func directForward(_ input: Tensor, _ plan: ConvolutionPlan, into y: Tensor) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow, co) = (plan.geometry.outputHeight, plan.geometry.outputWidth, outputChannels)
        let (x, wt, out, finish) = (input.data, weight.data, y.data, finish)
        let (biasData, relu) = finish.scale == nil ? (finish.shift, Int32(finish.relu ? 1 : 0)) : (nil, 0)
        let (kh, kw) = kernelSize
        Parallel.forEachChunk(n, chunks: plan.chunks) { _, images in
            for image in images {
                let kernel = plan.forward == .directChannels ? cnn_conv2d_direct_channels_forward : cnn_conv2d_direct_forward
                kernel(x + image * c * h * w, Int32(c), Int32(h), Int32(w), wt, biasData, relu, Int32(co),
                       Int32(kh), Int32(kw), Int32(oh), Int32(ow), out + image * co * oh * ow)
                if finish.scale != nil {
                    cnn_channel_scale_shift(out + image * co * oh * ow, finish.scale, finish.shift, 1, Int32(co), Int32(oh * ow),
                                            finish.relu ? 1 : 0)
                }
            }
        }
    }

    // (The direct backward pass is the lowered one with the direct weight gradient: `loweredBackward`.)

    // MARK: - Winograd

    func winogradForward(_ input: Tensor, _ plan: ConvolutionPlan, into y: Tensor) {
        winograd(input, geometry: plan.geometry, into: y, inputGradient: false)
    }

    /// Both gradients over the whole batch in the transformed domain; db sums dY.
    func winogradBackward(_ input: Tensor, _ outputGradient: Tensor, _ plan: ConvolutionPlan, inputGradient dx: Tensor) {
        let g = plan.geometry
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow, co, kh) = (g.outputHeight, g.outputWidth, outputChannels, kernelSize.height)
        let dy = outputGradient.data
        if let bias { cnn_accumulate_channel_sums(dy, bias.gradient.data, Int32(n), Int32(co), Int32(oh * ow)) }
        cnn_winograd_weight_gradient(input.data, Int32(n), Int32(c), Int32(h), Int32(w), dy, Int32(co), Int32(kh), Int32(g.padTop),
                                     Int32(g.padLeft), Int32(oh), Int32(ow), weight.gradient.data, Int32(Parallel.threads))
        if computesInputGradient { winograd(outputGradient, geometry: g, into: dx, inputGradient: true) }
    }

    /// y = the Winograd convolution of x [N, C, H, W]; with `inputGradient`, the input gradient of dY instead
    /// (the 180-degree-turned filter with channels exchanged, and the padding that undoes the forward's).
    private func winograd(_ x: Tensor, geometry g: WindowGeometry, into y: Tensor, inputGradient: Bool) {
        let (c, co) = inputGradient ? (outputChannels, inputChannels) : (inputChannels, outputChannels)
        let r = kernelSize.height
        let threads = Int32(Parallel.threads)
        // Transformed and packed once per change of the weights (and of direction): every step in training, once
        // for all in inference.
        let isa = cnn_isa_active().rawValue
        if winogradFilterKey?.version != weight.version || winogradFilterKey?.flipped != inputGradient
            || winogradFilterKey?.isa != isa || winogradFilter == nil {
            let packed = Tensor.reuse(&winogradFilter, shape: [Int(cnn_winograd_packed_filter_size(Int32(c), Int32(co)))])
            cnn_winograd_prepare_filter(weight.data, Int32(outputChannels), Int32(inputChannels), Int32(r), inputGradient ? 1 : 0,
                                        packed.data, threads)
            winogradFilterKey = (weight.version, inputGradient, isa)
        }
        let (top, left) = inputGradient ? (r - 1 - g.padTop, r - 1 - g.padLeft) : (g.padTop, g.padLeft)
        let (scale, shift, relu) = inputGradient ? (nil, nil, 0) : (finish.scale, finish.shift, Int32(finish.relu ? 1 : 0))
        cnn_winograd_conv_packed(x.data, Int32(x.shape[0]), Int32(c), Int32(x.shape[2]), Int32(x.shape[3]), winogradFilter!.data,
                                 scale, shift, relu, Int32(co), Int32(r), Int32(top), Int32(left),
                                 Int32(y.shape[2]), Int32(y.shape[3]), y.data, threads)
    }

    // MARK: - Fully connected

    /// The kernel covers the whole unpadded input: Y [N, CO] = X [N, K] W^T, with no column matrix at all (im2col
    /// would copy K single values per image).
    func fullyConnectedForward(_ input: Tensor, _ plan: ConvolutionPlan, into y: Tensor) {
        let (n, co, k) = (input.shape[0], outputChannels, plan.k)
        Gemm.multiply(transposeB: true, m: n, n: co, k: k, a: input.data, lda: k, b: weight.data, ldb: k, c: y.data, ldc: co)
        cnn_channel_scale_shift(y.data, finish.scale, finish.shift, Int32(n), Int32(co), 1, finish.relu ? 1 : 0)
    }

    /// dW [CO, K] += dY^T X; db += the columns' sums of dY [N, CO]; dX [N, K] = dY W.
    func fullyConnectedBackward(_ input: Tensor, _ outputGradient: Tensor, _ plan: ConvolutionPlan, inputGradient dx: Tensor) {
        let (n, co, k) = (input.shape[0], outputChannels, plan.k)
        let dy = outputGradient.data
        Gemm.multiply(transposeA: true, m: co, n: k, k: n, a: dy, lda: co, b: input.data, ldb: k, beta: 1,
                      c: weight.gradient.data, ldc: k)
        if let bias { cnn_accumulate_channel_sums(dy, bias.gradient.data, Int32(n), Int32(co), 1) }
        if computesInputGradient {
            Gemm.multiply(m: n, n: k, k: co, a: dy, lda: co, b: weight.data, ldb: k, c: dx.data, ldc: k)
        }
    }

    // MARK: - Lowered: im2col + GEMM

    func loweredForward(_ input: Tensor, _ plan: ConvolutionPlan, into y: Tensor) {
        let g = plan.geometry
        let n = input.shape[0]
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (cog, co) = (outputChannels / groups, outputChannels)
        let k = plan.k, p = oh * ow
        let (pointwise, chunks, gemmThreads, span, band) = (plan.pointwise, plan.chunks, plan.gemmThreads, plan.span, plan.band)
        let (x, out, scale, shift, relu) = (input.data, y.data, self.finish.scale, self.finish.shift, Int32(self.finish.relu ? 1 : 0))
        /// The bias (or a folded batch norm) and the fused ReLU over `count` images from `first` (one pass, or none).
        func finish(_ first: Int, _ count: Int) {
            cnn_channel_scale_shift(out + first * co * p, scale, shift, Int32(count), Int32(co), Int32(p), relu)
        }
        if !pointwise { buffers(&columns, count: chunks, shape: [k, band < oh ? band * ow : span * p]) }
        if span > 1 { buffers(&scratch, count: chunks, shape: [cog, span * p]) }
        let packed = packWeights(transposed: false, gemmThreads: gemmThreads, m: cog, k: k)
        Parallel.forEachChunk(n, chunks: chunks) { chunk, images in
            if band < oh {
                // Band by band of output rows: Y_g[:, band] = W_g x the band's columns, written straight into y.
                for image in images {
                    for group in 0..<groups {
                        let target = out + (image * co + group * cog) * p
                        for firstRow in Swift.stride(from: 0, to: oh, by: band) {
                            let rows = Swift.min(band, oh - firstRow), width = rows * ow
                            let col = lowerBand(x, shape: input.shape, geometry: g, image: image, group: group, firstRow: firstRow,
                                                rows: rows, buffer: columns[chunk])
                            multiplyByWeights(transposed: false, packed: packed, group: group, n: width, b: col, ldb: width,
                                              c: target + firstRow * ow, ldc: p, gemmThreads: gemmThreads)
                        }
                    }
                    finish(image, 1)
                }
                return
            }
            for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: span) {
                let count = Swift.min(span, images.upperBound - first), ld = count * p
                for group in 0..<groups {
                    let col = columnMatrix(x, shape: input.shape, geometry: g, images: first, count: count, group: group,
                                           buffer: pointwise ? nil : columns[chunk])
                    // Y_g [cog, count * P] = W_g [cog, K] x col; written straight into y for one image.
                    let target = count == 1 ? out + (first * co + group * cog) * p : scratch[chunk].data
                    multiplyByWeights(transposed: false, packed: packed, group: group, n: ld, b: col, ldb: ld, c: target, ldc: ld,
                                      gemmThreads: gemmThreads)
                    if count > 1 {
                        // [cog, count, P] to [count, co, P]: a transpose of P-long rows (single values for LeNet's conv3).
                        for i in 0..<count {
                            let destination = out + ((first + i) * co + group * cog) * p
                            for o in 0..<cog {
                                let row = target + o * ld + i * p, into = destination + o * p
                                for j in 0..<p { into[j] = row[j] }
                            }
                        }
                    }
                }
                finish(first, count)
            }
        }
    }

    /// dW += dY x col^T per image (or the direct weight gradient, for `.direct`), db += sums of dY, and dX = col2im of
    /// W^T dY; per-chunk accumulators summed in chunk order afterwards, so the result does not depend on timing.
    func loweredBackward(_ input: Tensor, _ outputGradient: Tensor, _ plan: ConvolutionPlan, inputGradient dx: Tensor) {
        let g = plan.geometry
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (cg, cog, co) = (c / groups, outputChannels / groups, outputChannels)
        let (kh, kw) = kernelSize
        let k = plan.k, p = oh * ow
        let (pointwise, chunks, gemmThreads, span, band) = (plan.pointwise, plan.chunks, plan.gemmThreads, plan.span, plan.band)
        if !pointwise {
            buffers(&columns, count: chunks, shape: [k, band < oh ? band * ow : span * p])
            buffers(&columnGradients, count: chunks, shape: [k, band < oh ? band * ow : span * p])
        }
        if span > 1 { buffers(&scratch, count: chunks, shape: [cog, span * p]) }
        // Per-chunk gradient accumulators, summed in chunk order afterwards: the result does not depend on timing.
        // The weights' accumulators come from the gradient pool and go back to it at the end: one layer's at a time.
        if weightGradients.count != chunks { weightGradients = Array(repeating: nil, count: chunks) }
        let partialWeights = (0..<chunks).map { Tensor.reuseGradient(&weightGradients[$0], shape: weight.shape) }
        buffers(&biasGradients, count: chunks, shape: [co])
        let x = input.data, dy = outputGradient.data, dxData = dx.data
        let needDX = computesInputGradient
        let direct = plan.backward == .direct || plan.backward == .directChannels
        let packed = needDX ? packWeights(transposed: true, gemmThreads: gemmThreads, m: k, k: cog) : nil
        Parallel.forEachChunk(n, chunks: chunks) { chunk, images in
            let dw = partialWeights[chunk].data, db = biasGradients[chunk].data
            partialWeights[chunk].zero()
            biasGradients[chunk].zero()
            cnn_accumulate_channel_sums(dy + images.lowerBound * co * p, db, Int32(images.count), Int32(co), Int32(p))
            if plan.backward == .directChannels {
                cnn_conv2d_direct_channels_weight_gradient(x + images.lowerBound * c * h * w, Int32(images.count), Int32(c), Int32(h),
                                                           Int32(w), dy + images.lowerBound * co * p, Int32(co), Int32(kh), Int32(kw),
                                                           Int32(oh), Int32(ow), dw)
                guard needDX else { return }
            } else if direct {
                for image in images {
                    cnn_conv2d_direct_weight_gradient(x + image * c * h * w, Int32(c), Int32(h), Int32(w), dy + image * co * p,
                                                      Int32(co), Int32(kh), Int32(kw), Int32(oh), Int32(ow), dw)
                }
                guard needDX else { return }
            }
            if band < oh {
                // Band by band of output rows: dW_g += dY_g[:, band] x the band's columns^T; dX gets the band's col2im.
                for image in images {
                    for group in 0..<groups {
                        let dyg = dy + (image * co + group * cog) * p
                        let dxg = dxData + (image * c + group * cg) * h * w
                        if needDX { dxg.update(repeating: 0, count: cg * h * w) }
                        for firstRow in Swift.stride(from: 0, to: oh, by: band) {
                            let rows = Swift.min(band, oh - firstRow), width = rows * ow
                            let bandDY = dyg + firstRow * ow
                            if !direct {
                                let col = lowerBand(x, shape: input.shape, geometry: g, image: image, group: group, firstRow: firstRow,
                                                    rows: rows, buffer: columns[chunk])
                                Gemm.multiply(transposeB: true, m: cog, n: k, k: width, a: bandDY, lda: p, b: col, ldb: width,
                                              beta: 1, c: dw + group * cog * k, ldc: k, threads: gemmThreads)
                            }
                            guard needDX else { continue }
                            let dcol = columnGradients[chunk].data
                            multiplyByWeights(transposed: true, packed: packed, group: group, n: width, b: bandDY, ldb: p, c: dcol,
                                              ldc: width, gemmThreads: gemmThreads)
                            cnn_col2im(dcol, Int32(cg), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(stride.height), Int32(stride.width),
                                       Int32(g.padTop - firstRow * stride.height), Int32(g.padLeft), Int32(rows), Int32(ow), dxg,
                                       Int32(width))
                        }
                    }
                }
                return
            }
            for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: span) {
                let count = Swift.min(span, images.upperBound - first), ld = count * p
                for group in 0..<groups {
                    // dY_g as [cog, count * P]: gathered from the images when there are several.
                    var dyg = dy + (first * co + group * cog) * p
                    if count > 1 {
                        let gathered = scratch[chunk].data
                        for i in 0..<count {
                            for o in 0..<cog {
                                (gathered + o * ld + i * p).update(from: dy + ((first + i) * co + group * cog + o) * p, count: p)
                            }
                        }
                        dyg = gathered
                    }
                    // dW_g += dY_g [cog, count * P] x col^T [count * P, K] (unless a direct kernel did it)
                    if !direct {
                        let col = columnMatrix(x, shape: input.shape, geometry: g, images: first, count: count, group: group,
                                               buffer: pointwise ? nil : columns[chunk])
                        Gemm.multiply(transposeB: true, m: cog, n: k, k: ld, a: dyg, lda: ld, b: col, ldb: ld,
                                      beta: 1, c: dw + group * cog * k, ldc: k, threads: gemmThreads)
                    }
                    guard needDX else { continue }
                    // dcol = W_g^T [K, cog] x dY_g, then scattered back onto each image.
                    if pointwise {
                        let target = dxData + (first * c + group * cg) * h * w
                        multiplyByWeights(transposed: true, packed: packed, group: group, n: p, b: dyg, ldb: p, c: target, ldc: p,
                                          gemmThreads: gemmThreads)
                    } else {
                        let dcol = columnGradients[chunk].data
                        multiplyByWeights(transposed: true, packed: packed, group: group, n: ld, b: dyg, ldb: ld, c: dcol, ldc: ld,
                                          gemmThreads: gemmThreads)
                        for i in 0..<count {
                            let dxg = dxData + ((first + i) * c + group * cg) * h * w
                            dxg.update(repeating: 0, count: cg * h * w)
                            cnn_col2im(dcol + i * p, Int32(cg), Int32(h), Int32(w), Int32(kh), Int32(kw), Int32(stride.height),
                                       Int32(stride.width), Int32(g.padTop), Int32(g.padLeft), Int32(oh), Int32(ow), dxg, Int32(ld))
                        }
                    }
                }
            }
        }
        accumulate(partialWeights, into: weight.gradient)
        for chunk in 0..<chunks { Tensor.releaseGradient(&weightGradients[chunk]) }
        if let bias { accumulate(biasGradients, into: bias.gradient) }
    }

    /// The column matrix [K, rows * OW] of output rows `firstRow ..< firstRow + rows` of one image in `group`.
    private func lowerBand(_ x: UnsafeMutablePointer<Float>, shape: [Int], geometry g: WindowGeometry, image: Int, group: Int,
                           firstRow: Int, rows: Int, buffer: Tensor) -> UnsafeMutablePointer<Float> {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let cg = c / groups
        // Output row r of the band is output row firstRow + r: the same window with the padding moved up.
        cnn_im2col(x + (image * c + group * cg) * h * w, Int32(cg), Int32(h), Int32(w), Int32(kernelSize.height),
                   Int32(kernelSize.width), Int32(stride.height), Int32(stride.width), Int32(g.padTop - firstRow * stride.height),
                   Int32(g.padLeft), Int32(rows), Int32(g.outputWidth), buffer.data, Int32(rows * g.outputWidth))
        return buffer.data
    }

    /// The column matrix [K, count * P] of images `first ..< first + count` in `group`, the images side by side:
    /// the input itself for a 1x1 stride-1 kernel (no `buffer`), otherwise im2col of each image into `buffer`.
    private func columnMatrix(_ x: UnsafeMutablePointer<Float>, shape: [Int], geometry g: WindowGeometry, images first: Int,
                              count: Int, group: Int, buffer: Tensor?) -> UnsafeMutablePointer<Float> {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let cg = c / groups, p = g.outputHeight * g.outputWidth
        guard let buffer else { return x + (first * c + group * cg) * h * w }
        let col = buffer.data
        for i in 0..<count {
            cnn_im2col(x + ((first + i) * c + group * cg) * h * w, Int32(cg), Int32(h), Int32(w), Int32(kernelSize.height),
                       Int32(kernelSize.width), Int32(stride.height), Int32(stride.width), Int32(g.padTop), Int32(g.padLeft),
                       Int32(g.outputHeight), Int32(g.outputWidth), col + i * p, Int32(count * p))
        }
        return col
    }

    /// Each group's W_g [cog, K] (or W_g^T [K, cog] when `transposed`) packed for `Gemm.multiply(packedA:)`, when
    /// the batch is split over the threads (`gemmThreads` 1), so that every image's GEMM uses it; nil otherwise.
    private func packWeights(transposed: Bool, gemmThreads: Int, m: Int, k: Int) -> [UnsafePointer<Float>]? {
        guard gemmThreads == 1 else { return nil }
        if packedWeights.count != groups { packedWeights = Array(repeating: nil, count: groups) }
        let cog = outputChannels / groups, fanIn = (inputChannels / groups) * kernelSize.height * kernelSize.width
        return (0..<groups).map { group in
            Gemm.pack(transposeA: transposed, m: m, k: k, a: weight.data + group * cog * fanIn, lda: fanIn, into: &packedWeights[group])
        }
    }

    /// C = W_g B (forward) or W_g^T B (`transposed`: the input gradient's columns) for `group`, n columns, with the
    /// weights packed once by `packWeights` (`packed`) or packed inside the GEMM.
    private func multiplyByWeights(transposed: Bool, packed: [UnsafePointer<Float>]?, group: Int, n: Int, b: UnsafePointer<Float>,
                                   ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, gemmThreads: Int) {
        let cog = outputChannels / groups, k = (inputChannels / groups) * kernelSize.height * kernelSize.width
        let (rows, depth) = transposed ? (k, cog) : (cog, k)
        if let packed {
            Gemm.multiply(packedA: packed[group], m: rows, n: n, k: depth, b: b, ldb: ldb, c: c, ldc: ldc, threads: 1)
        } else {
            Gemm.multiply(transposeA: transposed, m: rows, n: n, k: depth, a: weight.data + group * cog * k, lda: k, b: b, ldb: ldb,
                          c: c, ldc: ldc, threads: gemmThreads)
        }
    }

    private func buffers(_ list: inout [Tensor], count: Int, shape: [Int]) {
        if list.count != count || list.first?.shape != shape { list = (0..<count).map { _ in Tensor(shape: shape) } }
    }
}

/// Adds each of `parts` into `target`, in order.
func accumulate(_ parts: [Tensor], into target: Tensor) {
    for part in parts { cnn_add(target.data, part.data, target.count) }
}
