// Losses for classification. Each returns the summed loss over the batch (so that evaluation can average over a
// whole dataset exactly) and writes the gradient of the *mean* loss into a buffer it owns.
import CNNKernels
import Foundation

public protocol ClassificationLoss: AnyObject {
    /// A short name ("softmax_cross_entropy").
    var name: String { get }
    /// Sum over the batch of the per-example losses; if `computeGradient`, also the gradient of the mean loss with
    /// respect to `output`, returned in `gradient`.
    func evaluate(output: Tensor, labels: UnsafeBufferPointer<Int32>, computeGradient: Bool) -> Float
    /// The gradient written by the last `evaluate` with `computeGradient`.
    var gradient: Tensor { get }
    /// Class probabilities [N, classes] for the network's output.
    func probabilities(output: Tensor) -> [[Float]]
    /// The predicted class of row `row`.
    func predictedClass(output: Tensor, row: Int) -> Int
}

/// A loss on scores where larger means likelier (logits): probabilities by softmax, the prediction by argmax.
public protocol LogitLoss: ClassificationLoss {}

extension LogitLoss {
    public func probabilities(output: Tensor) -> [[Float]] {
        let (n, classes) = (output.shape[0], output.count / max(output.shape[0], 1))
        return (0..<n).map { row in softmax(Array(UnsafeBufferPointer(start: output.data + row * classes, count: classes))) }
    }

    public func predictedClass(output: Tensor, row: Int) -> Int {
        let classes = output.count / output.shape[0]
        return argmax(output.data + row * classes, classes)
    }
}

/// Softmax followed by cross-entropy, fused and numerically stable (log-sum-exp with the maximum subtracted).
/// Optional label smoothing (Szegedy et al. 2015): the target puts `1 - epsilon` on the class and spreads `epsilon`
/// uniformly over all classes.
public final class SoftmaxCrossEntropy: LogitLoss {
    public let name = "softmax_cross_entropy"
    public var labelSmoothing: Float
    /// Keras's `class_weight`: in training (when the gradient is computed), each example's loss and gradient are
    /// multiplied by its class's weight; validation and evaluation losses are not weighted. Nil: every weight 1.
    public var classWeights: [Float]?
    private var buffer: Tensor?

    public init(labelSmoothing: Float = 0) { self.labelSmoothing = labelSmoothing }

    public var gradient: Tensor { buffer! }

    public func evaluate(output: Tensor, labels: UnsafeBufferPointer<Int32>, computeGradient: Bool) -> Float {
        let (n, classes) = (output.shape[0], output.count / max(output.shape[0], 1))
        precondition(labels.count == n)
        let g = computeGradient ? Tensor.reuse(&buffer, shape: output.shape).data : nil
        guard n > 0, let labelData = labels.baseAddress else { return 0 }
        let (on, off) = Self.targetShares(classes: classes, labelSmoothing: labelSmoothing)
        let total = cnn_softmax_cross_entropy(output.data, labelData, Int32(n), Int32(classes), on, off, g)
        guard let weights = classWeights, let g else { return total }
        // Weighted: each row's loss again on its own (the kernel gives only the sum), and each gradient row scaled.
        var weighted: Float = 0
        for row in 0..<n {
            let label = Int(labels[row])
            let weight = label >= 0 && label < weights.count ? weights[label] : 1
            weighted += weight * cnn_softmax_cross_entropy(output.data + row * classes, labelData + row, 1, Int32(classes), on, off, nil)
            for j in 0..<classes { g[row * classes + j] *= weight }
        }
        return weighted
    }

    /// Weights that make every class count as much in total (scikit-learn's `compute_class_weight("balanced")`):
    /// count / (classes x the class's count); a class without examples gets 1.
    public static func balancedWeights(labels: [Int32], classes: Int) -> [Float] {
        var counts = [Int](repeating: 0, count: classes)
        for label in labels where label >= 0 && Int(label) < classes { counts[Int(label)] += 1 }
        let total = Float(counts.reduce(0, +))
        return counts.map { $0 == 0 ? 1 : total / (Float(classes) * Float($0)) }
    }

    /// The target's share for the label's class and for every other class.
    static func targetShares(classes: Int, labelSmoothing: Float) -> (on: Float, off: Float) {
        let off = labelSmoothing / Float(classes)
        return (1 - labelSmoothing + off, off)
    }

    /// `evaluate` one element at a time with the standard library's exp and log: the kernel's naive twin.
    package static func naive(logits: [Float], labels: [Int32], classes: Int, labelSmoothing: Float) -> (loss: Float, gradient: [Float]) {
        let n = labels.count
        let (on, off) = targetShares(classes: classes, labelSmoothing: labelSmoothing)
        var total: Double = 0, gradient = [Float](repeating: 0, count: logits.count)
        for row in 0..<n {
            let z = Array(logits[row * classes ..< (row + 1) * classes])
            let maximum = z.max()!
            let logSum = maximum + Foundation.log(z.reduce(Float(0)) { $0 + Foundation.exp($1 - maximum) })
            for j in 0..<classes {
                let target = j == Int(labels[row]) ? on : off
                total -= Double(target * (z[j] - logSum))
                gradient[row * classes + j] = (Foundation.exp(z[j] - logSum) - target) / Float(n)
            }
        }
        return (Float(total), gradient)
    }

}

/// Mean squared error against one-hot targets: the mean over classes of (output - onehot)^2.
public final class MeanSquaredError: LogitLoss {
    public let name = "mean_squared_error"
    private var buffer: Tensor?
    public init() {}
    public var gradient: Tensor { buffer! }

    public func evaluate(output: Tensor, labels: UnsafeBufferPointer<Int32>, computeGradient: Bool) -> Float {
        let (n, classes) = (output.shape[0], output.count / max(output.shape[0], 1))
        let g = computeGradient ? Tensor.reuse(&buffer, shape: output.shape).data : nil
        let y = output.data
        var total: Double = 0
        for row in 0..<n {
            var loss: Float = 0
            for j in 0..<classes {
                let diff = y[row * classes + j] - (j == Int(labels[row]) ? 1 : 0)
                loss += diff * diff
                if let g { g[row * classes + j] = 2 * diff / Float(classes * n) }
            }
            total += Double(loss / Float(classes))
        }
        return Float(total)
    }

}

/// The loss LeNet-5 is trained with (LeCun et al. 1998, equation 9), on the outputs y_i of the RBF layer
/// (squared distances to the class centres; smaller is better):
///
///     E = y_D + log(e^-j + sum_i e^-y_i)
///
/// y_D pulls the correct class's distance down; the log-sum term pushes the others up (the "competitive" part,
/// which keeps the centres from collapsing); e^-j, a constant "rubbish class", keeps already-large penalties from
/// being pushed further. The paper calls j "a positive constant" without a value; we use 1 (`rubbish`).
public final class RBFMaximumAPosteriori: ClassificationLoss {
    public let name = "rbf_map"
    public let rubbish: Float
    private var buffer: Tensor?

    public init(rubbish: Float = 1) { self.rubbish = rubbish }
    public var gradient: Tensor { buffer! }

    public func evaluate(output: Tensor, labels: UnsafeBufferPointer<Int32>, computeGradient: Bool) -> Float {
        let (n, classes) = (output.shape[0], output.count / max(output.shape[0], 1))
        let g = computeGradient ? Tensor.reuse(&buffer, shape: output.shape).data : nil
        let y = output.data
        var total: Double = 0
        for row in 0..<n {
            let penalties = y + row * classes
            // log(e^-j + sum e^-y_i), stabilised by the largest exponent.
            var top = -rubbish
            for i in 0..<classes { top = max(top, -penalties[i]) }
            var sum = Foundation.exp(-rubbish - top)
            for i in 0..<classes { sum += Foundation.exp(-penalties[i] - top) }
            let logSum = top + Foundation.log(sum)
            let label = Int(labels[row])
            total += Double(penalties[label] + logSum)
            if let g {
                for i in 0..<classes {
                    let share = Foundation.exp(-penalties[i] - logSum)
                    g[row * classes + i] = ((i == label ? 1 : 0) - share) / Float(n)
                }
            }
        }
        return Float(total)
    }

    /// The posterior of each class with the rubbish class left out: softmax(-y).
    public func probabilities(output: Tensor) -> [[Float]] {
        let (n, classes) = (output.shape[0], output.count / max(output.shape[0], 1))
        return (0..<n).map { row in
            softmax(Array(UnsafeBufferPointer(start: output.data + row * classes, count: classes)).map { -$0 })
        }
    }

    /// The class whose centre is nearest.
    public func predictedClass(output: Tensor, row: Int) -> Int {
        let classes = output.count / output.shape[0]
        var best = 0
        for i in 1..<classes where output.data[row * classes + i] < output.data[row * classes + best] { best = i }
        return best
    }
}

func softmax(_ z: [Float]) -> [Float] {
    let maximum = z.max() ?? 0
    let e = z.map { Foundation.exp($0 - maximum) }
    let sum = e.reduce(0, +)
    return e.map { $0 / sum }
}

func argmax(_ values: UnsafePointer<Float>, _ count: Int) -> Int {
    var best = 0
    for i in 1..<max(count, 1) where values[i] > values[best] { best = i }
    return best
}
