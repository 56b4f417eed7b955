// Inception v3 (torchvision's layout): the grid of Table 1 stage by stage, and torchvision's state_dict keys.
// Its logits were checked against torchvision 0.29.2 with Scripts/reference/inception_v3_torch.py (a 110 MB
// fixture, not committed).
import Testing
@testable import ClassicCNN

@Suite("Inception")
struct InceptionTests {
    @Test func inceptionV3StagesAreTable1() throws {
        let rows = try ModelZoo.descriptor(named: "inception-v3").make().summary()
            .filter { $0.kind == "Concat" && !$0.name.contains(".") }
        #expect(rows.map(\.name) == ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"])
        // 35x35x256, 35x35x288 (two), 17x17x768 (five), 8x8x1280, 8x8x2048 (two).
        #expect(rows.map { Array($0.outputShape.dropFirst()) } == [
            [256, 35, 35], [288, 35, 35], [288, 35, 35],
            [768, 17, 17], [768, 17, 17], [768, 17, 17], [768, 17, 17], [768, 17, 17],
            [1280, 8, 8], [2048, 8, 8], [2048, 8, 8],
        ])
        let stem = try ModelZoo.descriptor(named: "inception-v3").make().summary().filter { $0.name == "maxpool2" }
        #expect(stem.map { Array($0.outputShape.dropFirst()) } == [[192, 35, 35]])
    }

    @Test func inceptionV3UsesTorchvisionStateDictKeys() throws {
        let model = try ModelZoo.descriptor(named: "inception-v3").make()
        let shapes = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.parameter.value.shape) })
        // torchvision's state_dict has 484 tensors besides the 94 num_batches_tracked counters.
        #expect(shapes.count == 484)
        let expected: [String: [Int]] = [
            "Conv2d_1a_3x3.conv.weight": [32, 3, 3, 3],
            "Conv2d_4a_3x3.bn.running_mean": [192],
            "Mixed_5b.branch5x5_2.conv.weight": [64, 48, 5, 5],
            "Mixed_5b.branch_pool.conv.weight": [32, 192, 1, 1],
            "Mixed_6a.branch3x3dbl_3.bn.bias": [96],
            "Mixed_6b.branch7x7_2.conv.weight": [128, 128, 1, 7],
            "Mixed_6e.branch7x7dbl_4.conv.weight": [192, 192, 7, 1],
            "AuxLogits.conv0.conv.weight": [128, 768, 1, 1],
            "AuxLogits.conv1.conv.weight": [768, 128, 5, 5],
            "AuxLogits.fc.weight": [1000, 768],
            "Mixed_7a.branch7x7x3_4.bn.weight": [192],
            "Mixed_7b.branch3x3_2a.bn.running_var": [384],
            "Mixed_7c.branch3x3dbl_3b.conv.weight": [384, 384, 3, 1],
            "fc.weight": [1000, 2048],
            "fc.bias": [1000],
        ]
        for (name, shape) in expected {
            #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")")
        }
        // InceptionE's blocks sit side by side under the module, as torchvision's attributes do.
        let blocks = Array(Set(model.parameters.map(\.name).filter { $0.hasPrefix("Mixed_7b.") }
            .map { $0.split(separator: ".")[1] })).sorted()
        #expect(blocks == ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
                           "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"])
    }
}
