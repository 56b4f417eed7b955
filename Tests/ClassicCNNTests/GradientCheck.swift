// Finite-difference gradient checking, shared by the layer and loss tests.
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

struct GradientMismatch: CustomStringConvertible {
    let what: String, index: Int, analytic: Double, numeric: Double
    var description: String { "\(what)[\(index)]: analytic \(analytic), numeric \(numeric)" }
}

/// Checks `layer`'s input and parameter gradients against central differences of L = sum(output * R) for a fixed
/// random R. Returns the mismatches (empty when the gradients agree within `tolerance`, relative to
/// max(1, |numeric|), computed in double precision around float32 forward passes).
///
/// `separated` makes the input a shuffled evenly spaced sequence, so that no two values are within 2 * epsilon of
/// each other: needed for max pooling, where a near tie makes the numeric derivative meaningless.
func gradientMismatches(_ layer: any Layer, inputShape: [Int], seed: UInt64 = 1, epsilon: Float = 1e-2,
                        tolerance: Double = 2e-2, samples: Int = 24, separated: Bool = false, checkInput: Bool = true,
                        prepare: () -> Void = {}) -> [GradientMismatch] {
    var rng = RandomGenerator(seed: seed)
    for l in layer.allLayers { (l as? Initializable)?.resetParameters(using: &rng) }
    var input = randomTensor(inputShape, seed: seed &+ 7)
    if separated {
        let n = input.count
        var values = (0..<n).map { -1 + 2 * Float($0) / Float(max(n - 1, 1)) }
        values.shuffle(using: &rng)
        input = Tensor(shape: inputShape, values: values)
    }
    prepare()
    let outputShape = layer.forward(input, training: true).shape
    let weights = randomTensor(outputShape, seed: seed &+ 13)

    func loss(_ x: Tensor) -> Double {
        prepare()
        let y = layer.forward(x, training: true)
        return zip(y.values, weights.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    for (_, p) in layer.namedParameters { p.zeroGradient() }
    prepare()
    _ = layer.forward(input, training: true)
    let inputGradient = Tensor(copying: layer.backward(weights))
    let parameterGradients = layer.namedParameters.map { Tensor(copying: $0.parameter.gradient) }

    var mismatches: [GradientMismatch] = []
    func compare(_ what: String, _ index: Int, analytic: Float, perturb: (Float) -> Void, original: Float) {
        perturb(original + epsilon)
        let plus = loss(input)
        perturb(original - epsilon)
        let minus = loss(input)
        perturb(original)
        let numeric = (plus - minus) / (2 * Double(epsilon))
        if abs(numeric - Double(analytic)) > tolerance * max(1, abs(numeric)) {
            mismatches.append(GradientMismatch(what: what, index: index, analytic: Double(analytic), numeric: numeric))
        }
    }
    var pick = RandomGenerator(seed: seed &+ 99)
    for _ in 0..<(checkInput ? min(samples, input.count) : 0) {
        let i = Int(pick.next() % UInt64(input.count))
        let original = input[i]
        compare("input", i, analytic: inputGradient[i], perturb: { input[i] = $0 }, original: original)
    }
    for ((name, parameter), gradient) in zip(layer.namedParameters, parameterGradients) where parameter.isTrainable {
        for _ in 0..<min(samples, parameter.count) {
            let i = Int(pick.next() % UInt64(parameter.count))
            let original = parameter.value[i]
            compare(name, i, analytic: gradient[i], perturb: { parameter.value[i] = $0 }, original: original)
        }
    }
    return mismatches
}
