// Learning-rate schedules against values computed by hand from PyTorch's and Keras's definitions, their names, and
// an exact resume in the middle of a scheduled run.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Learning-rate schedules")
struct ScheduleTests {
    static func at(_ epoch: Int, step: Int = 0, of steps: Int = 1, epochs: Int = 10) -> SchedulePosition {
        SchedulePosition(epoch: epoch, step: step, stepsPerEpoch: steps, epochs: epochs)
    }

    static func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-12 * max(1, abs(b)) }

    @Test func stepMultiStepAndExponentialChangeBetweenEpochs() {
        let step = LearningRateSchedule.step(every: 2, factor: 0.5)
        #expect((0..<6).map { step.rate(base: 1, at: Self.at($0, step: 3, of: 5)) } == [1, 1, 0.5, 0.5, 0.25, 0.25])
        let multi = LearningRateSchedule.multiStep(milestones: [2, 4], factor: 0.1)
        let multiRates = (0..<6).map { multi.rate(base: 2, at: Self.at($0)) }
        #expect(zip(multiRates, [2, 2, 0.2, 0.2, 0.02, 0.02]).allSatisfy { Self.close($0, $1) })
        // Inception v3: 0.045 x 0.94 every 2 epochs; GoogLeNet: -4% every 8.
        let inception = LearningRateSchedule.exponential(factor: 0.94, every: 2)
        #expect(Self.close(inception.rate(base: 0.045, at: Self.at(5)), 0.045 * 0.94 * 0.94))
        let googlenet = LearningRateSchedule.exponential(factor: 0.96, every: 8)
        #expect(googlenet.rate(base: 0.01, at: Self.at(7)) == 0.01)
        #expect(Self.close(googlenet.rate(base: 0.01, at: Self.at(8)), 0.0096))
    }

    @Test func cosineFollowsPyTorchsClosedFormEveryStep() {
        // CosineAnnealingLR(T_max = 10 steps, eta_min = 0.1): eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2.
        let cosine = LearningRateSchedule.cosine(minimum: 0.1)
        #expect(cosine.rate(base: 1, at: Self.at(0, of: 5, epochs: 2)) == 1)
        #expect(Self.close(cosine.rate(base: 1, at: Self.at(1, step: 0, of: 5, epochs: 2)), 0.55))
        #expect(Self.close(cosine.rate(base: 1, at: Self.at(0, step: 3, of: 5, epochs: 2)), 0.1 + 0.9 * (1 + cos(0.3 * Double.pi)) / 2))
        #expect(Self.close(cosine.rate(base: 1, at: Self.at(2, step: 0, of: 5, epochs: 2)), 0.1))
    }

    @Test func oneCycleFollowsPyTorchsTwoCosinePhases() {
        // OneCycleLR(max_lr=1, total_steps=100): initial 1/25, peak at step 0.3 * 100 - 1 = 29, final 1/25/1e4 at 99.
        let cycle = LearningRateSchedule.oneCycle(warmupFraction: 0.3, initialDivisor: 25, finalDivisor: 1e4)
        func rate(_ t: Int) -> Double { cycle.rate(base: 1, at: Self.at(t / 10, step: t % 10, of: 10, epochs: 10)) }
        #expect(Self.close(rate(0), 0.04))
        #expect(Self.close(rate(29), 1))
        #expect(Self.close(rate(99), 4e-6))
        #expect(Self.close(rate(64), 4e-6 + (1 - 4e-6) / 2))  // halfway down: (64 - 29) / (99 - 29) = 1/2
        #expect(Self.close(rate(10), 1 + (0.04 - 1) / 2 * (cos(Double.pi * 10 / 29) + 1)))
        #expect((1..<100).allSatisfy { $0 <= 29 ? rate($0) > rate($0 - 1) : rate($0) < rate($0 - 1) })
    }

    @Test func warmUpRisesLinearlyToTheSchedule() {
        let warm = ScheduledLearningRate(schedule: .constant, baseRate: 0.4, warmupEpochs: 1)
        #expect((0..<6).map { warm.rate(at: Self.at(0, step: $0, of: 4)) }.map { ($0 * 1e9).rounded() / 1e9 } == [0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
        #expect(warm.rate(at: Self.at(3, step: 2, of: 4)) == 0.4)
    }

    /// Keras's ReduceLROnPlateau, step by step: patience 2, factor 0.5, cooldown 1, min_lr 0.2 (of a base of 1).
    @Test func plateauReducesAfterPatienceWithCooldownAndFloor() {
        let plateau = ReduceOnPlateau(monitor: "val_loss", factor: 0.5, patience: 2, minDelta: 0, cooldown: 1, minimumRate: 0.2)
        var state = ReduceOnPlateau.State()
        var scales: [Double] = [], waits: [Int] = []
        for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.8] {
            plateau.update(&state, metrics: ["val_loss": loss], baseRate: 1)
            scales.append(state.scale)
            waits.append(state.wait)
        }
        // Reduced after the 2nd epoch without improvement (epoch 4); the cooldown epoch (5) does not count; epochs 6
        // and 7 reduce again, then 8 cools down, and epoch 10's 0.125 is floored at min_lr.
        #expect(scales == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2])
        #expect(waits == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0])
        #expect(state.best == 0.8)
    }

    @Test func accuracyMonitorsImproveUpwards() {
        let plateau = ReduceOnPlateau(monitor: "val_accuracy", factor: 0.1, patience: 1, minDelta: 0.01)
        var state = ReduceOnPlateau.State()
        plateau.update(&state, metrics: ["val_accuracy": 0.5], baseRate: 0.1)
        plateau.update(&state, metrics: ["val_accuracy": 0.505], baseRate: 0.1)  // within min_delta: no improvement
        #expect(Self.close(state.scale, 0.1))
        plateau.update(&state, metrics: ["val_accuracy": 0.6], baseRate: 0.1)
        #expect(state.best == 0.6 && state.wait == 0)
    }

    @Test(arguments: ["constant", "step:every=30,factor=0.1", "multistep:milestones=30/60/90,factor=0.2", "exponential:factor=0.94,every=2",
                      "cosine:min_lr=0.0001", "onecycle:pct_start=0.25,div_factor=10,final_div_factor=100",
                      "plateau:monitor=val_accuracy,factor=0.1,patience=5,min_delta=0.001,cooldown=2,min_lr=1e-05"])
    func namesRoundTrip(_ text: String) throws {
        let schedule = try LearningRateSchedule(parsing: text)
        #expect(try LearningRateSchedule(parsing: schedule.description) == schedule)
        #expect(schedule.description == text)
    }

    @Test func defaultsAreTheFrameworks() throws {
        #expect(try LearningRateSchedule(parsing: "onecycle") == .oneCycle(warmupFraction: 0.3, initialDivisor: 25, finalDivisor: 1e4))
        #expect(try LearningRateSchedule(parsing: "plateau") == .plateau(ReduceOnPlateau()))
        #expect(try LearningRateSchedule(parsing: "cosine") == .cosine(minimum: 0))
    }

    @Test(arguments: [("warm-restarts", "unknown learning-rate schedule"), ("step", "needs every"), ("step:every=0", "at least 1"),
                      ("step:every=2,factor=-1", "positive"), ("exponential:factor=inf", "finite"), ("cosine:min_lr=-1", "non-negative"),
                      ("onecycle:pct_start=1.5", "pct_start"), ("plateau:factor=2", "below 1"), ("step:every=2,gamma=0.1", "no setting 'gamma'"),
                      ("multistep:milestones=60/30", "increasing"), ("plateau:monitor=f1", "monitor"), ("step:every", "key=value")])
    func badSchedulesAreRefusedWithAReason(_ text: String, _ reason: String) {
        #expect { try LearningRateSchedule(parsing: text) } throws: { "\($0)".contains(reason) }
    }

    @Test func aNonPositiveBaseRateOrWarmUpIsRefused() {
        #expect(throws: ScheduleError.self) { try ScheduledLearningRate(baseRate: 0).validate() }
        #expect(throws: ScheduleError.self) { try ScheduledLearningRate(baseRate: .nan).validate() }
        #expect(throws: ScheduleError.self) { try ScheduledLearningRate(baseRate: 0.1, warmupEpochs: -1).validate() }
    }

    /// The trainer sets the optimizer's rate before every step, and reports the last step's rate per epoch.
    @Test func theTrainerAppliesTheScheduleEveryStep() throws {
        let train = try MNIST.load(.train, from: sharedDataRoot() + "/mnist").prefix(320)  // 10 steps per epoch
        let optimizer = RecordingSGD(learningRate: 1)
        var options = TrainingOptions()
        options.epochs = 2
        options.learningRate = ScheduledLearningRate(schedule: .cosine(minimum: 0), baseRate: 0.02)
        let results = try Trainer(model: try ModelZoo.make("lenet5", seed: 1), optimizer: optimizer, trainingSet: train,
                                  validationSet: nil, options: options).fit()
        let expected = (0..<20).map { 0.01 * (1 + cos(Double.pi * Double($0) / 20)) }
        #expect(optimizer.rates.count == 20)
        #expect(zip(optimizer.rates, expected).allSatisfy { abs(Double($0) - $1) < 1e-8 })
        #expect(results.map(\.learningRate) == [Double(optimizer.rates[9]), Double(optimizer.rates[19])])
    }

    final class RecordingSGD: Optimizer {
        let inner: SGD
        var rates: [Float] = []
        init(learningRate: Float) { inner = SGD(learningRate: learningRate) }
        var name: String { inner.name }
        var learningRate: Float { get { inner.learningRate } set { inner.learningRate = newValue } }
        var decayExcludesVectors = false
        func step(_ parameters: [(name: String, parameter: Parameter)]) { rates.append(learningRate); inner.step(parameters) }
        var state: [(name: String, tensor: Tensor)] { inner.state }
        var settings: [String: Double] { inner.settings }
        func restore(state: [String: Tensor], settings: [String: Double], parameters: [(name: String, parameter: Parameter)]) throws {
            try inner.restore(state: state, settings: settings, parameters: parameters)
        }
    }

    /// Stopped mid-epoch and resumed by a fresh model, optimizer and trainer: the same weights as the run that was never
    /// stopped, with a per-step schedule (one-cycle with a warm-up) and with the plateau's counters.
    @Test(arguments: ["onecycle", "plateau:monitor=loss,patience=0,factor=0.5,min_delta=0"])
    func aScheduledRunResumesExactly(_ schedule: String) throws {
        let train = try MNIST.load(.train, from: sharedDataRoot() + "/mnist").prefix(640)  // 20 steps per epoch
        var options = TrainingOptions()
        options.epochs = 3
        options.seed = 4
        options.learningRate = ScheduledLearningRate(schedule: try LearningRateSchedule(parsing: schedule), baseRate: 0.05, warmupEpochs: 0.5)
        let straight = try ModelZoo.make("lenet5", seed: 2)
        try Trainer(model: straight, optimizer: SGD(learningRate: 0.05, momentum: 0.9), trainingSet: train, validationSet: nil,
                    options: options).fit()

        options.checkpointDirectory = freshDirectory("resume-schedule")
        let trainer = Trainer(model: try ModelZoo.make("lenet5", seed: 2), optimizer: SGD(learningRate: 0.05, momentum: 0.9),
                              trainingSet: train, validationSet: nil, options: options)
        var calls = 0
        trainer.shouldStop = { calls += 1; return calls == 27 }  // epoch 2, after step 7 (20 calls in epoch 1)
        #expect(throws: TrainingInterrupted.self) { try trainer.fit() }

        let (model, info, state) = try Checkpoint.load(path: options.checkpointDirectory! + "/last.safetensors")
        let saved = try #require(info.trainingState)
        #expect(saved.epoch == 2 && saved.nextBatch == 7)
        #expect(saved.schedule == (try LearningRateSchedule(parsing: schedule)).description && saved.baseLearningRate == 0.05)
        if schedule.hasPrefix("plateau") { #expect(saved.plateau?.best != nil) }
        let optimizer = try makeOptimizer(named: try #require(info.optimizer), settings: info.optimizerSettings)
        try optimizer.restore(state: state, settings: info.optimizerSettings, parameters: model.parameters)
        try Trainer(model: model, optimizer: optimizer, trainingSet: train, validationSet: nil, options: options).fit(resumingFrom: saved)
        #expect(model.parameters.map { $0.parameter.value } == straight.parameters.map { $0.parameter.value })
    }
}
