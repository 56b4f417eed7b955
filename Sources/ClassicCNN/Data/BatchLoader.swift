// Batches for training and evaluation: a seeded shuffle per epoch, images converted to the model's input on a
// background thread one batch ahead, into a small ring of preallocated slots (memory: a few batches, whatever
// the dataset's size).
import Foundation

/// One batch: images [N, C, S, S] and labels. Valid until the loader hands out the slot again.
public struct Batch {
    public let images: Tensor
    public let labels: UnsafeBufferPointer<Int32>
    /// Indices of the images in the dataset.
    public let indices: ArraySlice<Int>
}

public final class BatchLoader: Sequence, IteratorProtocol {
    public let dataset: ImageDataset
    public let batchSize: Int
    public let inputSize: Int
    public let format: InputFormat
    /// The order of this epoch's images.
    public let order: [Int]
    public var batchCount: Int { (order.count + batchSize - 1) / batchSize }

    private let slotCount = 3
    /// A preallocated batch: images and labels written in place by the producer.
    private final class Slot {
        let images: Tensor
        let labels: UnsafeMutableBufferPointer<Int32>
        init(images: Tensor) {
            self.images = images
            labels = .allocate(capacity: images.shape[0])
            labels.initialize(repeating: 0)
        }
        deinit { labels.deallocate() }
    }
    private var slots: [Slot] = []
    private var partialSlot: Slot?
    private let filled = DispatchSemaphore(value: 0), free: DispatchSemaphore
    private var nextToConsume: Int
    private let firstBatch: Int
    private var worker: Thread?
    private let stopLock = NSLock()
    private var stopped = false

    /// - Parameters:
    ///   - shuffleSeed: nil keeps the dataset's order; otherwise the permutation is a function of (seed, epoch) only,
    ///     so a resumed run sees the same order.
    ///   - startBatch: the first batch to produce (to resume inside an epoch).
    ///   - limit: at most this many images (nil: all).
    public init(dataset: ImageDataset, batchSize: Int, inputSize: Int, format: InputFormat, shuffleSeed: UInt64?,
                epoch: Int = 0, startBatch: Int = 0, limit: Int? = nil) {
        self.dataset = dataset
        self.batchSize = batchSize
        self.inputSize = inputSize
        self.format = format
        var order = Array(0..<dataset.count)
        if let seed = shuffleSeed {
            var rng = RandomGenerator(seed: seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1)))
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        if let limit { order = Array(order.prefix(limit)) }
        self.order = order
        free = DispatchSemaphore(value: slotCount)
        firstBatch = Swift.min(startBatch, (order.count + batchSize - 1) / batchSize)
        nextToConsume = firstBatch
        let shape = [batchSize, dataset.channels, inputSize, inputSize]
        slots = (0..<slotCount).map { _ in Slot(images: Tensor(shape: shape)) }
        let remainder = order.count % batchSize
        if remainder != 0 {
            partialSlot = Slot(images: Tensor(shape: [remainder, dataset.channels, inputSize, inputSize]))
        }
        let thread = Thread { [unowned self] in self.produce() }
        thread.stackSize = 1 << 20
        worker = thread
        thread.start()
    }

    deinit { stop() }

    /// Stops the background thread (also done when the loader is released).
    public func stop() {
        stopLock.lock()
        let wasStopped = stopped
        stopped = true
        stopLock.unlock()
        guard !wasStopped else { return }
        // Let the producer run out: it checks `stopped` after each wait.
        for _ in 0..<slotCount { free.signal() }
        while !(worker?.isFinished ?? true) { usleep(100) }
    }

    private var isStopped: Bool {
        stopLock.lock()
        defer { stopLock.unlock() }
        return stopped
    }

    private func produce() {
        for batch in firstBatch..<batchCount {
            free.wait()
            if isStopped { return }
            fill(batch)
            filled.signal()
        }
    }

    private func slot(for batch: Int) -> Slot {
        if let partialSlot, order.count - batch * batchSize < batchSize { return partialSlot }
        return slots[batch % slotCount]
    }

    private func fill(_ batch: Int) {
        let start = batch * batchSize, end = Swift.min(order.count, start + batchSize)
        let target = slot(for: batch)
        convert(indices: order[start..<end], into: target.images)
        for (i, index) in order[start..<end].enumerated() { target.labels[i] = Int32(dataset.labels[index]) }
    }

    /// Converts dataset bytes to input values (scale and offset per channel), centring and padding (or centre
    /// cropping) to the input size.
    func convert(indices: ArraySlice<Int>, into images: Tensor) {
        let (c, h, w, s) = (dataset.channels, dataset.height, dataset.width, inputSize)
        let out = images.data
        let top = (s - h) / 2, left = (s - w) / 2
        dataset.pixels.withUnsafeBufferPointer { pixels in
            for (i, index) in indices.enumerated() {
                let source = pixels.baseAddress! + index * dataset.imageSize
                for channel in 0..<c {
                    let scale = format.scale[channel] / 255, offset = format.offset[channel]
                    let plane = out + (i * c + channel) * s * s
                    for y in 0..<s {
                        let sy = y - top
                        for x in 0..<s {
                            let sx = x - left
                            if sy >= 0 && sy < h && sx >= 0 && sx < w {
                                plane[y * s + x] = Float(source[(channel * h + sy) * w + sx]) * scale + offset
                            } else {
                                plane[y * s + x] = offset
                            }
                        }
                    }
                }
            }
        }
    }

    public func next() -> Batch? {
        guard nextToConsume < batchCount else { return nil }
        // The slot handed out before this one may now be refilled.
        if nextToConsume > firstBatch { free.signal() }
        filled.wait()
        let batch = nextToConsume
        nextToConsume += 1
        let start = batch * batchSize, end = Swift.min(order.count, start + batchSize)
        let slot = slot(for: batch)
        return Batch(images: slot.images, labels: UnsafeBufferPointer(slot.labels), indices: order[start..<end])
    }
}
