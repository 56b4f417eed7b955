// A trainable (or fixed) tensor with its gradient. A reference type: optimizers key their state on it.

public final class Parameter {
    /// The current value. Assigning it, or changing it through a mutating method (`withUnsafeMutableBufferPointer`,
    /// an `inout` initializer), counts as a change (`version`); a write through a pointer obtained earlier does not:
    /// call `markChanged()` after one.
    public var value: Tensor {
        didSet { version &+= 1 }
    }
    /// Counts the changes to `value`, so that a layer can keep what it derives from its weights for inference (a
    /// convolution's Winograd-transformed filter) while they stay the same. The optimizers and loaders count theirs.
    public private(set) var version = 0
    /// The accumulated gradient of the loss with respect to `value` (same shape). Allocated on first use, so a
    /// model built only to be counted or run for inference never holds gradient memory.
    public lazy var gradient = Tensor(shape: value.shape)
    /// False for fixed parameters, such as the RBF centres of LeNet-5 (1998), and for frozen ones: saved, never updated.
    public var isTrainable: Bool { trainable && !isFrozen }
    /// Whether the parameter is trainable by nature (a frozen one is, a fixed one is not).
    public let trainable: Bool
    /// Frozen for fine-tuning (`Model.freeze`): no optimizer updates it, and a frozen batch norm layer normalises
    /// with its running statistics and leaves them as they are.
    public internal(set) var isFrozen = false

    public init(_ value: Tensor, trainable: Bool = true) {
        self.value = value
        self.trainable = trainable
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }

    /// Records a change made in place through a pointer (see `version`).
    public func markChanged() { version &+= 1 }

    /// Sets the gradient to zero, in place.
    public func zeroGradient() { gradient.zero() }
}

extension Parameter {
    /// The value's storage, for kernels (no copy-on-write: parameters own their buffers).
    var data: UnsafeMutablePointer<Float> { value.data }
}
