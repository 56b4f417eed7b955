// The three layers of LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, "Gradient-based learning applied to
// document recognition", section II-B) that modern frameworks do not have: trainable subsampling (S2, S4),
// convolution with a partial connection table (C3), and the Euclidean RBF output layer.
import CNNKernels

/// S2 / S4: each unit adds the four inputs of its non-overlapping 2x2 window, multiplies the sum by a trainable
/// coefficient and adds a trainable bias, one of each per feature map (the squashing follows as its own layer).
public final class Subsampling: Layer, Initializable {
    public let kind = "Subsampling"
    public let channels: Int, window: Int
    /// One coefficient per map [C].
    public let coefficient: Parameter
    /// One bias per map [C].
    public let bias: Parameter
    private var input: Tensor?, sums: Tensor?, output: Tensor?, inputGradient: Tensor?, scaledGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(channels: Int, window: Int = 2) {
        self.channels = channels
        self.window = window
        coefficient = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(Tensor(shape: [channels]))
    }

    public var ownParameters: [(name: String, parameter: Parameter)] {
        [(name: "coefficient", parameter: coefficient), (name: "bias", parameter: bias)]
    }

    /// LeNet's rule: uniform in +-2.4 / fan-in, with fan-in 4 (the window) for the coefficient and the bias.
    public func resetParameters(using rng: inout RandomGenerator) {
        Initializer.fanInUniform(scale: 2.4).fill(&coefficient.value, fanIn: window * window, fanOut: 1, using: &rng)
        Initializer.fanInUniform(scale: 2.4).fill(&bias.value, fanIn: window * window, fanOut: 1, using: &rng)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try WindowGeometry(layer: kind, inputShape: inputShape, kernel: (window, window), stride: (window, window), padding: .valid)
        guard inputShape[1] == channels else { throw ShapeError(layer: kind, "expects \(channels) maps, got \(inputShape[1])") }
        return [inputShape[0], channels, g.outputHeight, g.outputWidth]
    }

    public func cost(inputShape: [Int]) -> LayerCost {
        guard let out = try? outputShape(for: inputShape) else { return LayerCost() }
        let units = out.dropFirst().reduce(1, *)
        return LayerCost(connections: units * (window * window + 1), multiplyAdds: units * window * window)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let shape = try! outputShape(for: input.shape)
        let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3])
        let (oh, ow) = (shape[2], shape[3])
        self.input = input
        let s = Tensor.reuse(&sums, shape: shape)
        let y = Tensor.reuse(&output, shape: shape)
        // The window sum is the window average times its area.
        cnn_avgpool_forward(input.data, Int32(n * channels), Int32(h), Int32(w), Int32(window), Int32(window),
                            Int32(window), Int32(window), 0, 0, Int32(oh), Int32(ow), 1, s.data)
        let area = Float(window * window), plane = oh * ow
        let sd = s.data, out = y.data, a = coefficient.data, b = bias.data
        for image in 0..<n {
            for c in 0..<channels {
                let base = (image * channels + c) * plane
                for i in 0..<plane {
                    sd[base + i] *= area
                    out[base + i] = a[c] * sd[base + i] + b[c]
                }
            }
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input, let sums else { fatalError("Subsampling.backward before forward") }
        let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3])
        let (oh, ow) = (sums.shape[2], sums.shape[3])
        let plane = oh * ow, area = Float(window * window)
        let dy = outputGradient.data, sd = sums.data, a = coefficient.data
        let da = coefficient.gradient.data, db = bias.gradient.data
        let scaled = Tensor.reuse(&scaledGradient, shape: sums.shape)
        let sg = scaled.data
        for image in 0..<n {
            for c in 0..<channels {
                let base = (image * channels + c) * plane
                var gradA: Float = 0, gradB: Float = 0
                for i in 0..<plane {
                    gradA += dy[base + i] * sd[base + i]
                    gradB += dy[base + i]
                    // d(sum)/dx = 1 for each input of the window; avgpool's backward divides by the area.
                    sg[base + i] = dy[base + i] * a[c] * area
                }
                da[c] += gradA
                db[c] += gradB
            }
        }
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        cnn_avgpool_backward(sg, Int32(n * channels), Int32(h), Int32(w), Int32(window), Int32(window),
                             Int32(window), Int32(window), 0, 0, Int32(oh), Int32(ow), 1, dx.data)
        return dx
    }
}

/// C3: a convolution in which output map `o` sees only the input maps `table[o]`, so that different maps extract
/// different features and the connection count stays small (section II-B and Table I of the paper).
/// Weights are stored compactly, one kernel per connection [connections, KH, KW]; the computation scatters them
/// into a dense, masked convolution.
public final class PartiallyConnectedConv2D: Layer, Initializable {
    public let kind = "PartialConv2D"
    public let table: [[Int]]
    public let inputChannels: Int, kernelSize: Int
    /// One kernel per connection, in table order [connections, KH, KW].
    public let weight: Parameter
    /// One bias per output map.
    public let bias: Parameter
    /// The dense, masked convolution that computes this layer (absent connections are zero weights).
    package let dense: Conv2D

    public init(inputChannels: Int, table: [[Int]], kernelSize: Int) {
        precondition(table.allSatisfy { $0.allSatisfy { (0..<inputChannels).contains($0) } }, "connection table out of range")
        self.table = table
        self.inputChannels = inputChannels
        self.kernelSize = kernelSize
        let connections = table.reduce(0) { $0 + $1.count }
        weight = Parameter(Tensor(shape: [connections, kernelSize, kernelSize]))
        bias = Parameter(Tensor(shape: [table.count]))
        dense = Conv2D(inputChannels: inputChannels, outputChannels: table.count, kernelSize: kernelSize, bias: false)
    }

    public var ownParameters: [(name: String, parameter: Parameter)] {
        [(name: "weight", parameter: weight), (name: "bias", parameter: bias)]
    }

    /// LeNet's rule: uniform in +-2.4 / fan-in, where the fan-in of map `o` is |table[o]| * KH * KW.
    public func resetParameters(using rng: inout RandomGenerator) {
        let area = kernelSize * kernelSize
        var connection = 0
        weight.value.withUnsafeMutableBufferPointer { w in
            for inputs in table {
                let limit = 2.4 / Float(inputs.count * area)
                for _ in inputs {
                    for i in 0..<area { w[connection * area + i] = rng.uniform(-limit, limit) }
                    connection += 1
                }
            }
        }
        bias.value.withUnsafeMutableBufferPointer { b in
            for (o, inputs) in table.enumerated() {
                let limit = 2.4 / Float(inputs.count * area)
                b[o] = rng.uniform(-limit, limit)
            }
        }
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { try dense.outputShape(for: inputShape) }

    public func cost(inputShape: [Int]) -> LayerCost {
        guard let out = try? outputShape(for: inputShape) else { return LayerCost() }
        let positions = out[2] * out[3], area = kernelSize * kernelSize
        let weights = table.reduce(0) { $0 + $1.count } * area
        return LayerCost(connections: positions * (weights + table.count), multiplyAdds: positions * weights)
    }

    /// Calls `body(compactIndex, denseIndex)` for every weight of every connection.
    private func forEachConnection(_ body: (Int, Int) -> Void) {
        let area = kernelSize * kernelSize
        var connection = 0
        for (o, inputs) in table.enumerated() {
            for i in inputs {
                let denseBase = (o * inputChannels + i) * area
                for k in 0..<area { body(connection * area + k, denseBase + k) }
                connection += 1
            }
        }
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let dw = dense.weight.data, cw = weight.data
        dense.weight.value.zero()
        forEachConnection { compact, full in dw[full] = cw[compact] }
        let y = dense.forward(input, training: training)
        let (n, maps, plane) = (y.shape[0], y.shape[1], y.shape[2] * y.shape[3])
        let out = y.data, b = bias.data
        for image in 0..<n {
            for o in 0..<maps {
                let row = out + (image * maps + o) * plane
                for i in 0..<plane { row[i] += b[o] }
            }
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        dense.weight.zeroGradient()
        let dx = dense.backward(outputGradient)
        let dense = dense.weight.gradient.data, gw = weight.gradient.data
        forEachConnection { compact, full in gw[compact] += dense[full] }
        let (n, maps, plane) = (outputGradient.shape[0], outputGradient.shape[1], outputGradient.shape[2] * outputGradient.shape[3])
        let dy = outputGradient.data, db = bias.gradient.data
        for image in 0..<n {
            for o in 0..<maps {
                let row = dy + (image * maps + o) * plane
                var sum: Float = 0
                for i in 0..<plane { sum += row[i] }
                db[o] += sum
            }
        }
        return dx
    }
}

/// The output layer of LeNet-5: one Euclidean radial basis function unit per class,
/// y_i = sum_j (x_j - w_ij)^2, the squared distance between the input and the class's centre. The centres of
/// LeNet-5 are fixed (+1/-1 bitmaps), hence a non-trainable parameter by default.
public final class EuclideanRBF: Layer {
    public let kind = "EuclideanRBF"
    public let inputFeatures: Int, classes: Int
    /// The centres [classes, inputFeatures].
    public let centres: Parameter
    private var input: Tensor?, output: Tensor?, inputGradient: Tensor?
    public func releaseGradients() { Tensor.releaseGradient(&inputGradient) }

    public init(centres: Tensor, trainable: Bool = false) {
        precondition(centres.shape.count == 2)
        classes = centres.shape[0]
        inputFeatures = centres.shape[1]
        self.centres = Parameter(centres, trainable: trainable)
    }

    public var ownParameters: [(name: String, parameter: Parameter)] { [(name: "centres", parameter: centres)] }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let features = inputShape.dropFirst().reduce(1, *)
        guard features == inputFeatures else { throw ShapeError(layer: kind, "expects \(inputFeatures) inputs, got \(features)") }
        return [inputShape[0], classes]
    }

    public func cost(inputShape: [Int]) -> LayerCost {
        LayerCost(connections: classes * inputFeatures, multiplyAdds: classes * inputFeatures)
    }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        let n = input.shape[0]
        self.input = input
        let y = Tensor.reuse(&output, shape: [n, classes])
        let x = input.data, w = centres.data, out = y.data
        for image in 0..<n {
            for i in 0..<classes {
                var sum: Float = 0
                for j in 0..<inputFeatures {
                    let d = x[image * inputFeatures + j] - w[i * inputFeatures + j]
                    sum += d * d
                }
                out[image * classes + i] = sum
            }
        }
        return y
    }

    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input else { fatalError("EuclideanRBF.backward before forward") }
        let n = input.shape[0]
        let dx = Tensor.reuseGradient(&inputGradient, shape: input.shape)
        let x = input.data, w = centres.data, dy = outputGradient.data, d = dx.data, dw = centres.gradient.data
        let trainable = centres.isTrainable
        for image in 0..<n {
            for j in 0..<inputFeatures { d[image * inputFeatures + j] = 0 }
            for i in 0..<classes {
                let g = 2 * dy[image * classes + i]
                for j in 0..<inputFeatures {
                    let diff = x[image * inputFeatures + j] - w[i * inputFeatures + j]
                    d[image * inputFeatures + j] += g * diff
                    if trainable { dw[i * inputFeatures + j] -= g * diff }
                }
            }
        }
        return dx
    }
}
