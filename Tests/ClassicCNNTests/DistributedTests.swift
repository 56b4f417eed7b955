// Data-parallel training's parts that need no MPI: the ranks' shares of each batch, dropout's masks drawn for the
// whole batch, and the gradient buckets filled during backward. The runs over real MPI (2 ranks against one process,
// failures, two hosts) are Scripts/mpi/check.sh's, which .ci/run runs.
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNZoo
import CNNKernels

/// A stand-in for the other ranks: each rank had this rank's own gradient, so every sum is `size` times the buffer.
final class MirrorCommunicator: Communicator {
    let rank = 0
    let size: Int
    /// The element count of each sum started, in order.
    private(set) var started: [Int] = []
    private var buffers: [Int: (UnsafeMutablePointer<Float>, Int)] = [:]
    init(size: Int) { self.size = size }

    func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, what: String) -> Int {
        started.append(count)
        buffers[started.count] = (buffer, count)
        return started.count
    }
    func test(_ request: Int) -> Bool { false }
    func wait(_ request: Int) {
        let (buffer, count) = buffers.removeValue(forKey: request)!
        for i in 0..<count { buffer[i] *= Float(size) }
    }
    func sum(_ values: inout [Double], what: String) { values = values.map { $0 * Double(size) } }
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, from root: Int, what: String) {}
}

@Suite("Data-parallel training without MPI: shares, dropout, gradient buckets")
struct DistributedTests {
    @Test func shardsSplitContiguouslyTheFirstOnesLarger() {
        let parts = (0..<3).map { Shard(rank: $0, size: 3).part(of: 10) }
        #expect(parts.map(\.offset) == [0, 4, 7] && parts.map(\.count) == [4, 3, 3])
        #expect((0..<4).map { Shard(rank: $0, size: 4).part(of: 2).count } == [1, 1, 0, 0])
        #expect(Shard(rank: 0, size: 1).part(of: 7) == (0, 7))
    }

    static func tinyDataset(count: Int) -> ImageDataset {
        ImageDataset(name: "tiny", channels: 1, height: 2, width: 2, pixels: (0..<(count * 4)).map { UInt8($0 % 251) },
                     labels: (0..<count).map { Int32($0 % 10) }, classNames: [])
    }

    /// Each step's batch over the ranks is one process's batch: the same images in the same order, split in parts.
    @Test(arguments: [(batch: 4, ranks: 2), (batch: 5, ranks: 2), (batch: 4, ranks: 3), (batch: 7, ranks: 4)])
    func theRanksTogetherReadTheOneProcessBatches(_ setting: (batch: Int, ranks: Int)) {
        let data = Self.tinyDataset(count: 23)
        let format = InputFormat.unit(channels: 1)
        let one = BatchLoader(dataset: data, batchSize: setting.batch, inputSize: 2, format: format, shuffleSeed: 3, epoch: 2)
        let whole = Array(one).map { Array($0.indices) }
        let ranks = (0..<setting.ranks).map { rank in
            BatchLoader(dataset: data, batchSize: setting.batch, inputSize: 2, format: format, shuffleSeed: 3, epoch: 2,
                        shard: Shard(rank: rank, size: setting.ranks))
        }
        let counts = Set(ranks.map(\.batchCount))
        #expect(counts.count == 1, "every rank must take the same number of steps")
        // A last batch smaller than the number of ranks is left out on every rank.
        let kept = whole.last!.count < setting.ranks ? whole.dropLast() : whole[...]
        #expect(counts.first == kept.count)
        let iterators = ranks.map { $0.makeIterator() }
        for expected in kept {
            var joined: [Int] = []
            for r in iterators.indices {
                let batch = iterators[r].next()!
                #expect(batch.globalCount == expected.count)
                #expect(batch.globalOffset == joined.count)
                #expect(batch.labels.count == batch.indices.count && batch.images.shape[0] == batch.indices.count)
                #expect(Array(batch.labels) == batch.indices.map { data.labels[$0] })
                joined += batch.indices
            }
            #expect(joined == expected)
        }
        for r in iterators.indices { #expect(iterators[r].next() == nil) }
    }

    /// A rank's dropout masks are the rows of the mask one process draws for the whole batch.
    @Test func dropoutDrawsTheWholeBatchsMaskAndKeepsItsRows() {
        let whole = Dropout(rate: 0.5), part = Dropout(rate: 0.5)
        whole.rng = RandomGenerator(seed: 17)
        part.rng = RandomGenerator(seed: 17)
        let input = Tensor(shape: [6, 5, 3], values: (0..<90).map { Float($0) - 40 })
        let rows = Tensor(shape: [3, 5, 3], values: Array(input.values[30..<75]))
        part.rowShard = (offset: 2, globalRows: 6)
        for _ in 0..<3 {
            let full = whole.forward(input, training: true)
            let mine = part.forward(rows, training: true)
            #expect(mine.values == Array(full.values[30..<75]))
            let g = Tensor(shape: [3, 5, 3], values: (0..<45).map { Float($0) })
            let gFull = Tensor(shape: [6, 5, 3], values: [Float](repeating: 0, count: 30) + g.values + [Float](repeating: 0, count: 15))
            #expect(part.backward(g).values == Array(whole.backward(gFull).values[30..<75]))
        }
        #expect(whole.rng.stateWords == part.rng.stateWords)
    }

    /// The buckets cover every trainable parameter once, start during backward, and give back the gradient weighted
    /// by this rank's share and summed: with every rank holding the same gradient, exactly the one-process gradient.
    @Test(arguments: ["lenet5", "alexnet-cifar", "googlenet"])
    func bucketsStartDuringBackwardAndAverage(_ name: String) throws {
        let size = name == "lenet5" ? 32 : name == "alexnet-cifar" ? 32 : 96
        func gradients(reduced: Bool) throws -> (gradients: [[Float]], communicator: MirrorCommunicator?, reducer: GradientReducer?) {
            let model = try ModelZoo.make(name, inputSize: size, seed: 4)
            var generator = RandomGenerator(seed: 8)
            let batch = Tensor(shape: [4] + model.inputShape, values: (0..<(4 * model.inputShape.reduce(1, *))).map { _ in generator.nextFloat() })
            var communicator: MirrorCommunicator?, reducer: GradientReducer?
            if reduced {
                communicator = MirrorCommunicator(size: 2)
                reducer = GradientReducer(model: model, communicator: communicator!, bucketBytes: 64 << 10)
                model.gradientReducer = reducer
                model.setBatchShard((offset: 0, globalRows: 8))
            }
            model.trainStep(batch: batch, labels: [1, 2, 3, 4], optimizer: SGD(learningRate: 0))
            reducer?.detach(from: model)
            return (model.parameters.filter { $0.parameter.isTrainable }.map { $0.parameter.gradient.values }, communicator, reducer)
        }
        let plain = try gradients(reduced: false)
        let averaged = try gradients(reduced: true)
        #expect(plain.gradients == averaged.gradients, "\(name): x 1/2, summed over 2 identical ranks, is the gradient itself")
        let reducer = try #require(averaged.reducer), started = try #require(averaged.communicator?.started)
        #expect(reducer.buckets.count > 1)
        #expect(started.count == reducer.buckets.count, "each bucket summed once")
        #expect(started.reduce(0, +) == plain.gradients.reduce(0) { $0 + $1.count })
        #expect(Set(reducer.buckets.joined()).count == plain.gradients.count)
        #expect(reducer.startedEarly == reducer.buckets.count, "\(name): every bucket should start during backward")
        // The order of the sums is a function of the network alone, so every rank starts them in the same order.
        #expect(try gradients(reduced: true).communicator?.started == started)
    }
}
