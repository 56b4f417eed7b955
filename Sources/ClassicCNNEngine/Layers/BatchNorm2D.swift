// Batch normalisation over the channels of NCHW tensors (Ioffe and Szegedy 2015, "Batch normalization:
// accelerating deep network training by reducing internal covariate shift", algorithms 1 and 2), with PyTorch's
// semantics and names (torch.nn.BatchNorm2d), as Inception v2 / v3 / v4 and Inception-ResNet use it.
//
// Legend: N batch, C channels, P = H * W, m = N * P values per channel.

/// Normalises each channel with the statistics of the batch in training and with running estimates in inference,
/// then scales and shifts it:
///
///     y = (x - mean) / sqrt(variance + epsilon) * weight + bias
///
/// In training, `mean` and `variance` are the batch's (the biased variance, divided by m), and the running
/// estimates move towards them: `running = (1 - momentum) * running + momentum * batch`, with the unbiased variance
/// (divided by m - 1) for `runningVar`. In inference the running estimates are used. `momentum` is PyTorch's;
/// Keras's `momentum` is 1 minus it (0.99 in Keras is 0.01 here).
///
/// The running estimates are non-trainable parameters named `running_mean` and `running_var`, beside the trainable
/// `weight` (gamma) and `bias` (beta), so that checkpoints use torchvision's names; optimizers leave them alone.
/// (torchvision's `num_batches_tracked` counter is not kept: it only matters for `momentum=None`.)
import CNNKernels

public final class BatchNorm2D: Layer, Initializable, ReLUFusing {
    public let kind = "BatchNorm2D"
    public let channels: Int
    /// Added to the variance before its square root.
    public let epsilon: Float
    /// The weight of the batch's statistics in the running estimates (PyTorch's convention).
    public let momentum: Float
    /// gamma [C], or nil without `scale` (Keras's `scale=False`: the weight is 1).
    public let weight: Parameter?
    /// beta [C], or nil without `center` (Keras's `center=False`: the bias is 0).
    public let bias: Parameter?
    /// The running mean [C], used in inference; not trainable.
    public let runningMean: Parameter
    /// The running (unbiased) variance [C], used in inference; not trainable.
    public let runningVar: Parameter

    private var input: Tensor?, output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
    /// Per channel, from the last forward: the mean and 1 / sqrt(variance + epsilon) that it used.
    private var mean: [Float] = [], inverseDeviation: [Float] = []
    private var usedBatchStatistics = false
    /// Whether the output is written rectified, for the ReLU after this layer; backward then takes the ReLU's
    /// derivative too (see `ReLUFusing`).
    package var fusesReLU = false
    let appliesReLUDerivative = true
    /// Data-parallel training with synchronized batch norm (`TrainingOptions.synchronizesBatchNorm`): the batch's
    /// statistics, and in backward the sums through them, are those of the whole step's batch over all ranks (as
    /// PyTorch's SyncBatchNorm), so the ranks together train as one process would. Nil: this rank's own images.
    package var synchronizer: (any Communicator)?
    /// With a synchronizer: this rank's share of the step's values per channel, from the last forward.
    private var share = 1.0, globalValues = 0
    /// Whether the convolution before this layer applies it at inference (`Sequential.foldsBatchNorm`): an inference
    /// forward then passes its input through.
    package var isFolded = false

    /// `scale` adds the trainable weight (gamma), `center` the trainable bias (beta).
    public init(channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, scale: Bool = true, center: Bool = true) {
        precondition(channels > 0 && epsilon >= 0 && (0...1).contains(momentum))
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        weight = scale ? Parameter(Tensor(shape: [channels], repeating: 1)) : nil
        bias = center ? Parameter(Tensor(shape: [channels])) : nil
        runningMean = Parameter(Tensor(shape: [channels]), trainable: false)
        runningVar = Parameter(Tensor(shape: [channels], repeating: 1), trainable: false)
    }

    /// PyTorch's spelling: `affine` is `scale` and `center` together.
    public convenience init(channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, affine: Bool) {
        self.init(channels: channels, epsilon: epsilon, momentum: momentum, scale: affine, center: affine)
    }

    public var ownParameters: [(name: String, parameter: Parameter)] {
        var result: [(name: String, parameter: Parameter)] = []
        if let weight { result.append((name: "weight", parameter: weight)) }
        if let bias { result.append((name: "bias", parameter: bias)) }
        return result + [(name: "running_mean", parameter: runningMean), (name: "running_var", parameter: runningVar)]
    }

    /// PyTorch's `reset_parameters`: weight 1, bias 0, running mean 0, running variance 1 (draws nothing).
    public func resetParameters(using rng: inout RandomGenerator) {
        weight?.value.withUnsafeMutableBufferPointer { $0.update(repeating: 1) }
        bias?.value.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        runningMean.value.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        runningVar.value.withUnsafeMutableBufferPointer { $0.update(repeating: 1) }
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4 else {
            throw ShapeError(layer: kind, "expects an N x C x H x W input, got \(inputShape.shapeText())")
        }
        guard inputShape[1] == channels else { throw ShapeError(layer: kind, "expects \(channels) channels, got \(inputShape[1])") }
        return inputShape
    }

    /// One multiply-add per value once folded into the preceding layer's weights (inference).
    public func cost(inputShape: [Int]) -> LayerCost {
        let values = inputShape.dropFirst().reduce(1, *)
        return LayerCost(connections: values, multiplyAdds: values)
    }

    /// The inference transform as one scale and shift per channel, with a preceding bias (or nil) folded in:
    /// bn(x + bias) = x * scale + shift, scale = gamma / sqrt(running variance + epsilon),
    /// shift = beta + (bias - running mean) * scale.
    package func foldedScaleShift(bias: UnsafePointer<Float>?, scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        let gamma = weight?.data, beta = self.bias?.data
        let runMean = runningMean.data, runVar = runningVar.data
        for ch in 0..<channels {
            let a = (gamma?[ch] ?? 1) * (1 / (runVar[ch] + epsilon).squareRoot())
            scale[ch] = a
            shift[ch] = (beta?[ch] ?? 0) + ((bias?[ch] ?? 0) - runMean[ch]) * a
        }
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        _ = try! outputShape(for: input.shape)
        if isFolded && !training {
            self.input = nil
            return input
        }
        let (n, c, p) = (input.shape[0], channels, input.shape[2] * input.shape[3])
        let m = n * p
        let y = Tensor.reuse(&output, shape: input.shape)
        self.input = input
        // Frozen (fine-tuning), the layer stays in inference mode, as Keras's BatchNormalization with trainable=False.
        let training = training && !runningMean.isFrozen
        usedBatchStatistics = training
        if mean.count != c {
            mean = [Float](repeating: 0, count: c)
            inverseDeviation = [Float](repeating: 0, count: c)
        }
        let x = input.data, out = y.data
        let gamma = weight?.data, beta = bias?.data
        let runMean = runningMean.data, runVar = runningVar.data
        if training {
            runningMean.markChanged()
            runningVar.markChanged()
            precondition(m > 1, "BatchNorm2D needs more than one value per channel in training, got \(input.shape.shapeText())")
        }
        let epsilon = self.epsilon, momentum = self.momentum, relu: Int32 = fusesReLU ? 1 : 0
        if training, let synchronizer {
            // The whole step's statistics: each rank's sums of x and x^2 per channel (in double), summed over the ranks.
            var sums = [Double](repeating: 0, count: 2 * c + 1)
            sums.withUnsafeMutableBufferPointer { buffer in
                let s = buffer.baseAddress!
                Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                    for ch in range {
                        var batchMean = 0.0, variance = 0.0
                        cnn_channel_moments(x, Int32(n), Int32(c), Int32(p), Int32(ch), &batchMean, &variance)
                        s[ch] = batchMean * Double(m)
                        s[c + ch] = (variance + batchMean * batchMean) * Double(m)
                    }
                }
            }
            sums[2 * c] = Double(m)
            synchronizer.sum(&sums, what: "the batch statistics of a batch norm")
            let total = sums[2 * c]
            (share, globalValues) = (Double(m) / total, Int(total))
            for ch in 0..<c {
                let globalMean = sums[ch] / total, variance = max(sums[c + ch] / total - globalMean * globalMean, 0)
                mean[ch] = Float(globalMean)
                inverseDeviation[ch] = Float(1 / (variance + Double(epsilon)).squareRoot())
                runMean[ch] = (1 - momentum) * runMean[ch] + momentum * Float(globalMean)
                runVar[ch] = (1 - momentum) * runVar[ch] + momentum * Float(variance * total / max(total - 1, 1))
            }
            mean.withUnsafeBufferPointer { mu in
                inverseDeviation.withUnsafeBufferPointer { inv in
                    Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                        for ch in range {
                            let a = (gamma?[ch] ?? 1) * inv[ch]
                            cnn_channel_affine(x, out, Int32(n), Int32(c), Int32(p), Int32(ch), a, (beta?[ch] ?? 0) - mu[ch] * a, relu)
                        }
                    }
                }
            }
            return y
        }
        share = 1
        mean.withUnsafeMutableBufferPointer { meanBuffer in
            inverseDeviation.withUnsafeMutableBufferPointer { inverseBuffer in
                let mu = meanBuffer.baseAddress!, inv = inverseBuffer.baseAddress!
                // Channels are independent: each thread takes whole channels, so results do not depend on timing.
                Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                    for ch in range {
                        if training {
                            var batchMean = 0.0, variance = 0.0
                            cnn_channel_moments(x, Int32(n), Int32(c), Int32(p), Int32(ch), &batchMean, &variance)
                            mu[ch] = Float(batchMean)
                            inv[ch] = Float(1 / (variance + Double(epsilon)).squareRoot())
                            runMean[ch] = (1 - momentum) * runMean[ch] + momentum * Float(batchMean)
                            runVar[ch] = (1 - momentum) * runVar[ch] + momentum * Float(variance * Double(m) / Double(m - 1))
                        } else {
                            mu[ch] = runMean[ch]
                            inv[ch] = 1 / (runVar[ch] + epsilon).squareRoot()
                        }
                        // y = x * a + b with a = gamma / deviation, b = beta - mean * a (then the fused ReLU).
                        let a = (gamma?[ch] ?? 1) * inv[ch]
                        let b = (beta?[ch] ?? 0) - mu[ch] * a
                        cnn_channel_affine(x, out, Int32(n), Int32(c), Int32(p), Int32(ch), a, b, relu)
                    }
                }
            }
        }
        return y
    }

    /// After a training forward, the full gradient through the batch statistics:
    /// dx = gamma / deviation * (dy - mean(dy) - xhat * mean(dy * xhat)). After an inference forward, the statistics
    /// are constants: dx = gamma / deviation * dy (fine-tuning with frozen statistics).
    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input else { fatalError("BatchNorm2D.backward before forward") }
        let (n, c, p) = (input.shape[0], channels, input.shape[2] * input.shape[3])
        let m = n * p
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        let x = input.data, dy = outputGradient.data, d = dx.data
        let gamma = weight?.data
        let gammaGradient = weight?.gradient.data, betaGradient = bias?.gradient.data
        let batch = usedBatchStatistics
        // With the ReLU fused, dy is masked by the rectified output first (its derivative).
        let rectified = fusesReLU ? output?.data : nil
        if batch, let synchronizer {
            // This rank's dy is the gradient of its own images' mean loss; weighted by its share it is in the units of
            // the whole batch's mean loss, in which the ranks' sums add up. Its own gradients (gamma, beta) stay local:
            // the gradient averaging weights them the same way.
            var sums = [Double](repeating: 0, count: 2 * c)
            sums.withUnsafeMutableBufferPointer { buffer in
                let s = buffer.baseAddress!
                mean.withUnsafeBufferPointer { mu in
                    inverseDeviation.withUnsafeBufferPointer { inv in
                        Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                            for ch in range {
                                var sumDY = 0.0, sumDYXhat = 0.0
                                cnn_bn_gradient_sums(x, dy, rectified, Int32(n), Int32(c), Int32(p), Int32(ch), mu[ch], inv[ch], &sumDY, &sumDYXhat)
                                gammaGradient?[ch] += Float(sumDYXhat)
                                betaGradient?[ch] += Float(sumDY)
                                s[ch] = sumDY
                                s[c + ch] = sumDYXhat
                            }
                        }
                    }
                }
            }
            let share = self.share
            for i in sums.indices { sums[i] *= share }
            synchronizer.sum(&sums, what: "the gradient sums of a batch norm")
            // Back in this rank's units: the whole batch's means divided by the share.
            let scale = 1 / (Double(globalValues) * share)
            mean.withUnsafeBufferPointer { mu in
                inverseDeviation.withUnsafeBufferPointer { inv in
                    Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                        for ch in range {
                            let a = (gamma?[ch] ?? 1) * inv[ch]
                            cnn_bn_input_gradient(x, dy, rectified, d, Int32(n), Int32(c), Int32(p), Int32(ch), mu[ch], inv[ch], a,
                                                  Float(sums[ch] * scale), Float(sums[c + ch] * scale))
                        }
                    }
                }
            }
            return dx
        }
        mean.withUnsafeBufferPointer { meanBuffer in
            inverseDeviation.withUnsafeBufferPointer { inverseBuffer in
                let mu = meanBuffer.baseAddress!, inv = inverseBuffer.baseAddress!
                Parallel.forEachSlice(c, grain: max(1, (1 << 15) / max(m, 1))) { range in
                    for ch in range {
                        // sum(dy) and sum(dy * xhat), xhat = (x - mean) / deviation.
                        var sumDY = 0.0, sumDYXhat = 0.0
                        cnn_bn_gradient_sums(x, dy, rectified, Int32(n), Int32(c), Int32(p), Int32(ch), mu[ch], inv[ch], &sumDY, &sumDYXhat)
                        gammaGradient?[ch] += Float(sumDYXhat)
                        betaGradient?[ch] += Float(sumDY)
                        let a = (gamma?[ch] ?? 1) * inv[ch]
                        let meanDY = batch ? Float(sumDY / Double(m)) : 0
                        let meanDYXhat = batch ? Float(sumDYXhat / Double(m)) : 0
                        cnn_bn_input_gradient(x, dy, rectified, d, Int32(n), Int32(c), Int32(p), Int32(ch), mu[ch], inv[ch], a,
                                              meanDY, meanDYXhat)
                    }
                }
            }
        }
        return dx
    }
}
