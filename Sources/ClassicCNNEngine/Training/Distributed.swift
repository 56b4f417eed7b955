// Data-parallel training, as PyTorch's DistributedDataParallel and Horovod do it: every rank holds the whole model,
// reads its own share of each batch, and the gradients are averaged over the ranks in buckets that start while the
// backward pass is still running. The engine knows only the `Communicator` protocol; `ClassicCNNMPI` implements it
// over Open MPI (the package trait MPI).

/// The processes of a data-parallel run and the collectives that training needs. Every rank calls the same
/// collectives in the same order; a request is a number that `test` and `wait` take.
public protocol Communicator: AnyObject {
    /// This process's number, 0 ..< size. Rank 0 prints, logs and writes checkpoints.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Starts summing `count` floats at `buffer` over the ranks, in place, without waiting; the buffer must stay
    /// untouched until the request is complete.
    func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, what: String) -> Int
    /// True once the request is complete; calling it also lets pending requests progress.
    func test(_ request: Int) -> Bool
    /// Waits for the request (a communicator may give up after a time limit and stop every rank, saying what hung).
    func wait(_ request: Int)
    /// Sums `values` over the ranks (blocking).
    func sum(_ values: inout [Double], what: String)
    /// Rank `root`'s bytes, copied into every other rank's buffer (blocking).
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, from root: Int, what: String)
}

extension Communicator {
    /// Rank `root`'s floats in every rank's tensor.
    public func broadcast(_ tensor: Tensor, from root: Int = 0, what: String) {
        broadcast(UnsafeMutableRawPointer(tensor.data), bytes: tensor.count * MemoryLayout<Float>.stride, from: root, what: what)
    }
}

/// One rank's share of a batch (or of a dataset): `size` ranks split `count` items into contiguous parts, the
/// first `count % size` one larger.
public struct Shard: Equatable, Sendable {
    public let rank: Int
    public let size: Int
    public init(rank: Int, size: Int) {
        precondition(size >= 1 && (0..<size).contains(rank), "a shard needs 0 <= rank < size")
        (self.rank, self.size) = (rank, size)
    }

    /// This rank's part of `count` items: where it starts and how many.
    public func part(of count: Int) -> (offset: Int, count: Int) {
        let base = count / size, extra = count % size
        return (rank * base + Swift.min(rank, extra), base + (rank < extra ? 1 : 0))
    }
}

/// Averages the gradients of a model's trainable parameters over the ranks during the backward pass: parameters are
/// grouped into buckets of about `bucketBytes` in the order backward finishes them (the reverse of their order in
/// the model); a bucket's sum starts as soon as the last of its parameters is done, while backward goes on with the
/// layers before it. `finish` starts what is left, waits, and writes each parameter's average back.
///
/// Each rank's loss is a mean over its own images, so its gradient is weighted by its share of the step's images
/// (`beginStep`): the sum over the ranks is then the mean over the whole batch, whatever the shares.
package final class GradientReducer {
    let communicator: any Communicator
    let parameters: [Parameter]
    /// Buckets of parameter indices, in the order they are expected to be finished.
    package let buckets: [[Int]]
    private let bucketOf: [Int]
    private let offsets: [Int]
    private var storage: [Tensor]
    /// Every layer (containers included) with the indices of the parameters below it.
    private var parametersBelow: [ObjectIdentifier: [Int]] = [:]
    private var ready: [Bool]
    private var remaining: [Int]
    private var requests: [Int?]
    /// Buckets whose sum has completed (their request is then gone).
    private var summed: [Bool]
    private var scale: Float = 1
    /// Of the last step: buckets started during backward (the rest started in `finish`), and seconds spent waiting
    /// in `finish`.
    package private(set) var startedEarly = 0
    package private(set) var waitSeconds = 0.0
    /// Whether sums start during backward (the default); false waits for backward to end, for measuring the overlap.
    package var startsDuringBackward = true
    /// The bytes one step sums over the ranks.
    package var bytesPerStep: Int { parameters.reduce(0) { $0 + $1.count } * MemoryLayout<Float>.stride }

    package init(model: Model, communicator: any Communicator, bucketBytes: Int) {
        self.communicator = communicator
        let trainable = model.parameters.map(\.parameter).filter(\.isTrainable)
        parameters = trainable
        var buckets: [[Int]] = [], current: [Int] = [], bytes = 0
        for index in trainable.indices.reversed() {
            current.append(index)
            bytes += trainable[index].count * MemoryLayout<Float>.stride
            if bytes >= bucketBytes {
                buckets.append(current)
                (current, bytes) = ([], 0)
            }
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
        var bucketOf = [Int](repeating: 0, count: trainable.count), offsets = bucketOf
        storage = buckets.enumerated().map { b, members in
            var offset = 0
            for index in members {
                (bucketOf[index], offsets[index]) = (b, offset)
                offset += trainable[index].count
            }
            return Tensor(shape: [offset])
        }
        (self.bucketOf, self.offsets) = (bucketOf, offsets)
        ready = [Bool](repeating: false, count: trainable.count)
        remaining = buckets.map(\.count)
        requests = [Int?](repeating: nil, count: buckets.count)
        summed = [Bool](repeating: false, count: buckets.count)
        let index = Dictionary(uniqueKeysWithValues: trainable.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
        for layer in Self.executedLayers(of: model.network) {
            let below = layer.namedParameters.compactMap { index[ObjectIdentifier($0.parameter)] }
            if !below.isEmpty { parametersBelow[ObjectIdentifier(layer)] = below }
            if let sequential = layer as? Sequential {
                sequential.childBackwardFinished = { [unowned self] child in self.layerFinished(child) }
            }
        }
    }

    /// Seconds one step's sums take with nothing else running: every bucket started, then all waited for (median of
    /// `repeats`). Set against `waitSeconds`, it tells how much of the communication backward hid.
    package func timeAlone(repeats: Int = 5) -> Double {
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<repeats {
            let begun = clock.now
            let started = buckets.indices.map { communicator.startSum(storage[$0].data, count: storage[$0].count, what: "the timing of the gradients' sum") }
            for request in started { communicator.wait(request) }
            let took = clock.now - begun
            times.append(Double(took.components.seconds) + Double(took.components.attoseconds) * 1e-18)
        }
        return times.sorted()[times.count / 2]
    }

    /// Removes the hooks from the model's containers.
    package func detach(from model: Model) {
        for case let sequential as Sequential in Self.executedLayers(of: model.network) { sequential.childBackwardFinished = nil }
    }

    /// Every layer that runs: the tree of `children`, and for a wired layer (an Inception module) the tree it runs.
    static func executedLayers(of root: any Layer) -> [any Layer] {
        var result: [any Layer] = [], seen = Set<ObjectIdentifier>()
        func visit(_ layer: any Layer) {
            guard seen.insert(ObjectIdentifier(layer)).inserted else { return }
            result.append(layer)
            for (_, child) in layer.children { visit(child) }
            if let wired = layer as? WiredLayer { visit(wired.wiring) }
        }
        visit(root)
        return result
    }

    /// Before a step's backward pass: this rank has `localCount` of the step's `globalCount` images.
    package func beginStep(localCount: Int, globalCount: Int) {
        scale = Float(Double(localCount) / Double(Swift.max(globalCount, 1)))
        for i in ready.indices { ready[i] = false }
        for b in buckets.indices { (remaining[b], summed[b]) = (buckets[b].count, false) }
        startedEarly = 0
    }

    /// A layer's backward pass is done: its parameters' gradients are final.
    func layerFinished(_ layer: any Layer) {
        guard startsDuringBackward, let below = parametersBelow[ObjectIdentifier(layer)] else { return }
        for index in below where !ready[index] {
            ready[index] = true
            let b = bucketOf[index]
            remaining[b] -= 1
            if remaining[b] == 0 {
                start(bucket: b)
                startedEarly += 1
            }
        }
        // Let the sums already started move on (MPI progresses non-blocking collectives inside its calls).
        for b in buckets.indices {
            if let request = requests[b], communicator.test(request) { (requests[b], summed[b]) = (nil, true) }
        }
    }

    private func start(bucket b: Int) {
        let buffer = storage[b].data
        for index in buckets[b] {
            let g = parameters[index].gradient.data, o = offsets[index]
            for i in 0..<parameters[index].count { buffer[o + i] = g[i] * scale }
        }
        requests[b] = communicator.startSum(buffer, count: storage[b].count, what: "the gradients' sum (bucket \(b + 1) of \(buckets.count))")
    }

    /// After backward: starts the buckets not yet started (in bucket order, the same on every rank), waits for all,
    /// and writes the averaged gradients back.
    package func finish() {
        for b in buckets.indices where requests[b] == nil && !summed[b] { start(bucket: b) }
        let clock = ContinuousClock(), begun = clock.now
        for b in buckets.indices {
            if let request = requests[b] { communicator.wait(request) }
            (requests[b], summed[b]) = (nil, true)
            let buffer = storage[b].data
            for index in buckets[b] {
                let g = parameters[index].gradient.data, o = offsets[index]
                for i in 0..<parameters[index].count { g[i] = buffer[o + i] }
            }
        }
        let waited = clock.now - begun
        waitSeconds = Double(waited.components.seconds) + Double(waited.components.attoseconds) * 1e-18
    }
}
