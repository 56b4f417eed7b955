// Our networks in torchvision's layout give torchvision's logits for the same weights and input. The weights (batch-
// norm statistics included) and the input come from a formula that Scripts/reference/zoo_logits.py computes the same
// way, bit for bit, so the committed fixtures hold only torchvision's 1,000 logits per network, not its weights.
import ClassicCNN
import Foundation
import Testing
import TestSupport

/// The fixture formula: SplitMix64 of FNV-1a-64(name) ^ (i * golden ratio), as uniforms in [0, 1).
enum FormulaWeights {
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    static func uniform(_ seed: UInt64, _ index: Int) -> Double {
        var x = seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return Double(x >> 11) / Double(1 << 53)
    }

    /// The values of the tensor `name` of `shape`, by the rules in zoo_logits.py.
    static func values(_ name: String, shape: [Int]) -> [Float] {
        let seed = fnv1a64(name), count = shape.reduce(1, *)
        let value: (Double) -> Double
        if shape.count >= 2 {
            let bound = (3.0 / Double(shape.dropFirst().reduce(1, *))).squareRoot()
            value = { (2 * $0 - 1) * bound }
        } else if name.hasSuffix("running_var") {
            value = { 0.5 + 1.5 * $0 }
        } else if name.hasSuffix("running_mean") {
            value = { 0.3 * (2 * $0 - 1) }
        } else if name.hasSuffix("weight") {
            value = { 0.5 + $0 }
        } else {
            value = { 0.1 * (2 * $0 - 1) }
        }
        return (0..<count).map { Float(value(uniform(seed, $0))) }
    }

    static func input(size: Int) -> Tensor {
        let seed = fnv1a64("input")
        return Tensor(shape: [1, 3, size, size], values: (0..<(3 * size * size)).map { Float(2 * uniform(seed, $0) - 1) })
    }
}

@Suite("Logits equal torchvision's", .serialized)
struct ReferenceLogitsTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/zoo").path

    @Test func theFormulaMatchesNumpysBits() {
        // Printed by zoo_logits.py: hex(fnv1a64('input')) and formula(...).numpy().view(np.uint32).
        #expect(FormulaWeights.fnv1a64("input") == 0x1EBB_AE8F_5810_B65B)
        #expect(FormulaWeights.values("features.0.weight", shape: [64, 3, 11, 11]).prefix(3).map(\.bitPattern)
                == [3_143_226_588, 3_154_251_695, 1_027_934_305])
        #expect(FormulaWeights.values("bn.running_var", shape: [4]).map(\.bitPattern)
                == [1_066_102_083, 1_070_628_649, 1_065_612_753, 1_065_818_739])
    }

    @Test(arguments: ["alexnet-torchvision", "vgg11", "googlenet-torchvision", "inception-v3"])
    func logitsMatch(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/\(name).json"))
        let fixture = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let expected = try #require(fixture["logits"] as? [Double]).map(Float.init)
        let size = try #require(fixture["input_size"] as? Int)
        let model = try ModelZoo.descriptor(named: name).make(inputSize: size)
        try model.loadParameters(model.parameters.map {
            NamedTensor(name: $0.name, shape: $0.parameter.shape, values: FormulaWeights.values($0.name, shape: $0.parameter.shape))
        })
        let logits = model.forward(FormulaWeights.input(size: size)).values
        try #require(logits.count == expected.count)
        let scale = expected.map(abs).max()!
        let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
        print("\(name): logits within \(worst / scale) of the largest (torchvision \(fixture["torchvision"] ?? "?"))")
        #expect(worst <= 1e-4 * scale, "\(name): largest difference \(worst), \(worst / scale) of the largest logit \(scale)")
    }
}
