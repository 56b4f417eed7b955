// Inception v3 (torchvision's layout): the grid of Table 1 stage by stage, and torchvision's state_dict keys.
// Its logits were checked against torchvision 0.29.2 with Scripts/reference/inception_v3_torch.py (a 110 MB
// fixture, not committed). Inception-v4 (timm's layout) likewise: Figure 9 stage by stage and timm's state_dict keys;
// its logits were checked against timm 1.0.31 with Scripts/reference/inception_v4_timm.py (a 171 MB fixture, not
// committed). Inception-ResNet-v2 (timm's layout) the same way, with Scripts/reference/inception_resnet_v2_timm.py
// (225 MB). Inception v2 (Table 1 with v3's widths) has no reference implementation: its stages, counts and names are
// pinned here. Inception-ResNet-v1 (Figure 15, facenet-pytorch's names) likewise; its logits were checked once against
// facenet-pytorch 2.6.0's model cut to Figure 15 (4 + 1 Block8, a linear head `logits`): 577 tensors loaded by name,
// logits within 6.2e-7 relative.
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

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

    @Test func inceptionV4StagesAreFigure9() throws {
        let model = try ModelZoo.descriptor(named: "inception-v4").make()
        #expect(model.parameterCount == ModelZooTests.parameterCounts["inception-v4"])
        #expect(model.parameterCount == 42_679_816)
        let rows = try model.summary()
        let stages = (3...21).map { "features.\($0)" }
        let shapes = Dictionary(uniqueKeysWithValues: rows.filter { stages.contains($0.name) }
            .map { ($0.name, Array($0.outputShape.dropFirst())) })
        #expect(shapes.count == stages.count)
        // Figure 3's stem ends at 35x35x384 (Mixed5a), Figure 7 gives 17x17x1024, Figure 8 gives 8x8x1536.
        #expect(shapes["features.3"] == [160, 73, 73])
        #expect(shapes["features.4"] == [192, 71, 71])
        #expect(shapes["features.5"] == [384, 35, 35])
        for index in 6...9 { #expect(shapes["features.\(index)"] == [384, 35, 35]) }
        #expect(shapes["features.10"] == [1024, 17, 17])
        for index in 11...17 { #expect(shapes["features.\(index)"] == [1024, 17, 17]) }
        #expect(shapes["features.18"] == [1536, 8, 8])
        for index in 19...21 { #expect(shapes["features.\(index)"] == [1536, 8, 8]) }
        #expect(rows.last.map { Array($0.outputShape.dropFirst()) } == [1000])
    }

    @Test func inceptionV4UsesTimmStateDictKeys() throws {
        let model = try ModelZoo.descriptor(named: "inception-v4").make()
        let shapes = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.parameter.value.shape) })
        // timm's state_dict has 747 tensors besides the 149 num_batches_tracked counters.
        #expect(shapes.count == 747)
        let expected: [String: [Int]] = [
            "features.0.conv.weight": [32, 3, 3, 3],
            "features.2.bn.running_var": [64],
            "features.3.conv.conv.weight": [96, 64, 3, 3],
            "features.4.branch1.1.conv.weight": [64, 64, 1, 7],
            "features.4.branch1.3.bn.bias": [96],
            "features.5.conv.bn.running_mean": [192],
            "features.6.branch3.1.conv.weight": [96, 384, 1, 1],
            "features.10.branch1.2.conv.weight": [256, 224, 3, 3],
            "features.17.branch2.4.conv.weight": [256, 224, 1, 7],
            "features.18.branch1.3.bn.weight": [320],
            "features.21.branch1_1b.conv.weight": [256, 384, 3, 1],
            "features.21.branch2_3a.bn.running_var": [256],
            "last_linear.weight": [1000, 1536],
            "last_linear.bias": [1000],
        ]
        for (name, shape) in expected {
            #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")")
        }
        // InceptionC's blocks sit side by side under the module, as timm's attributes do.
        let blocks = Array(Set(model.parameters.map(\.name).filter { $0.hasPrefix("features.19.") }
            .map { $0.split(separator: ".")[2] })).sorted()
        #expect(blocks == ["branch0", "branch1_0", "branch1_1a", "branch1_1b", "branch2_0", "branch2_1", "branch2_2",
                           "branch2_3a", "branch2_3b", "branch3"])
    }

    @Test func inceptionResNetV2StagesAreFigure15() throws {
        let model = try ModelZoo.descriptor(named: "inception-resnet-v2").make()
        #expect(model.parameterCount == ModelZooTests.parameterCounts["inception-resnet-v2"])
        #expect(model.parameterCount == 55_843_464)
        let rows = try model.summary()
        func shape(_ name: String, kind: String) -> [[Int]] {
            rows.filter { $0.name == name && $0.kind == kind }.map { Array($0.outputShape.dropFirst()) }
        }
        #expect(shape("maxpool_5a", kind: "MaxPool2D") == [[192, 35, 35]])
        #expect(shape("mixed_5b", kind: "Concat") == [[320, 35, 35]])
        #expect(shape("mixed_6a", kind: "Concat") == [[1088, 17, 17]])
        #expect(shape("mixed_7a", kind: "Concat") == [[2080, 8, 8]])
        // Residual sums: 10 at 35x35 (scale 0.17), 20 at 17x17 (0.10), 9 + 1 at 8x8 (0.20, then 1 without ReLU).
        let sums = rows.filter { $0.kind == "Residual" }
        #expect(sums.count == 40)
        #expect(sums.map { Array($0.outputShape.dropFirst()) }
            == Array(repeating: [320, 35, 35], count: 10) + Array(repeating: [1088, 17, 17], count: 20)
            + Array(repeating: [2080, 8, 8], count: 10))
        // Each block is a Module whose wiring is Residual (then ReLU): its children are timm's flat attributes.
        let residuals = model.network.allLayers.compactMap { ($0 as? Inception.Module)?.body.children.first?.layer as? Residual }
        #expect(residuals.map(\.scale) == Array(repeating: 0.17, count: 10) + Array(repeating: 0.10, count: 20)
            + Array(repeating: 0.20, count: 9) + [1])
        #expect(rows.last.map { Array($0.outputShape.dropFirst()) } == [1000])
    }

    @Test func inceptionResNetV2UsesTimmStateDictKeys() throws {
        let model = try ModelZoo.descriptor(named: "inception-resnet-v2").make()
        let shapes = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.parameter.value.shape) })
        // timm's state_dict has 1102 tensors besides the 204 num_batches_tracked counters.
        #expect(shapes.count == 1102)
        let expected: [String: [Int]] = [
            "conv2d_1a.conv.weight": [32, 3, 3, 3],
            "conv2d_4a.bn.running_var": [192],
            "mixed_5b.branch1.1.conv.weight": [64, 48, 5, 5],
            "mixed_5b.branch3.1.conv.weight": [64, 192, 1, 1],
            "repeat.0.branch2.2.conv.weight": [64, 48, 3, 3],
            "repeat.9.conv2d.weight": [320, 128, 1, 1],
            "repeat.9.conv2d.bias": [320],
            "mixed_6a.branch1.2.bn.bias": [384],
            "repeat_1.19.branch1.1.conv.weight": [160, 128, 1, 7],
            "repeat_1.0.conv2d.weight": [1088, 384, 1, 1],
            "mixed_7a.branch2.2.conv.weight": [320, 288, 3, 3],
            "repeat_2.8.branch1.2.conv.weight": [256, 224, 3, 1],
            "block8.conv2d.weight": [2080, 448, 1, 1],
            "block8.conv2d.bias": [2080],
            "conv2d_7b.conv.weight": [1536, 2080, 1, 1],
            "classif.weight": [1000, 1536],
            "classif.bias": [1000],
        ]
        for (name, shape) in expected {
            #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")")
        }
    }

    @Test func inceptionV2StagesAreTable1() throws {
        let model = try ModelZoo.descriptor(named: "inception-v2").make()
        #expect(model.parameterCount == 29_280_176)
        #expect(model.inferenceParameterCount == 25_954_248)
        let rows = try model.summary()
        // Table 1's stem: 149, 147, 147, 73 (pool), 71 (conv 3x3, 80), 35 (conv 3x3/2, 192), 35 (conv 3x3 padded, 288).
        let stem = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_3x3", "Conv2d_4a_3x3",
                    "Conv2d_4b_3x3"].map { name in
            rows.last { $0.name == name || $0.name.hasPrefix(name + ".") }.map { Array($0.outputShape.dropFirst()) }
        }
        #expect(stem == [[32, 149, 149], [32, 147, 147], [64, 147, 147], [64, 73, 73], [80, 71, 71], [192, 35, 35],
                         [288, 35, 35]])
        let modules = rows.filter { $0.kind == "Concat" && !$0.name.contains(".") }
        #expect(modules.map(\.name) == ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                                        "Mixed_6e", "Mixed_6f", "Mixed_7a", "Mixed_7b", "Mixed_7c"])
        // 3 x Figure 5 at 35x35x288, a reduction to 17x17x768, 5 x Figure 6, a reduction to 8x8x1280, 2 x Figure 7.
        #expect(modules.map { Array($0.outputShape.dropFirst()) } == [
            [288, 35, 35], [288, 35, 35], [288, 35, 35],
            [768, 17, 17], [768, 17, 17], [768, 17, 17], [768, 17, 17], [768, 17, 17], [768, 17, 17],
            [1280, 8, 8], [2048, 8, 8], [2048, 8, 8],
        ])
        let shapes = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.parameter.value.shape) })
        let expected: [String: [Int]] = [
            "Conv2d_4b_3x3.conv.weight": [288, 192, 3, 3],
            "Mixed_5b.branch3x3_2.conv.weight": [64, 48, 3, 3],   // Figure 5: a 3x3 where v3 has a 5x5
            "Mixed_5b.branch_pool.conv.weight": [64, 288, 1, 1],
            "Mixed_6e.branch7x7_2.conv.weight": [160, 160, 1, 7],
            "Mixed_6f.branch7x7dbl_5.conv.weight": [192, 192, 1, 7],
            "AuxLogits.conv0.bn.weight": [128],
            "AuxLogits.conv1.conv.weight": [768, 128, 5, 5],
            "AuxLogits.conv1.conv.bias": [768],
            "AuxLogits.fc.weight": [1000, 768],
            "fc.weight": [1000, 2048],
        ]
        for (name, shape) in expected {
            #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")")
        }
        // Figure 8 without BN-auxiliary: no batch norm in the auxiliary head's fully connected layer; its weight is 0.3.
        #expect(!shapes.keys.contains { $0.hasPrefix("AuxLogits.conv1.bn") })
        #expect(model.network.allLayers.compactMap { ($0 as? AuxiliaryClassifier)?.weight } == [0.3])
        #expect(!shapes.keys.contains { $0.contains("branch5x5") })
        #expect(rows.last.map { Array($0.outputShape.dropFirst()) } == [1000])
    }

    @Test func inceptionResNetV1StagesAreFigure15() throws {
        let model = try ModelZoo.descriptor(named: "inception-resnet-v1").make()
        #expect(model.parameterCount == ModelZooTests.parameterCounts["inception-resnet-v1"])
        #expect(model.parameterCount == 22_756_328)
        let rows = try model.summary()
        func shape(_ name: String) -> [Int]? { rows.last { $0.name == name }.map { Array($0.outputShape.dropFirst()) } }
        // Figure 14's stem ends at 35x35x256, Figure 7 (192, 192, 256, 384) gives 17x17x896, Figure 12 gives 8x8x1792.
        #expect(shape("maxpool_3a") == [64, 73, 73])
        #expect(shape("conv2d_4a.act") == [192, 71, 71])
        #expect(shape("conv2d_4b.act") == [256, 35, 35])
        #expect(shape("mixed_6a") == [896, 17, 17])
        #expect(shape("mixed_7a") == [1792, 8, 8])
        // Residual sums: 5 at 35x35 (scale 0.17), 10 at 17x17 (0.10), 4 + 1 at 8x8 (0.20, then 1 without ReLU).
        let sums = rows.filter { $0.kind == "Residual" }
        #expect(sums.map { Array($0.outputShape.dropFirst()) }
            == Array(repeating: [256, 35, 35], count: 5) + Array(repeating: [896, 17, 17], count: 10)
            + Array(repeating: [1792, 8, 8], count: 5))
        let residuals = model.network.allLayers.compactMap { ($0 as? Inception.Module)?.body.children.first?.layer as? Residual }
        #expect(residuals.map(\.scale) == Array(repeating: 0.17, count: 5) + Array(repeating: 0.10, count: 10)
            + Array(repeating: 0.20, count: 4) + [1])
        let blocks = model.network.allLayers.compactMap { $0 as? Inception.Module }
        #expect(blocks.map { $0.body.children.count } == Array(repeating: 2, count: 19) + [1])  // the last has no ReLU
        #expect(rows.last.map { Array($0.outputShape.dropFirst()) } == [1000])
    }

    @Test func inceptionResNetV1UsesFacenetPytorchStateDictKeys() throws {
        let model = try ModelZoo.descriptor(named: "inception-resnet-v1").make()
        let shapes = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.parameter.value.shape) })
        // facenet-pytorch's state_dict before `last_linear` has 597 tensors besides the num_batches_tracked counters,
        // 22 of them in the Block8 (repeat_3.4) that Figure 15 does not have; then our head, `logits`.
        #expect(shapes.count == 597 - 22 + 2)
        let expected: [String: [Int]] = [
            "conv2d_1a.conv.weight": [32, 3, 3, 3],
            "conv2d_4b.conv.weight": [256, 192, 3, 3],
            "conv2d_4b.bn.running_var": [256],
            "repeat_1.4.branch2.2.conv.weight": [32, 32, 3, 3],
            "repeat_1.0.conv2d.weight": [256, 96, 1, 1],
            "repeat_1.0.conv2d.bias": [256],
            "mixed_6a.branch0.conv.weight": [384, 256, 3, 3],
            "mixed_6a.branch1.2.conv.weight": [256, 192, 3, 3],
            "repeat_2.9.branch1.1.conv.weight": [128, 128, 1, 7],
            "repeat_2.9.conv2d.weight": [896, 256, 1, 1],
            "mixed_7a.branch0.1.conv.weight": [384, 256, 3, 3],
            "mixed_7a.branch2.2.bn.running_mean": [256],
            "repeat_3.3.branch1.2.conv.weight": [192, 192, 3, 1],
            "block8.conv2d.weight": [1792, 384, 1, 1],
            "logits.weight": [1000, 1792],
            "logits.bias": [1000],
        ]
        for (name, shape) in expected {
            #expect(shapes[name] == shape, "\(name): \(shapes[name].map { "\($0)" } ?? "missing")")
        }
        #expect(shapes["repeat_3.4.conv2d.weight"] == nil)
    }
}
