// Batches for training and evaluation: a seeded shuffle per epoch, images converted to the model's input on a
// background thread one batch ahead, into a small ring of preallocated slots (memory: a few batches, whatever
// the dataset's size). A dataset read on demand (an image folder) is decoded on that thread too, image by image.
import Foundation

/// One batch: images [N, C, S, S] and labels. Valid until the loader hands out the slot again.
public struct Batch {
    public let images: Tensor
    public let labels: UnsafeBufferPointer<Int32>
    /// Indices of the images in the dataset.
    public let indices: ArraySlice<Int>
    /// The images of this step over all ranks (a loader with a `shard` gives one rank's part of each step's batch);
    /// `labels.count` otherwise.
    public var globalCount: Int
    /// Where this rank's images start in the step's whole batch (0 without a shard).
    public var globalOffset: Int
}

public final class BatchLoader: Sequence, IteratorProtocol {
    public let dataset: ImageDataset
    public let batchSize: Int
    public let inputSize: Int
    public let format: InputFormat
    /// The order of this epoch's images (this rank's, with a shard).
    public let order: [Int]
    /// With a shard: the whole batch size of every step, over all ranks.
    private let globalSizes: [Int]
    private let shard: Shard?
    public var batchCount: Int { (order.count + batchSize - 1) / batchSize }

    /// A preallocated batch: images and labels written in place by the producer.
    final class Slot {
        let images: Tensor
        let labels: UnsafeMutableBufferPointer<Int32>
        init(images: Tensor) {
            self.images = images
            labels = .allocate(capacity: images.shape[0])
            labels.initialize(repeating: 0)
        }
        deinit { labels.deallocate() }
    }

    /// What the producer thread shares with the loader. The producer holds only this, never the loader, so a
    /// loader that is dropped mid-epoch is released and stops its thread.
    final class Shared: @unchecked Sendable {
        let slots: [Slot]
        let partial: Slot?
        let filled = DispatchSemaphore(value: 0)
        let free: DispatchSemaphore
        let finished = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var stopRequested = false
        private var producerFailure: (batch: Int, error: any Error)?

        init(slots: [Slot], partial: Slot?) {
            self.slots = slots
            self.partial = partial
            // Created at 0 and raised to the slot count: libdispatch traps when a semaphore is released below the
            // value it was created with, which a loader stopped mid-epoch would otherwise do.
            free = DispatchSemaphore(value: 0)
            for _ in slots { free.signal() }
        }

        var isStopped: Bool {
            lock.lock()
            defer { lock.unlock() }
            return stopRequested
        }

        /// The batch whose image could not be read, and the error; the producer stops there.
        var failure: (batch: Int, error: any Error)? {
            get {
                lock.lock()
                defer { lock.unlock() }
                return producerFailure
            }
            set {
                lock.lock()
                defer { lock.unlock() }
                producerFailure = newValue
            }
        }

        /// Marks the loader stopped; true the first time.
        func requestStop() -> Bool {
            lock.lock()
            defer { lock.unlock() }
            if stopRequested { return false }
            stopRequested = true
            return true
        }
    }

    private let shared: Shared
    /// Why the loader ended early: an image of an on-demand dataset that could not be read. `next()` returns nil
    /// from the batch that needed it on; a caller that ran out of batches checks this.
    public var failure: (any Error)? { shared.failure?.error }
    private var nextToConsume: Int
    private let firstBatch: Int

    /// - Parameters:
    ///   - dataset: the images and labels.
    ///   - batchSize: images per batch (the last batch of an epoch may be smaller).
    ///   - inputSize: the side of the network's input; images are fitted to it as `format` says.
    ///   - format: how pixels become input values and how an image of another size fits.
    ///   - epoch: the epoch, which seeds the shuffle and the augmentation.
    ///   - shuffleSeed: nil keeps the dataset's order; otherwise the permutation is a function of (seed, epoch) only,
    ///     so a resumed run sees the same order.
    ///   - startBatch: the first batch to produce (to resume inside an epoch).
    ///   - limit: at most this many images (nil: all).
    ///   - augmentation: applied to each image instead of the plain fitting (training only), drawing from a generator
    ///     seeded by (shuffleSeed, epoch, image index), so the same seed gives the same images, resumed or not.
    ///   - shard: data-parallel training: this rank's part of every batch (`Shard.part(of:)` of its images). The
    ///     epoch's order and batches are those of one process with `batchSize`; each rank takes its contiguous part
    ///     of each batch, so the ranks read disjoint shares of the same seeded shuffle (as PyTorch's
    ///     DistributedSampler). A last batch smaller than the number of ranks is left out, on every rank.
    public init(dataset: ImageDataset, batchSize: Int, inputSize: Int, format: InputFormat, shuffleSeed: UInt64?,
                epoch: Int = 0, startBatch: Int = 0, limit: Int? = nil, augmentation: Augmentation? = nil, shard: Shard? = nil) {
        precondition(batchSize > 0 && inputSize > 0)
        self.dataset = dataset
        self.inputSize = inputSize
        self.format = format
        var order = Array(0..<dataset.count)
        if let seed = shuffleSeed {
            var rng = RandomGenerator(seed: seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1)))
            for i in Swift.stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        if let limit { order = Array(order.prefix(Swift.max(limit, 0))) }
        // Never more than the epoch holds: a batch size larger than the data allocates only what is needed.
        var localSize = Swift.max(1, Swift.min(batchSize, order.count))
        var globalSizes: [Int] = []
        if let shard, shard.size > 1 {
            var local: [Int] = []
            for start in Swift.stride(from: 0, to: order.count, by: localSize) {
                let count = Swift.min(localSize, order.count - start)
                guard count >= shard.size else { break }
                let part = shard.part(of: count)
                local += order[(start + part.offset) ..< (start + part.offset + part.count)]
                globalSizes.append(count)
            }
            order = local
            localSize = Swift.max(1, shard.part(of: localSize).count)
        }
        self.shard = shard
        self.globalSizes = globalSizes
        self.order = order
        self.batchSize = localSize
        let count = (order.count + self.batchSize - 1) / self.batchSize
        firstBatch = Swift.min(Swift.max(startBatch, 0), count)
        nextToConsume = firstBatch
        let shape = [self.batchSize, dataset.channels, inputSize, inputSize]
        let remainder = order.count % self.batchSize
        shared = Shared(slots: (0..<3).map { _ in Slot(images: Tensor(shape: shape)) },
                        partial: remainder == 0 ? nil : Slot(images: Tensor(shape: [remainder, dataset.channels, inputSize, inputSize])))
        let (shared, first, size, format, epochOrder) = (shared, firstBatch, self.batchSize, format, order)
        let augmenting = augmentation.map { Augmenting(augmentation: $0, seed: (shuffleSeed ?? 0) ^ (0xA5A5_5A5A_C3C3_3C3C &* UInt64(epoch + 1))) }
        let thread = Thread {
            BatchLoader.produce(shared: shared, dataset: dataset, order: epochOrder, batchSize: size, inputSize: inputSize,
                                format: format, augmenting: augmenting, batches: first..<count)
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { stop() }

    /// Stops the background thread and waits for it (also done when the loader is released). After `stop`,
    /// `next()` returns nil.
    public func stop() {
        guard shared.requestStop() else { return }
        // Wake the producer wherever it waits; it sees the flag and exits.
        for _ in shared.slots { shared.free.signal() }
        shared.finished.wait()
    }

    static func slot(_ shared: Shared, batch: Int, batchSize: Int, total: Int) -> Slot {
        if let partial = shared.partial, total - batch * batchSize < batchSize { return partial }
        return shared.slots[batch % shared.slots.count]
    }

    /// An augmentation and the seed of its per-image generators.
    struct Augmenting {
        let augmentation: Augmentation
        let seed: UInt64
        /// The generator of one image: a function of the seed (run and epoch) and the image's index only.
        func generator(for index: Int) -> RandomGenerator {
            RandomGenerator(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        }
    }

    private static func produce(shared: Shared, dataset: ImageDataset, order: [Int], batchSize: Int, inputSize: Int,
                                format: InputFormat, augmenting: Augmenting?, batches: Range<Int>) {
        defer { shared.finished.signal() }
        var interpolations = Interpolations(outputSize: inputSize)
        for batch in batches {
            shared.free.wait()
            if shared.isStopped { return }
            let start = batch * batchSize, end = Swift.min(order.count, start + batchSize)
            let target = slot(shared, batch: batch, batchSize: batchSize, total: order.count)
            do {
                if let augmenting {
                    try augment(dataset: dataset, indices: order[start..<end], inputSize: inputSize, format: format,
                                augmenting: augmenting, into: target.images)
                } else {
                    try convert(dataset: dataset, indices: order[start..<end], inputSize: inputSize, format: format,
                                interpolations: &interpolations, into: target.images)
                }
            } catch {
                shared.failure = (batch, error)
                shared.filled.signal()
                return
            }
            for (i, index) in order[start..<end].enumerated() { target.labels[i] = dataset.labels[index] }
            shared.filled.signal()
        }
    }

    /// Bilinear interpolation along one axis, half-pixel centres: output i reads inputs `low[i]` and `high[i]` with
    /// weight `fraction[i]` on the second.
    struct Interpolation {
        let low: [Int], high: [Int], fraction: [Float]
        init(from input: Int, to output: Int) {
            let scale = Float(input) / Float(Swift.max(output, 1))
            var low: [Int] = [], high: [Int] = [], fraction: [Float] = []
            for i in 0..<output {
                let position = Swift.min(Swift.max((Float(i) + 0.5) * scale - 0.5, 0), Float(input - 1))
                let l = Int(position)
                low.append(l)
                high.append(Swift.min(l + 1, input - 1))
                fraction.append(position - Float(l))
            }
            (self.low, self.high, self.fraction) = (low, high, fraction)
        }
    }

    /// The interpolations of the last image size seen (every image of an in-memory dataset, most of a folder's).
    struct Interpolations {
        let outputSize: Int
        private var height = -1, width = -1
        private(set) var rows = Interpolation(from: 1, to: 0), columns = Interpolation(from: 1, to: 0)
        init(outputSize: Int) { self.outputSize = outputSize }
        mutating func prepare(height: Int, width: Int) {
            if height != self.height { (self.height, rows) = (height, Interpolation(from: height, to: outputSize)) }
            if width != self.width { (self.width, columns) = (width, Interpolation(from: width, to: outputSize)) }
        }
    }

    /// Converts the images at `indices` to input values into `images`, from the dataset's bytes or, for an on-demand
    /// dataset, from its source (the first image that cannot be read stops the conversion with its error).
    static func convert(dataset: ImageDataset, indices: ArraySlice<Int>, inputSize s: Int, format: InputFormat,
                        interpolations: inout Interpolations, into images: Tensor) throws {
        let c = dataset.channels
        for (i, index) in indices.enumerated() {
            let plane = images.data + i * c * s * s
            if let source = dataset.source {
                let image = try source.image(at: index)
                precondition(image.pixels.count == c * image.height * image.width, "an image source gave the wrong number of bytes")
                interpolations.prepare(height: image.height, width: image.width)
                image.pixels.withUnsafeBufferPointer { pixels in
                    fit(pixels.baseAddress!, channels: c, height: image.height, width: image.width, inputSize: s, format: format,
                        interpolations: interpolations, into: plane)
                }
            } else {
                interpolations.prepare(height: dataset.height, width: dataset.width)
                dataset.pixels.withUnsafeBufferPointer { pixels in
                    fit(pixels.baseAddress! + index * dataset.imageSize, channels: c, height: dataset.height, width: dataset.width,
                        inputSize: s, format: format, interpolations: interpolations, into: plane)
                }
            }
        }
    }

    /// Augments the images at `indices` (each from its own generator) and converts them to input values into `images`.
    static func augment(dataset: ImageDataset, indices: ArraySlice<Int>, inputSize s: Int, format: InputFormat,
                        augmenting: Augmenting, into images: Tensor) throws {
        let c = dataset.channels
        let same = Interpolations(outputSize: s)
        for (i, index) in indices.enumerated() {
            var generator = augmenting.generator(for: index)
            let image = try augmenting.augmentation.apply(try dataset.image(at: index), outputSize: s, using: &generator)
            image.planarPixels.withUnsafeBufferPointer { pixels in
                fit(pixels.baseAddress!, channels: c, height: s, width: s, inputSize: s, format: format, interpolations: same,
                    into: images.data + i * c * s * s)
            }
        }
    }

    /// Converts one image's bytes to input values (scale and offset per channel), fitting it to the input size as the
    /// format says: centred and padded (or centre-cropped), or resized bilinearly.
    static func fit(_ source: UnsafePointer<UInt8>, channels c: Int, height h: Int, width w: Int, inputSize s: Int,
                    format: InputFormat, interpolations: Interpolations, into out: UnsafeMutablePointer<Float>) {
        let (rows, columns) = (interpolations.rows, interpolations.columns)
        let top = (s - h) / 2, left = (s - w) / 2
        let resize = format.fitting == .resize && (h != s || w != s)
        for channel in 0..<c {
            let scale = format.scale[channel] / 255, offset = format.offset[channel]
            let plane = out + channel * s * s
            if resize {
                let input = source + channel * h * w
                for y in 0..<s {
                    let r0 = input + rows.low[y] * w, r1 = input + rows.high[y] * w, fy = rows.fraction[y]
                    for x in 0..<s {
                        let (x0, x1, fx) = (columns.low[x], columns.high[x], columns.fraction[x])
                        let top = Float(r0[x0]) + fx * (Float(r0[x1]) - Float(r0[x0]))
                        let bottom = Float(r1[x0]) + fx * (Float(r1[x1]) - Float(r1[x0]))
                        plane[y * s + x] = (top + fy * (bottom - top)) * scale + offset
                    }
                }
                continue
            }
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

    public func next() -> Batch? {
        guard nextToConsume < batchCount, !shared.isStopped else { return nil }
        if let failed = shared.failure?.batch, failed <= nextToConsume { return nil }
        // The slot handed out before this one may now be refilled.
        if nextToConsume > firstBatch { shared.free.signal() }
        shared.filled.wait()
        if shared.failure?.batch == nextToConsume { return nil }
        let batch = nextToConsume
        nextToConsume += 1
        let start = batch * batchSize, end = Swift.min(order.count, start + batchSize)
        let slot = BatchLoader.slot(shared, batch: batch, batchSize: batchSize, total: order.count)
        var global = (count: end - start, offset: 0)
        if let shard, batch < globalSizes.count {
            global = (globalSizes[batch], shard.part(of: globalSizes[batch]).offset)
        }
        return Batch(images: slot.images, labels: UnsafeBufferPointer(slot.labels), indices: order[start..<end],
                     globalCount: global.count, globalOffset: global.offset)
    }
}
