// Tensor: float32, contiguous, row-major (NCHW for images). A value type with copy-on-write storage.
//
// Layers own their output and gradient buffers and reuse them from step to step (the Torch7 / Caffe way), so a
// tensor returned by `forward` or `backward` is valid until the next call on the same layer. Copy it
// (`Tensor(copying:)`) to keep it longer.

import CNNKernels
import Foundation

/// 64-byte aligned storage shared by tensors until one of them writes through the public API.
@usableFromInline
final class TensorStorage {
    @usableFromInline let pointer: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int

    /// Buffers from this size up are mapped from the kernel, whose pages are zero and cost no memory until written:
    /// building a network that a checkpoint's header describes commits nothing before its tensors are checked.
    static let mappedBytes = 1 << 20
    private let mappedLength: Int

    init(count: Int) {
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= Self.mappedBytes {
            let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let raw, raw != MAP_FAILED else {
                fatalError("cannot allocate \(bytes >> 20) MB for a tensor of \(count) values: \(String(cString: strerror(errno)))")
            }
            mappedLength = bytes
            pointer = raw.bindMemory(to: Float.self, capacity: count)
        } else {
            mappedLength = 0
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            pointer.initialize(repeating: 0, count: max(count, 1))
        }
    }

    deinit {
        if mappedLength > 0 { munmap(pointer, mappedLength) } else { UnsafeMutableRawPointer(pointer).deallocate() }
    }
}

public struct Tensor {
    /// The dimensions, outermost first (N, C, H, W for images).
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// The number of elements (the storage may hold more: see `reuse`).
    public private(set) var count: Int

    /// A tensor of zeros (or of `value`).
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        count = shape.reduce(1, *)
        storage = TensorStorage(count: count)
        if value != 0 { storage.pointer.update(repeating: value, count: count) }
    }

    /// A tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        count = values.count
        storage = TensorStorage(count: values.count)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A tensor over existing storage of at least the shape's size.
    init(storage: TensorStorage, shape: [Int]) {
        precondition(storage.count >= shape.reduce(1, *))
        self.shape = shape
        count = shape.reduce(1, *)
        self.storage = storage
    }

    /// A deep copy, detached from the buffers of the layer that produced `other`.
    public init(copying other: Tensor) {
        self.init(shape: other.shape)
        storage.pointer.update(from: other.storage.pointer, count: count)
    }

    /// The elements, row-major.
    public var values: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// The same elements seen with another shape of the same size; shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        var result = self
        result.shape = newShape
        return result
    }

    public subscript(index: Int) -> Float {
        get { precondition(index >= 0 && index < count); return storage.pointer[index] }
        set { precondition(index >= 0 && index < count); makeUnique(); storage.pointer[index] = newValue }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// True when no value is NaN or infinite.
    public var isFinite: Bool { cnn_all_finite(storage.pointer, count) != 0 }

    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: count)
            copy.pointer.update(from: storage.pointer, count: count)
            storage = copy
        }
    }

    /// Read access for kernels. Internal: the engine's own buffers only.
    var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Whether the two tensors are views of the same storage.
    func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor {
    /// Returns `buffer` with `shape`, reusing its storage whenever it is large enough (a smaller last batch, or a
    /// return to the full batch, allocates nothing), otherwise a new zeroed tensor: the idiom by which layers keep
    /// their buffers from step to step, so that training allocates nothing once the largest batch has been seen.
    static func reuse(_ buffer: inout Tensor?, shape: [Int]) -> Tensor {
        if let existing = buffer {
            if existing.shape == shape { return existing }
            let needed = shape.reduce(1, *)
            if existing.storage.count >= needed {
                var reshaped = existing
                reshaped.shape = shape
                reshaped.count = needed
                buffer = reshaped
                return reshaped
            }
        }
        let fresh = Tensor(shape: shape)
        buffer = fresh
        return fresh
    }

    /// Fills the storage with zeros (no copy-on-write: for engine-owned buffers).
    func zero() { storage.pointer.update(repeating: 0, count: count) }

    /// Copies `other`'s elements into this tensor's storage (same element count; no copy-on-write).
    func assign(from other: Tensor) {
        precondition(other.count == count)
        storage.pointer.update(from: other.storage.pointer, count: count)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = values.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}

extension Tensor: Equatable {
    /// Equal shapes and bit-identical elements.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        lhs.shape == rhs.shape && (lhs.storage === rhs.storage ||
            memcmp(lhs.storage.pointer, rhs.storage.pointer, lhs.count * MemoryLayout<Float>.stride) == 0)
    }
}

/// Gradient buffers shared by the layers of every network: a layer takes the buffer of its input gradient from here
/// (`Tensor.reuseGradient`), and its container gives it back (`Layer.releaseGradients`) as soon as the layer before
/// it has read it. A backward pass then holds the gradients of a few layers at a time rather than one buffer per
/// layer for the life of the network, which in Inception v3 are as large as all its activations together. The buffers
/// stay in the pool for the next step, so training still allocates nothing once a step has run.
/// Off (`EngineOptions.poolsGradients`), each layer keeps its gradient buffers as its other buffers.
package final class GradientPool: @unchecked Sendable {
    static let shared = GradientPool()

    private let lock = NSLock()
    private var free: [TensorStorage] = []  // by capacity, smallest first

    /// The smallest free buffer of at least `count` floats, unless it is more than twice that (it would then serve
    /// better a larger gradient later), else a new one. Its values are left from an earlier use.
    func take(_ count: Int) -> TensorStorage {
        lock.lock()
        defer { lock.unlock() }
        if let index = free.firstIndex(where: { $0.count >= count }), free[index].count <= 2 * count + 4096 {
            return free.remove(at: index)
        }
        return TensorStorage(count: count)
    }

    func give(_ storage: TensorStorage) {
        lock.lock()
        defer { lock.unlock() }
        precondition(!free.contains { $0 === storage }, "a gradient buffer given back twice")
        free.insert(storage, at: free.firstIndex { $0.count >= storage.count } ?? free.count)
    }
}

extension Tensor {
    /// `reuse` for a gradient buffer: taken from `GradientPool` when `buffer` holds none (it was given back by
    /// `releaseGradient`), so that layers do not each keep one.
    static func reuseGradient(_ buffer: inout Tensor?, shape: [Int]) -> Tensor {
        let needed = shape.reduce(1, *)
        if let existing = buffer, existing.storage.count < needed { releaseGradient(&buffer) }
        if buffer == nil && EngineOptions.current.poolsGradients { buffer = Tensor(storage: GradientPool.shared.take(needed), shape: shape) }
        return reuse(&buffer, shape: shape)
    }

    /// Gives `buffer`'s storage back to `GradientPool` (when pooling is on) and empties it. The caller must be
    /// done with every tensor that shares that storage.
    static func releaseGradient(_ buffer: inout Tensor?) {
        guard EngineOptions.current.poolsGradients, let existing = buffer else { return }
        buffer = nil
        GradientPool.shared.give(existing.storage)
    }
}

extension Tensor {
    /// A copy with the last axis reversed: each image of an [N, C, H, W] batch mirrored left to right.
    public func mirrored() -> Tensor {
        let result = Tensor(shape: shape)
        let width = Swift.max(shape.last ?? 1, 1)
        for row in stride(from: 0, to: count, by: width) {
            for x in 0..<width { result.data[row + x] = data[row + width - 1 - x] }
        }
        return result
    }
}
