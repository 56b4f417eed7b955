// A trainable (or fixed) tensor with its gradient. A reference type: optimizers key their state on it.

public final class Parameter {
    /// The current value.
    public var value: Tensor
    /// The accumulated gradient of the loss with respect to `value` (same shape). Allocated on first use, so a
    /// model built only to be counted or run for inference never holds gradient memory.
    public lazy var gradient = Tensor(shape: value.shape)
    /// False for fixed parameters, such as the RBF centres of LeNet-5 (1998): saved, never updated.
    public let isTrainable: Bool

    public init(_ value: Tensor, trainable: Bool = true) {
        self.value = value
        self.isTrainable = trainable
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }

    /// Sets the gradient to zero, in place.
    public func zeroGradient() { gradient.zero() }
}

extension Parameter {
    /// The value's storage, for kernels (no copy-on-write: parameters own their buffers).
    var data: UnsafeMutablePointer<Float> { value.data }
}
