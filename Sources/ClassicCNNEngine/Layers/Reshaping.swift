// Flatten and Dropout: layers without parameters that reshape or mask.
import CNNKernels

/// [N, C, H, W] to [N, C * H * W]; shares storage, costs nothing.
public final class Flatten: Layer {
    public let kind = "Flatten"
    private var inputShape: [Int] = []
    public init() {}

    public func outputShape(for inputShape: [Int]) throws -> [Int] { [inputShape[0], inputShape.dropFirst().reduce(1, *)] }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        inputShape = input.shape
        return input.reshaped([input.shape[0], input.count / max(input.shape[0], 1)])
    }

    public func backward(_ outputGradient: Tensor) -> Tensor { outputGradient.reshaped(inputShape) }
}

/// Inverted dropout: in training each element is zeroed with probability `rate` and the rest scaled by
/// 1 / (1 - rate), so inference is the identity. The mask comes from the layer's own seeded generator.
public final class Dropout: Layer {
    public let kind = "Dropout"
    public let rate: Float
    /// The generator of the masks; seeded by `Model` from the run's seed, saved in checkpoints.
    public var rng = RandomGenerator(seed: 0)
    private var mask: Tensor?, output: Tensor?, inputGradient: Tensor?
    /// The seeds of the 16 generators of the last mask, drawn from `rng` (kept, so that a pass allocates nothing).
    private var seeds = [UInt64](repeating: 0, count: 16)
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }
    private var wasTraining = false
    /// In data-parallel training, where this rank's images sit in the step's whole batch (`Model.setBatchShard`):
    /// the mask is drawn for the whole batch, as one process would draw it, and this rank uses its rows. Nil: the
    /// input is the whole batch.
    package var rowShard: (offset: Int, globalRows: Int)?
    private var globalInput: Tensor?, globalMask: Tensor?, globalOutput: Tensor?

    public init(rate: Float) {
        precondition(rate >= 0 && rate < 1, "dropout rate must be in [0, 1)")
        self.rate = rate
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        wasTraining = training && rate > 0
        guard wasTraining else { return input }
        let m = Tensor.reuse(&mask, shape: input.shape)
        let y = Tensor.reuse(&output, shape: input.shape)
        // 16 generators in lockstep (vector instructions), seeded from this layer's generator, whose four words
        // therefore still say all that a checkpoint needs. `Dropout.naiveMask` is the same in plain Swift.
        for lane in seeds.indices { seeds[lane] = rng.next() }
        let rows = input.shape[0]
        if let shard = rowShard, shard.globalRows != rows, rows > 0 {
            let perRow = input.count / rows
            var shape = input.shape
            shape[0] = shard.globalRows
            let x = Tensor.reuse(&globalInput, shape: shape), mask = Tensor.reuse(&globalMask, shape: shape)
            let out = Tensor.reuse(&globalOutput, shape: shape)
            cnn_dropout_forward(x.data, out.data, mask.data, x.count, 1 - rate, seeds)
            m.data.update(from: mask.data + shard.offset * perRow, count: input.count)
            cnn_multiply(input.data, m.data, y.data, input.count)
            return y
        }
        cnn_dropout_forward(input.data, y.data, m.data, input.count, 1 - rate, seeds)
        return y
    }

    /// The mask `forward` draws from 16 generators seeded with `seeds`, one element at a time: its naive twin.
    package static func naiveMask(count: Int, rate: Float, seeds: [UInt64]) -> [Float] {
        var lanes = seeds.map { RandomGenerator(seed: $0) }
        let keep = 1 - rate
        return (0..<count).map { i in lanes[i % lanes.count].nextFloat() < keep ? 1 / keep : 0 }
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard wasTraining, let mask else { return outputGradient }
        let dx = Tensor.reuseGradient(&inputGradient, shape: outputGradient.shape)
        cnn_multiply(outputGradient.data, mask.data, dx.data, outputGradient.count)
        return dx
    }
}
