// RMSProp, AdamW, weight decay without vectors, label smoothing, gradient clipping and the schedules against PyTorch
// (Tests/Fixtures/training/torch.json, made by Scripts/reference/training_fixture.py with torch 2.15.0); RMSProp's
// TensorFlow convention, the moving average of the weights and early stopping against values computed by hand.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

private let fixture: [String: Any] = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/training/torch.json").path
    let data = try! Data(contentsOf: URL(fileURLWithPath: path))
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

private func floats(_ value: Any?) -> [Float] { (value as! [Double]).map(Float.init) }

private func close(_ a: [Float], _ b: [Float], relative: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= relative * max(1, abs($1)) }
}

@Suite("Training options against PyTorch")
struct TrainingOptionsTests {
    /// Runs the fixture's three steps with `optimizer` and compares every step's weight and bias.
    func agrees(_ optimizer: any Optimizer, _ key: String) -> Bool {
        let weight = Parameter(Tensor(shape: [3, 4], values: floats(fixture["weight0"])))
        let bias = Parameter(Tensor(shape: [4], values: floats(fixture["bias0"])))
        let parameters = [(name: "w", parameter: weight), (name: "b", parameter: bias)]
        let grads = fixture["grads"] as! [[Any]]
        let expected = fixture[key] as! [[Any]]
        for (step, pair) in grads.enumerated() {
            weight.gradient = Tensor(shape: [3, 4], values: floats(pair[0]))
            bias.gradient = Tensor(shape: [4], values: floats(pair[1]))
            optimizer.step(parameters)
            guard close(weight.value.values, floats(expected[step][0])), close(bias.value.values, floats(expected[step][1])) else {
                Issue.record("\(key), step \(step + 1): \(weight.value.values) against \(floats(expected[step][0]))")
                return false
            }
        }
        return true
    }

    @Test func rmspropInPyTorchsConvention() {
        #expect(agrees(RMSProp(learningRate: 0.01, rho: 0.9, momentum: 0.9, epsilon: 1e-3, weightDecay: 1e-3), "rmsprop_momentum"))
        #expect(agrees(RMSProp(learningRate: 0.01, rho: 0.9, epsilon: 1e-8), "rmsprop_plain"))
    }

    @Test func adamWDecouplesTheDecay() {
        #expect(agrees(AdamW(learningRate: 0.01, weightDecay: 0.1), "adamw"))
    }

    @Test func weightDecayCanLeaveBiasesAndNormsAlone() {
        let sgd = SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 0.05)
        sgd.decayExcludesVectors = true
        #expect(agrees(sgd, "sgd_decay_weights_only"))
        #expect(sgd.settings["decay_excludes_vectors"] == 1)
        #expect((try? makeOptimizer(named: "sgd", settings: sgd.settings))?.decayExcludesVectors == true)
    }

    /// TensorFlow's RMSPropOptimizer (Inception v3's): ms starts at 1, epsilon inside the root, lr inside the momentum.
    @Test func rmspropInTensorFlowsConvention() {
        let w = Parameter(Tensor(shape: [1], values: [1.0]))
        let optimizer = RMSProp.inception(learningRate: 0.1)
        var (ms, mom, value) = (1.0, 0.0, 1.0)
        for g in [0.5, -2.0, 3.0] {
            w.gradient = Tensor(shape: [1], values: [Float(g)])
            optimizer.step([(name: "w", parameter: w)])
            ms = 0.9 * ms + 0.1 * g * g
            mom = 0.9 * mom + 0.1 * g / (ms + 1.0).squareRoot()
            value -= mom
            #expect(abs(Double(w.value[0]) - value) < 1e-6)
        }
        let restored = try? makeOptimizer(named: "rmsprop", settings: optimizer.settings) as? RMSProp
        #expect(restored?.convention == .tensorFlow && restored?.epsilon == 1)
    }

    @Test func schedulesAgreeWithTorchOptimLRScheduler() throws {
        let schedules = fixture["schedules"] as! [String: [Double]]
        let cases: [(String, LearningRateSchedule, Int)] = [
            ("onecycle", try LearningRateSchedule(parsing: "onecycle"), 10),
            ("onecycle_pct_0.25_div_10_final_100", try LearningRateSchedule(parsing: "onecycle:pct_start=0.25,div_factor=10,final_div_factor=100"), 10),
            ("cosine_min_0.001", .cosine(minimum: 0.001), 10),
            ("step_every_3_factor_0.5", .step(every: 3, factor: 0.5), 1),
            ("multistep_2_5_factor_0.1", .multiStep(milestones: [2, 5], factor: 0.1), 1),
        ]
        for (key, schedule, steps) in cases {
            let expected = try #require(schedules[key])
            let ours = (0..<expected.count).map {
                schedule.rate(base: 0.1, at: SchedulePosition(epoch: $0 / steps, step: $0 % steps, stepsPerEpoch: steps, epochs: 7))
            }
            #expect(zip(ours, expected).allSatisfy { abs($0 - $1) <= 1e-12 + 1e-9 * abs($1) }, "\(key): \(ours) against \(expected)")
        }
    }

    @Test func labelSmoothingAgreesWithPyTorch() {
        let smoothing = fixture["smoothing"] as! [String: Any]
        let loss = SoftmaxCrossEntropy(labelSmoothing: 0.1)
        let labels = (smoothing["labels"] as! [Int]).map(Int32.init)
        let summed = labels.withUnsafeBufferPointer {
            loss.evaluate(output: Tensor(shape: [4, 5], values: floats(smoothing["logits"])), labels: $0, computeGradient: true)
        }
        #expect(abs(summed / 4 - Float(smoothing["loss"] as! Double)) < 1e-6)
        #expect(close(loss.gradient.values, floats(smoothing["gradient"])))
    }

    @Test func labelSmoothingIsSetOnEveryHeadAndRefusedWhereThereIsNone() throws {
        let googlenet = try ModelZoo.make("googlenet", inputSize: 64, classes: 5)
        try googlenet.setLabelSmoothing(0.1)
        #expect((googlenet.loss as? SoftmaxCrossEntropy)?.labelSmoothing == 0.1)
        #expect(googlenet.auxiliaries.allSatisfy { ($0.loss as? SoftmaxCrossEntropy)?.labelSmoothing == 0.1 })
        #expect(throws: ConfigurationError.self) { try ModelZoo.make("lenet5-1998").setLabelSmoothing(0.1) }
        #expect(throws: ConfigurationError.self) { try googlenet.setLabelSmoothing(1.5) }
    }

    /// Keras's class_weight: each example's training loss and gradient times its class's weight; evaluation unweighted.
    @Test func classWeightsScaleEachExample() {
        let logits = Tensor(shape: [3, 4], values: (0..<12).map { Float($0 % 5) * 0.3 - 0.4 })
        let labels: [Int32] = [0, 2, 2]
        let plain = SoftmaxCrossEntropy(), weighted = SoftmaxCrossEntropy()
        weighted.classWeights = [2, 1, 0.5, 1]
        func evaluate(_ loss: SoftmaxCrossEntropy, row: Int? = nil, gradient: Bool = true) -> Float {
            labels.withUnsafeBufferPointer { loss.evaluate(output: logits, labels: $0, computeGradient: gradient) }
        }
        let plainTotal = evaluate(plain), plainGradient = plain.gradient.values
        let total = evaluate(weighted), gradient = weighted.gradient.values
        let rowLosses = (0..<3).map { row in
            [labels[row]].withUnsafeBufferPointer {
                plain.evaluate(output: Tensor(shape: [1, 4], values: Array(logits.values[row * 4 ..< row * 4 + 4])), labels: $0, computeGradient: false)
            }
        }
        #expect(abs(total - (2 * rowLosses[0] + 0.5 * rowLosses[1] + 0.5 * rowLosses[2])) < 1e-5)
        for row in 0..<3 {
            let w: Float = row == 0 ? 2 : 0.5
            #expect(close(Array(gradient[row * 4 ..< row * 4 + 4]), plainGradient[row * 4 ..< row * 4 + 4].map { $0 * w }))
        }
        #expect(abs(evaluate(weighted, gradient: false) - plainTotal) < 1e-6, "evaluation is not weighted")
        #expect(SoftmaxCrossEntropy.balancedWeights(labels: [0, 0, 0, 1], classes: 3) == [Float(4) / 9, 4.0 / 3, 1])
    }

    @Test func gradientClippingAgreesWithClipGradNorm() throws {
        let clip = fixture["clip"] as! [String: Any]
        let gradients = clip["gradients"] as! [Any], clipped = clip["clipped"] as! [Any]
        let model = Model(name: "two", configuration: ModelConfiguration(inputSize: 1, classes: 4, inputChannels: 3),
                          network: Sequential([Flatten().named("flatten"), Linear(inputFeatures: 3, outputFeatures: 4).named("fc")]),
                          loss: SoftmaxCrossEntropy(), inputFormat: .unit(channels: 3))
        let (weight, bias) = (model.parameters[0].parameter, model.parameters[1].parameter)
        weight.gradient = Tensor(shape: [4, 3], values: floats(gradients[0]))
        bias.gradient = Tensor(shape: [4], values: floats(gradients[1]))
        let norm = model.clipGradients(to: 2)
        #expect(abs(norm - (clip["norm"] as! Double)) < 1e-5 * norm)
        #expect(close(weight.gradient.values, floats(clipped[0])) && close(bias.gradient.values, floats(clipped[1])))
        // Below the threshold nothing changes.
        let before = weight.gradient.values
        model.clipGradients(to: 1e9)
        #expect(weight.gradient.values == before)
    }

    /// The moving average by hand: with warm-up the decays are min(d, (1 + n) / (10 + n)).
    @Test func theMovingAverageFollowsTensorFlowsFormula() throws {
        let model = try ModelZoo.make("lenet5", seed: 1)
        let average = WeightAverage(model: model, decay: 0.5)
        let first = model.parameters[0].parameter
        let start = first.value[0]
        var expected = Double(start)
        for (n, value) in [Float(1), 2, 3].enumerated() {
            first.value[0] = value
            average.update(from: model)
            let d = min(0.5, Double(1 + n) / Double(10 + n))
            expected = d * expected + (1 - d) * Double(value)
        }
        average.withAveragedWeights(in: model) { #expect(abs(Double(first.value[0]) - expected) < 1e-6) }
        #expect(first.value[0] == 3, "the model's own weights come back")
    }

    @Test func aRunWithAMovingAverageValidatesAndSavesIt() throws {
        let train = try MNIST.load(.train, from: sharedDataRoot() + "/mnist").prefix(640)
        let test = try MNIST.load(.test, from: sharedDataRoot() + "/mnist").prefix(256)
        var options = TrainingOptions()
        options.epochs = 1
        options.averageDecay = 0.99
        options.checkpointDirectory = freshDirectory("ema")
        let model = try ModelZoo.make("lenet5", seed: 1)
        let trainer = Trainer(model: model, optimizer: Adam(), trainingSet: train, validationSet: test, options: options)
        let result = try #require(try trainer.fit().last)
        let average = try #require(trainer.average)
        let averaged = try average.withAveragedWeights(in: model) { try Evaluation.run(model: model, dataset: test, batchSize: 32) }
        let own = try Evaluation.run(model: model, dataset: test, batchSize: 32)
        #expect(result.validationLoss == averaged.loss && averaged.loss != own.loss)
        let (_, info, _) = try Checkpoint.load(path: options.checkpointDirectory! + "/last.safetensors")
        #expect(info.extraTensors.count == model.parameters.count && info.extraTensors.allSatisfy { $0.name.hasPrefix("ema.") })
        #expect(info.trainingState?.averageUpdates == 20)
    }

    /// Keras's EarlyStopping, epoch by epoch (epochs from 0): patience 2 on val_loss.
    @Test func earlyStoppingCountsAsKeras() {
        let stopping = EarlyStopping(monitor: "val_loss", patience: 2, minDelta: 0.01)
        var state = EarlyStopping.State()
        var stopped: Int?
        for (epoch, loss) in [1.0, 0.8, 0.795, 0.79, 0.5].enumerated() where stopped == nil {
            stopping.update(&state, metrics: ["val_loss": loss], epoch: epoch)
            stopped = state.stoppedEpoch
        }
        #expect(stopped == 3 && state.best == 0.8 && state.bestEpoch == 1)
    }

    @Test func earlyStoppingEndsTheRunAndRestoresTheBestWeights() throws {
        let train = try MNIST.load(.train, from: sharedDataRoot() + "/mnist").prefix(320)
        let test = try MNIST.load(.test, from: sharedDataRoot() + "/mnist").prefix(128)
        var options = TrainingOptions()
        options.epochs = 20
        // A rate so high that the validation loss gets worse after the first epochs.
        options.earlyStopping = EarlyStopping(monitor: "val_loss", patience: 1, minDelta: 1e9, restoreBestWeights: true)
        let model = try ModelZoo.make("lenet5", seed: 1)
        let results = try Trainer(model: model, optimizer: Adam(), trainingSet: train, validationSet: test, options: options).fit()
        // With min_delta 1e9 nothing after the first epoch counts as better: epoch 2 (index 1) stops the run.
        #expect(results.count == 2)
        let report = try Evaluation.run(model: model, dataset: test, batchSize: 32)
        #expect(abs(report.loss - results[0].validationLoss!) < 1e-9, "the weights of epoch 1 are back")
    }
}
