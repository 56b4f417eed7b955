// One test over the whole registry (adding a model to the registry tests it), and the paper's figures pinned.
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Model zoo", .serialized)  // one network at a time: the VGGs hold over a gigabyte each
struct ModelZooTests {
    /// Trainable parameter counts, pinned.
    static let parameterCounts: [String: Int] = [
        "lenet5": 61_706,
        "lenet5-1998": 60_000,
        "alexnet": 60_965_224,             // Caffe's bvlc_alexnet
        "alexnet-cifar": 46_787_978,       // the reference Keras variant, 10 classes
        "alexnet-torchvision": 61_100_840, // torchvision
        "vgg11": 132_863_336, "vgg11-lrn": 132_863_336, "vgg13": 133_047_848,
        "vgg16-c": 133_638_952, "vgg16": 138_357_544, "vgg19": 143_667_240,
        // torchvision's vgg*_bn
        "vgg11-bn": 132_868_840, "vgg13-bn": 133_053_736, "vgg16-bn": 138_365_992, "vgg19-bn": 143_678_248,
        "googlenet": 13_378_280,              // with the auxiliary heads; 6,998,552 without (bvlc_googlenet)
        "googlenet-torchvision": 13_004_888,  // 6,624,904 without
        "inception-v3": 27_161_264,           // torchvision, with AuxLogits; 23,834,568 without
        "inception-v2": 29_280_176,           // Table 1 with v3's widths, with AuxLogits; 25,954,248 without
        "inception-v4": 42_679_816,           // timm
        "inception-resnet-v2": 55_843_464,    // timm
        "inception-resnet-v1": 22_756_328,    // Figure 15; facenet-pytorch's backbone is one Block8 (1,600,768) larger
    ]

    /// Trainable parameters at inference (auxiliary heads dropped), where they differ.
    static let inferenceCounts: [String: Int] = [
        "googlenet": 6_998_552, "googlenet-torchvision": 6_624_904, "inception-v3": 23_834_568,
        "inception-v2": 25_954_248,
    ]

    @Test("every registered model: shape, backward, pinned count", arguments: ModelZoo.all.map(\.name))
    func registered(_ name: String) throws {
        let model = try ModelZoo.make(name, seed: 3)
        #expect(model.parameterCount == Self.parameterCounts[name], "\(name) has \(model.parameterCount) parameters")
        #expect(model.inferenceParameterCount == Self.inferenceCounts[name] ?? Self.parameterCounts[name])
        let batch = randomTensor([2] + model.inputShape, seed: 4)
        let output = model.forward(batch, training: true)
        #expect(output.shape == [2, model.configuration.classes])
        let optimizer = SGD(learningRate: 0.01)
        let before = model.parameters.map { $0.parameter.value.values }
        let (loss, _) = model.trainStep(batch: batch, labels: [1, 7], optimizer: optimizer)
        #expect(loss.isFinite)
        let after = model.parameters.map { $0.parameter.value.values }
        for ((name, parameter), (old, new)) in zip(model.parameters, zip(before, after)) {
            if parameter.isTrainable {
                #expect(old != new, "\(name) did not change after a step")
            } else if !name.hasSuffix("running_mean") && !name.hasSuffix("running_var") {
                // Fixed parameters (LeNet's RBF centres) never change; batch norm's running statistics follow the batch.
                #expect(old == new, "\(name) is fixed but changed")
            }
        }
    }

    /// Trainable parameters (with auxiliary heads) at CIFAR-10's 32x32 and 10 classes: the heads sized to what is left.
    static let cifarCounts: [String: Int] = [
        "alexnet": 20_209_034, "alexnet-cifar": 21_622_154, "alexnet-torchvision": 20_344_650,
        "vgg11": 28_144_010, "vgg11-lrn": 28_144_010, "vgg13": 28_328_522, "vgg16-c": 28_919_626, "vgg16": 33_638_218,
        "vgg19": 38_947_914, "vgg11-bn": 28_149_514, "vgg13-bn": 28_334_410, "vgg16-bn": 33_646_666, "vgg19-bn": 38_958_922,
        "googlenet": 6_401_870, "googlenet-torchvision": 9_960_638, "inception-v3": 24_371_444,
        "inception-v2": 26_490_356, "inception-v4": 41_158_186, "inception-resnet-v1": 20_981_258,
        "inception-resnet-v2": 54_321_834,
    ]

    @Test("every network trains at CIFAR-10's 32x32", arguments: ModelZoo.all.filter { $0.defaultInputSize > 32 }.map(\.name))
    func cifarSized(_ name: String) throws {
        let model = try ModelZoo.make(name, inputSize: 32, classes: 10, seed: 3)
        #expect(model.parameterCount == Self.cifarCounts[name], "\(name) has \(model.parameterCount) parameters at 32x32")
        let batch = randomTensor([2, 3, 32, 32], seed: 4)
        #expect(model.forward(batch, training: false).shape == [2, 10])
        let (loss, _) = model.trainStep(batch: batch, labels: [1, 7], optimizer: SGD(learningRate: 0.01))
        #expect(loss.isFinite)
        #expect(model.nonFiniteGradient == nil)
        // Only windows that do not fit are padded: a network at its own size adapts nothing.
        let adapting = model.network.allLayers.filter { ($0 as? Conv2D)?.adaptsToSmallInputs ?? ($0 as? MaxPool2D)?.adaptsToSmallInputs ?? false }
        #expect(!adapting.isEmpty)
        let native = try ModelZoo.descriptor(named: name).make()
        #expect(native.network.allLayers.allSatisfy { !(($0 as? Conv2D)?.adaptsToSmallInputs ?? false) })
    }

    @Test func aWindowThatDoesNotFitIsPaddedAsSameAndOnlyThen() throws {
        let shapes: [([Int], [Int])] = [([1, 1, 1, 1], [1, 1, 1, 1]), ([1, 1, 2, 2], [1, 1, 1, 1]), ([1, 1, 5, 5], [1, 1, 2, 2])]
        for (input, expected) in shapes {
            let pool = EngineOptions(adaptsWindowsToSmallInputs: true).run { MaxPool2D(kernelSize: 3, stride: 2) }
            #expect(try pool.outputShape(for: input) == expected, "\(input)")
        }
        #expect(throws: ShapeError.self) { try MaxPool2D(kernelSize: 3, stride: 2).outputShape(for: [1, 1, 2, 2]) }
        // A 1x1 input through a padded 3x3 convolution sees only the centre tap.
        let conv = EngineOptions(adaptsWindowsToSmallInputs: true).run { Conv2D(inputChannels: 1, outputChannels: 1, kernelSize: 3, stride: 2, bias: false) }
        conv.weight.value = Tensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(conv.forward(Tensor(shape: [1, 1, 1, 1], values: [2]), training: false).values == [10])
    }

    @Test func everyNameIsUnique() throws {
        let names = ModelZoo.all.map(\.name)
        #expect(Set(names).count == names.count)
        for descriptor in ModelZoo.all {
            let parameterNames = try descriptor.make().parameters.map(\.name)
            #expect(Set(parameterNames).count == parameterNames.count, "\(descriptor.name) repeats a parameter name")
        }
    }

    @Test func lenet1998MatchesThePaperLayerByLayer() throws {
        let rows = try ModelZoo.make("lenet5-1998").summary().filter { !$0.kind.hasSuffix("Tanh") }
        // Section II-B: parameters and connections of C1, S2, C3, S4, C5, F6, OUTPUT.
        #expect(rows.map(\.name) == ["C1", "S2", "C3", "S4", "C5", "F6", "OUTPUT"])
        #expect(rows.map(\.parameters) == [156, 12, 1_516, 32, 48_120, 10_164, 0])
        #expect(rows.map(\.fixedParameters) == [0, 0, 0, 0, 0, 0, 840])
        #expect(rows.map(\.cost.connections) == [122_304, 5_880, 151_600, 2_000, 48_120, 10_164, 840])
        #expect(rows.map { Array($0.outputShape.dropFirst()) } == [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5], [120, 1, 1], [84], [10]])
    }

    @Test func lenet1998ConnectionTable() {
        let table = LeNet5.c3Connections
        #expect(table.map(\.count) == [3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6])
        // Each S2 map feeds 10 of the 16 C3 maps (Table I has ten X's in each row).
        for map in 0..<6 { #expect(table.filter { $0.contains(map) }.count == 10) }
    }

    @Test func rbfCentresAreDistinctBitmaps() {
        let centres = LeNet5.rbfCentres
        #expect(centres.shape == [10, 84])
        #expect(centres.values.allSatisfy { $0 == 1 || $0 == -1 })
        let rows = (0..<10).map { Array(centres.values[($0 * 84)..<(($0 + 1) * 84)]) }
        #expect(Set(rows.map { $0.description }).count == 10)
    }

    @Test(arguments: ["googlenet", "googlenet-torchvision"])
    func googLeNetStagesAreTable1(_ name: String) throws {
        let rows = try ModelZoo.make(name).summary().filter { $0.kind == "Concat" }
        // 3a 3b 4a 4b 4c 4d 4e 5a 5b: 28x28x256, 28x28x480, 14x14x512 (three), 14x14x528, 14x14x832, 7x7x832, 7x7x1024.
        #expect(rows.map { Array($0.outputShape.dropFirst()) } == [
            [256, 28, 28], [480, 28, 28], [512, 14, 14], [512, 14, 14], [512, 14, 14], [528, 14, 14], [832, 14, 14],
            [832, 7, 7], [1024, 7, 7],
        ])
    }

    @Test func googLeNetUsesTorchvisionNames() throws {
        let names = Set(try ModelZoo.make("googlenet-torchvision").parameters.map(\.name))
        for expected in ["conv1.conv.weight", "conv1.bn.running_var", "inception3a.branch1.conv.weight",
                         "inception3a.branch2.1.bn.bias", "inception4e.branch4.1.conv.weight", "aux1.conv.conv.weight",
                         "aux2.fc1.weight", "aux2.fc2.bias", "fc.weight"] {
            #expect(names.contains(expected), "missing \(expected)")
        }
    }

    @Test func kerasLeNetLayerByLayer() throws {
        let rows = try ModelZoo.make("lenet5").summary().filter { $0.parameters > 0 }
        #expect(rows.map(\.parameters) == [156, 2_416, 48_120, 10_164, 850])
    }

    @Test func badConfigurationsAreReported() throws {
        // Smaller than its own 32 adapts (see cifarSized), down to a single pixel.
        #expect(try ModelZoo.make("lenet5", inputSize: 1).forward(Tensor(shape: [1, 1, 1, 1])).shape == [1, 10])
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5-1998", classes: 5) }
        #expect(throws: UnknownModelError.self) { try ModelZoo.make("lenet6") }
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5", classes: -1) }
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5", classes: 0) }
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5", inputSize: 100_000) }
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5", inputSize: 4000) }
    }

    @Test func sameSeedSameWeights() throws {
        let a = try ModelZoo.make("lenet5", seed: 42), b = try ModelZoo.make("lenet5", seed: 42), c = try ModelZoo.make("lenet5", seed: 43)
        #expect(a.parameters.map { $0.parameter.value } == b.parameters.map { $0.parameter.value })
        #expect(a.parameters.map { $0.parameter.value } != c.parameters.map { $0.parameter.value })
    }
}

@Suite("VGG dense evaluation (section 3.2)", .serialized)
struct DenseEvaluationTests {
    static func copy(_ t: Tensor) -> Tensor { Tensor(copying: t) }

    @Test func atTheTrainedSizeItIsThePlainNetwork() throws {
        let model = try ModelZoo.make("vgg11", classes: 10, seed: 5)
        let x = randomTensor([2, 3, 224, 224], seed: 6)
        let plain = Self.copy(model.forward(x))
        let dense = try VGG.denseEvaluation(of: model, inputSize: 224)
        #expect(dense.parameters.first { $0.name == "classifier.0.weight" }?.parameter.shape == [4096, 512, 7, 7])
        #expect(dense.parameters.map(\.name) == model.parameters.map(\.name))
        let scores = dense.forward(x)
        #expect(scores.shape == [2, 10])
        let scale = plain.values.map(abs).max()!
        #expect(zip(plain.values, scores.values).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }

    /// At 256 the 8x8 feature map gives a 2x2 score map: the mean of the classifier on its four 7x7 windows.
    @Test func aLargerImageAveragesTheScoreMap() throws {
        let model = try ModelZoo.make("vgg11", classes: 10, seed: 5)
        let x = randomTensor([1, 3, 256, 256], seed: 7)
        let parts = Dictionary(model.network.children.map { ($0.name, $0.layer) }, uniquingKeysWith: { a, _ in a })
        let map = Self.copy(parts["features"]!.forward(x, training: false))
        #expect(map.shape == [1, 512, 8, 8])
        var expected = [Float](repeating: 0, count: 10)
        for (top, left) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            var window = [Float]()
            for c in 0..<512 { for y in 0..<7 { for x in 0..<7 { window.append(map[(c * 8 + top + y) * 8 + left + x]) } } }
            let logits = parts["classifier"]!.forward(Tensor(shape: [1, 512 * 49], values: window), training: false).values
            for k in 0..<10 { expected[k] += logits[k] / 4 }
        }
        let scores = try VGG.denseEvaluation(of: model, inputSize: 256).forward(x).values
        let scale = expected.map(abs).max()!
        #expect(zip(expected, scores).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "\(expected) vs \(scores)")
        #expect(throws: ConfigurationError.self) { try VGG.denseEvaluation(of: model, inputSize: 200) }
        #expect(throws: ConfigurationError.self) { try VGG.denseEvaluation(of: try ModelZoo.make("lenet5"), inputSize: 32) }
    }
}
