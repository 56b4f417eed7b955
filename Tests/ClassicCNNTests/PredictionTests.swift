// Classifying pictures from Swift: `Model.predict` and the preparation `cnn predict` uses.
import Foundation
import Testing
import TestSupport
import ClassicCNN

@Suite("Prediction")
struct PredictionTests {
    @Test func predictGivesTheTopClassesNamedAndSorted() throws {
        let model = try ModelZoo.make("lenet5", seed: 1)
        let picture = try Image.load(path: try sharedDataRoot() + "/samples/mnist-test-0000-label7.png")
        let all = model.predict(picture, top: 10, classNames: MNIST.classNames, preparation: .mnistDigit)
        #expect(all.map(\.name).sorted() == MNIST.classNames && Set(all.map(\.index)) == Set(0..<10))
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.probability >= $1.probability })
        #expect(abs(all.map(\.probability).reduce(0, +) - 1) < 1e-5)
        let three = model.predict([picture, picture], top: 3)
        #expect(three.count == 2 && three[0] == three[1] && three[0].count == 3 && three[0].map(\.index) == all.prefix(3).map(\.index))
        #expect(three[0][0].name == String(three[0][0].index), "without names, the index")
    }

    @Test func theDigitIsPreparedAsMNISTWasMade() throws {
        let model = try ModelZoo.make("lenet5", seed: 1)
        let picture = try Image.load(path: try sharedDataRoot() + "/samples/mnist-test-0000-label7.png")
        let input = model.input(for: picture, preparation: .mnistDigit)
        #expect(input.count == 32 * 32)
        let digit = mnistStyleDigit(picture), format = model.inputFormat
        // The 28x28 digit sits in the middle of LeNet-5's 32x32 input, scaled by its input format; the border is blank.
        #expect(input[(2 + 14) * 32 + 2 + 14] == digit[14 * 28 + 14] * format.scale[0] + format.offset[0])
        #expect(input[0] == format.offset[0])
        let fitted = model.input(for: picture, preparation: .fitted)
        #expect(fitted.count == 32 * 32 && fitted != input)
    }

    @Test func checkpointsKnowTheirClassesAndPreparation() {
        func info(_ dataset: String, classes: Int, names: [String] = []) -> CheckpointInfo {
            var info = CheckpointInfo(model: "m", configuration: ModelConfiguration(inputSize: 32, classes: classes, inputChannels: 3),
                                      epoch: 1, dataset: dataset, metrics: [:], optimizer: nil, optimizerSettings: [:], seed: 0)
            info.classNames = names
            return info
        }
        #expect(info("cifar10", classes: 10).knownClassNames == CIFAR10.defaultClassNames)
        #expect(info("mnist", classes: 10).imagePreparation == .mnistDigit && info("cifar10", classes: 10).imagePreparation == .fitted)
        #expect(info("/data/pets", classes: 2, names: ["cat", "dog"]).knownClassNames == ["cat", "dog"])
        #expect(info("/data/pets", classes: 2).knownClassNames.isEmpty)
        #expect(info("imagenet", classes: 1000).knownClassNames.count == 1000)
    }
}
