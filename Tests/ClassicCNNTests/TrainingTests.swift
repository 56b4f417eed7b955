// Training for real on MNIST (briefly), reproducibility, the loader, and checkpoints.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Training and checkpoints")
struct TrainingTests {
    static func mnist(_ split: MNIST.Split) throws -> ImageDataset {
        try MNIST.load(split, from: sharedDataRoot() + "/mnist")
    }

    @Test(arguments: ["lenet5", "lenet5-1998"])
    func aShortRealRunLowersTheLossAndLearns(_ name: String) throws {
        let model = try ModelZoo.make(name, seed: 1)
        let train = try Self.mnist(.train).prefix(6_400), test = try Self.mnist(.test).prefix(1_000)
        let before = try Evaluation.run(model: model, dataset: test)
        var options = TrainingOptions()
        options.epochs = 1
        options.batchSize = 32
        let results = try Trainer(model: model, optimizer: Adam(learningRate: 0.001), trainingSet: train,
                                  validationSet: test, options: options).fit()
        let after = try #require(results.last)
        #expect(after.validationLoss! < before.loss * 0.5, "\(name): loss \(before.loss) -> \(after.validationLoss!)")
        #expect(after.validationAccuracy! > 0.75, "\(name): accuracy after 200 steps \(after.validationAccuracy!)")
    }

    /// `Evaluation.run(mirrored: true)` (`cnn evaluate --flip`) against the same network run on the test images and,
    /// separately, on a test set of their mirrors (`Image.flippedHorizontally`), the softmax averaged by hand.
    @Test func testTimeFlipsAverageEachImageWithItsMirror() throws {
        let model = try ModelZoo.make("lenet5", seed: 3)
        let test = try Self.mnist(.test).prefix(40)
        let mirrors = ImageDataset(name: "mirrors", channels: 1, height: 28, width: 28,
                                   pixels: try (0..<test.count).flatMap { try test.image(at: $0).flippedHorizontally().planarPixels },
                                   labels: test.labels, classNames: test.classNames)
        func inputs(_ dataset: ImageDataset) throws -> Tensor {
            let loader = BatchLoader(dataset: dataset, batchSize: dataset.count, inputSize: 32, format: model.inputFormat, shuffleSeed: nil)
            defer { loader.stop() }
            return try #require(loader.next()).images
        }
        let (plain, mirrored) = (try inputs(test), try inputs(mirrors))
        #expect(plain.mirrored().values == mirrored.values, "mirroring the input tensor is mirroring the image (28 pixels centred in 32)")
        #expect(plain.values != mirrored.values)
        let views = [plain, mirrored].map { model.loss.probabilities(output: model.forward($0)) }
        var loss = 0.0, correct = 0
        for row in 0..<test.count {
            let mean = (0..<10).map { (Double(views[0][row][$0]) + Double(views[1][row][$0])) / 2 }
            loss -= log(mean[Int(test.labels[row])])
            if mean.indices.max(by: { mean[$0] < mean[$1] }) == Int(test.labels[row]) { correct += 1 }
        }
        let report = try Evaluation.run(model: model, dataset: test, batchSize: 16, mirrored: true)
        #expect(report.count == 40 && report.confusionMatrix.joined().reduce(0, +) == 40)
        #expect(abs(report.loss - loss / 40) < 1e-6, "loss \(report.loss) against \(loss / 40) by hand")
        #expect(abs(report.accuracy - Double(correct) / 40) < 1e-9)
        #expect(report.loss != (try Evaluation.run(model: model, dataset: test, batchSize: 16)).loss)
    }

    @Test func sameSeedSameRunBitForBit() throws {
        let train = try Self.mnist(.train).prefix(640)
        func run() throws -> [Tensor] {
            let model = try ModelZoo.make("lenet5", seed: 5)
            var options = TrainingOptions()
            options.epochs = 2
            options.seed = 9
            try Trainer(model: model, optimizer: Adam(), trainingSet: train, validationSet: nil, options: options).fit()
            return model.parameters.map { $0.parameter.value }
        }
        #expect(try run() == run())
    }

    /// A run stopped mid-epoch, or finished early, then resumed from its checkpoint by a fresh model, optimizer and
    /// trainer, ends with the same weights, bit for bit, as the run that was never stopped. Arguments: the call of
    /// `shouldStop` that answers yes (0: none, the first run just has one epoch), and where the run should then be.
    /// It is asked after each of steps 1 to 19 of an epoch and once more after the epoch's checkpoint, so call 20 stops
    /// at the end of epoch 1 and call 21 after the first step of epoch 2.
    @Test(arguments: [(7, 1, 7), (20, 1, 0), (21, 2, 1), (0, 1, 0)])
    func resumedRunEqualsTheUninterruptedRun(_ stopCall: Int, _ epoch: Int, _ nextBatch: Int) throws {
        let train = try Self.mnist(.train).prefix(640)  // 20 steps per epoch
        var options = TrainingOptions()
        options.epochs = 3
        options.seed = 11
        let straight = try ModelZoo.make("lenet5", seed: 2)
        try Trainer(model: straight, optimizer: Adam(), trainingSet: train, validationSet: nil, options: options).fit()

        options.checkpointDirectory = freshDirectory("resume")
        var firstOptions = options
        if stopCall == 0 { firstOptions.epochs = 1 }
        let trainer = Trainer(model: try ModelZoo.make("lenet5", seed: 2), optimizer: Adam(), trainingSet: train,
                              validationSet: nil, options: firstOptions)
        var calls = 0
        trainer.shouldStop = { calls += 1; return calls == stopCall }
        if stopCall > 0 {
            #expect(throws: TrainingInterrupted.self) { try trainer.fit() }
        } else {
            try trainer.fit()
        }

        let (model, info, state) = try Checkpoint.load(path: options.checkpointDirectory! + "/last.safetensors")
        let saved = try #require(info.trainingState)
        #expect(saved.epoch == epoch && saved.nextBatch == nextBatch)
        let run = try SavedRun(path: options.checkpointDirectory! + "/last.safetensors")
        let optimizer = try makeOptimizer(named: try #require(info.optimizer), settings: info.optimizerSettings)
        try optimizer.restore(state: state, settings: info.optimizerSettings, parameters: model.parameters)
        try Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options).fit(resumingFrom: saved)
        #expect(model.parameters.map { $0.parameter.value } == straight.parameters.map { $0.parameter.value })

        // The library's own way, `SavedRun` and `Trainer(continuing:)` (read above, before the run went on), does the
        // same from the path alone.
        #expect(run.state == saved && run.options.seed == 11 && run.options.batchSize == options.batchSize)
        var continued = run.options
        continued.epochs = 3
        var runWithEpochs = run
        runWithEpochs.options = continued
        try Trainer(continuing: runWithEpochs, trainingSet: train, validationSet: nil).fit()
        #expect(run.model.parameters.map { $0.parameter.value } == straight.parameters.map { $0.parameter.value })

        // A different batch size cannot resume this run.
        var other = options
        other.batchSize = 16
        #expect(throws: TrainingError.self) {
            try Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: other).fit(resumingFrom: saved)
        }
    }

    @Test func divergenceStopsTrainingAndKeepsTheGoodCheckpoints() throws {
        let train = try Self.mnist(.train).prefix(640)
        var options = TrainingOptions()
        options.epochs = 2
        options.checkpointDirectory = freshDirectory("diverge")
        let model = try ModelZoo.make("lenet5", seed: 1)
        let optimizer = SGD(learningRate: 0.01)
        let trainer = Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options)
        options.epochs = 1
        try Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options).fit()
        let best = try Data(contentsOf: URL(fileURLWithPath: options.checkpointDirectory! + "/best.safetensors"))
        // Now a learning rate that makes the loss explode.
        optimizer.learningRate = 1e12
        #expect { try trainer.fit() } throws: {
            "\($0)".contains("diverged") && "\($0)".contains("step") && "\($0)".contains("first non-finite: ")
        }
        let after = try Data(contentsOf: URL(fileURLWithPath: options.checkpointDirectory! + "/best.safetensors"))
        #expect(after == best, "the best checkpoint must not be replaced by a diverged one")
    }

    /// A layer that passes values through and, once armed, puts an infinity into the gradient it sends back.
    final class PoisonedGradient: Layer {
        let kind = "PoisonedGradient"
        var armed = false
        func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }
        func forward(_ input: Tensor, training: Bool) -> Tensor { input }
        func backward(_ outputGradient: Tensor) -> Tensor {
            guard armed else { return outputGradient }
            var poisoned = Tensor(copying: outputGradient)
            poisoned[poisoned.count / 2] = .infinity
            return poisoned
        }
    }

    @Test func aNonFiniteGradientStopsTrainingBeforeTheWeightsChange() throws {
        let base = try ModelZoo.make("lenet5", seed: 1)
        let poison = PoisonedGradient()
        // Between the first and the second convolution: conv1's gradient goes bad while the loss stays finite.
        let layers = base.network.children
        let network = Sequential([LayerEntry(name: layers[0].name, layer: layers[0].layer),
                                  LayerEntry(name: "poison", layer: poison)]
                                 + layers.dropFirst().map { LayerEntry(name: $0.name, layer: $0.layer) })
        let model = Model(name: "lenet5", configuration: base.configuration, network: network, loss: base.loss,
                          inputFormat: base.inputFormat)
        let train = try Self.mnist(.train).prefix(320)
        var options = TrainingOptions()
        options.epochs = 1
        options.checkpointDirectory = freshDirectory("gradient")
        let optimizer = Adam(learningRate: 1e-3)
        try Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options).fit()
        let last = try Data(contentsOf: URL(fileURLWithPath: options.checkpointDirectory! + "/last.safetensors"))
        let weights = model.parameters.map { $0.parameter.value }

        poison.armed = true
        options.epochs = 2
        let trainer = Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options)
        #expect { try trainer.fit() } throws: {
            "\($0)".contains("gradient of") && "\($0)".contains("step 1") && "\($0)".contains("not applied")
        }
        #expect(model.nonFiniteGradient != nil)
        #expect(model.parameters.map { $0.parameter.value } == weights, "a step with a non-finite gradient must not touch the weights")
        #expect(model.firstNonFiniteParameter == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: options.checkpointDirectory! + "/last.safetensors")) == last)
    }

    @Test func nonFiniteWeightsAreNeverSaved() throws {
        let model = try ModelZoo.make("lenet5", seed: 1)
        let train = try Self.mnist(.train).prefix(64)
        var options = TrainingOptions()
        options.epochs = 1
        options.checkpointDirectory = freshDirectory("nonfinite-weights")
        // A NaN that reaches a weight between the last step and the save (the loss guard cannot see it) stops the save.
        final class Planter: TrainingObserver {
            let model: Model
            init(model: Model) { self.model = model }
            func epochStarted(_ epoch: Int, of epochs: Int, steps: Int) {}
            func stepFinished(step: Int, of steps: Int, loss: Double, accuracy: Double, elapsed: Double) {}
            func epochFinished(_ result: EpochResult) {
                let parameter = model.parameters.last!.parameter
                parameter.value[0] = .nan
            }
            func checkpointSaved(path: String, isBest: Bool) {}
        }
        let planter = Planter(model: model)
        let trainer = Trainer(model: model, optimizer: SGD(learningRate: 0), trainingSet: train, validationSet: nil, options: options)
        trainer.observer = planter
        #expect { try trainer.fit() } throws: { "\($0)".contains(model.parameters.last!.name) && "\($0)".contains("nothing was saved") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: options.checkpointDirectory!).isEmpty)
    }

    @Test func allFiniteSeesEveryKindOfNonFiniteValueAnywhere() {
        for count in [0, 1, 63, 64, 65, 1000] {
            var tensor = Tensor(shape: [count])
            #expect(tensor.isFinite)
            for position in Set([0, count / 2, count - 1]) where position >= 0 && position < count {
                for bad in [Float.nan, .infinity, -.infinity, Float(bitPattern: 0x7fa0_0001)] {
                    tensor[position] = bad
                    #expect(!tensor.isFinite, "\(bad) at \(position) of \(count)")
                    tensor[position] = .greatestFiniteMagnitude
                    #expect(tensor.isFinite)
                }
            }
        }
    }

    @Test func abandonedTemporaryFilesAreRemovedAndLiveOnesKept() throws {
        let directory = freshDirectory("abandoned")
        // A process that has exited: its pid is free (and not reused within this test in practice).
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = SafeTensors.temporaryPath(for: directory + "/last.safetensors", processID: finished.processIdentifier)
        let live = SafeTensors.temporaryPath(for: directory + "/best.safetensors")
        let other = directory + "/notes.txt.tmp-\(finished.processIdentifier)"
        for path in [dead, live, other, directory + "/last.safetensors"] {
            _ = FileManager.default.createFile(atPath: path, contents: Data([1]))
        }
        Checkpoint.removeAbandonedTemporaryFiles(in: directory)
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(left == ["best.safetensors.tmp-\(getpid())", "last.safetensors", "notes.txt.tmp-\(finished.processIdentifier)"])
        #expect(Checkpoint.writeProblem(in: directory) == nil)
        #expect(Checkpoint.writeProblem(in: directory + "/missing") != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 3, "the probe is removed")
    }

    @Test func dropoutGeneratorsAreSavedAndRestored() throws {
        let model = try ModelZoo.make("googlenet-torchvision", seed: 1)
        let states = model.randomStates
        #expect(states.keys.sorted() == ["aux1.dropout", "aux2.dropout", "dropout"])
        let other = try ModelZoo.make("googlenet-torchvision", seed: 2)
        #expect(other.randomStates != states)
        try other.restoreRandomStates(states)
        #expect(other.randomStates == states)
        #expect(throws: ConfigurationError.self) { try other.restoreRandomStates([:]) }
    }

    @Test func loaderShufflesBySeedAndEpochAndPadsWithTheBackground() throws {
        let data = try Self.mnist(.test).prefix(100)
        let format = InputFormat(scale: [1.275], offset: [-0.1], fitting: .pad)
        func order(seed: UInt64?, epoch: Int) -> [Int] {
            let loader = BatchLoader(dataset: data, batchSize: 32, inputSize: 32, format: format, shuffleSeed: seed, epoch: epoch)
            var indices: [Int] = []
            while let batch = loader.next() { indices += batch.indices }
            return indices
        }
        #expect(order(seed: nil, epoch: 1) == Array(0..<100))
        #expect(order(seed: 1, epoch: 1) == order(seed: 1, epoch: 1))
        #expect(order(seed: 1, epoch: 1) != order(seed: 1, epoch: 2))
        #expect(Set(order(seed: 1, epoch: 3)) == Set(0..<100))
        let loader = BatchLoader(dataset: data, batchSize: 32, inputSize: 32, format: format, shuffleSeed: nil)
        let first = try #require(loader.next())
        #expect(first.images.shape == [32, 1, 32, 32])
        #expect(first.labels[0] == 7)
        // The padding ring is background: -0.1; the image maps 0 -> -0.1 and 255 -> 1.175.
        #expect(first.images[0] == -0.1 && first.images[31] == -0.1)
        let values = first.images.values[0..<1024]
        #expect(abs((values.max() ?? 0) - 1.175) < 1e-5)
        // The last batch holds the remainder.
        var last: Batch?
        while let batch = loader.next() { last = batch }
        #expect(last?.images.shape[0] == 4)
    }

    @Test func checkpointRoundTripIsBitExact() throws {
        let model = try ModelZoo.make("lenet5-1998", seed: 8)
        let optimizer = Adam()
        let batch = randomTensor([4, 1, 32, 32], seed: 2)
        model.trainStep(batch: batch, labels: [0, 1, 2, 3], optimizer: optimizer)
        let path = freshDirectory("checkpoint") + "/model.safetensors"
        let info = CheckpointInfo(model: model.name, configuration: model.configuration, epoch: 3, dataset: "mnist",
                                  metrics: ["val_loss": 0.25], optimizer: "adam", optimizerSettings: optimizer.settings, seed: 8)
        try Checkpoint.save(model: model, optimizer: optimizer, info: info, to: path)
        let (loaded, loadedInfo, state) = try Checkpoint.load(path: path)
        #expect(loaded.name == "lenet5-1998" && loadedInfo.epoch == 3 && loadedInfo.metrics["val_loss"] == 0.25)
        #expect(loaded.parameters.map(\.name) == model.parameters.map(\.name))
        #expect(loaded.parameters.map { $0.parameter.value } == model.parameters.map { $0.parameter.value })
        #expect(loaded.forward(batch) == model.forward(batch))
        // The optimizer state comes back whole: the next step is the same step.
        let restored = Adam()
        try restored.restore(state: state, settings: loadedInfo.optimizerSettings, parameters: loaded.parameters)
        // A state tensor of the wrong shape, or half of Adam's pair, is refused.
        var wrong = state
        wrong["F6.weight.exp_avg"] = Tensor(shape: [3])
        #expect(throws: OptimizerStateError.self) { try Adam().restore(state: wrong, settings: [:], parameters: loaded.parameters) }
        var half = state
        half["C1.weight.exp_avg_sq"] = nil
        #expect(throws: OptimizerStateError.self) { try Adam().restore(state: half, settings: [:], parameters: loaded.parameters) }
        #expect(throws: OptimizerStateError.self) { try Adam().restore(state: state, settings: ["step": .nan], parameters: loaded.parameters) }
        model.trainStep(batch: batch, labels: [0, 1, 2, 3], optimizer: optimizer)
        loaded.trainStep(batch: batch, labels: [0, 1, 2, 3], optimizer: restored)
        #expect(loaded.parameters.map { $0.parameter.value } == model.parameters.map { $0.parameter.value })
    }

    @Test func foreignAndDamagedCheckpointsAreRejectedByName() throws {
        let directory = freshDirectory("foreign")
        let foreign = directory + "/foreign.safetensors"
        try SafeTensors.write([NamedTensor(name: "w", shape: [1], values: [1])], metadata: [:], to: foreign)
        #expect { try Checkpoint.load(path: foreign) } throws: { "\($0)".contains(foreign) && "\($0)".contains("not a ClassicCNN checkpoint") }

        let model = try ModelZoo.make("lenet5")
        let partial = directory + "/partial.safetensors"
        let info = CheckpointInfo(model: "lenet5", configuration: model.configuration, epoch: 1, dataset: "mnist")
        try Checkpoint.save(model: model, optimizer: nil, info: info, to: partial)
        var file = try SafeTensors.read(path: partial)
        file.tensors.removeAll { $0.name == "fc2.bias" }
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: partial)
        #expect { try Checkpoint.load(path: partial) } throws: { "\($0)".contains("fc2.bias") }
    }
}
