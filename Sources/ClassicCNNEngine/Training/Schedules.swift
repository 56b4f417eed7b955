// Learning-rate schedules: the rate of every step as a function of the base rate and of where the run is, so that a
// resumed run needs only its position (and, for reduce-on-plateau, the counters saved in its checkpoint).
//
// Each schedule follows the framework that defines it: StepLR, MultiStepLR, CosineAnnealingLR and OneCycleLR of
// torch.optim.lr_scheduler; staircase ExponentialDecay of Keras (tf.keras.optimizers.schedules); ReduceLROnPlateau of
// Keras (keras/src/callbacks/reduce_lr_on_plateau.py).
import Foundation

public struct ScheduleError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where a run is: `epoch` whole epochs done (0 in the first), `step` steps done in the current epoch, of
/// `stepsPerEpoch`, in a run of `epochs` epochs.
public struct SchedulePosition: Equatable, Sendable {
    public var epoch: Int
    public var step: Int
    public var stepsPerEpoch: Int
    public var epochs: Int
    public init(epoch: Int, step: Int, stepsPerEpoch: Int, epochs: Int) {
        (self.epoch, self.step, self.stepsPerEpoch, self.epochs) = (epoch, step, max(stepsPerEpoch, 1), max(epochs, 1))
    }
    /// Steps done in the whole run.
    public var globalStep: Int { epoch * stepsPerEpoch + step }
    public var totalSteps: Int { epochs * stepsPerEpoch }
}

/// Keras's ReduceLROnPlateau: when `monitor` has not improved by more than `minDelta` for `patience` epochs, the
/// rate is multiplied by `factor` (never below `minimumRate`), then `cooldown` epochs pass before counting again.
/// A monitor whose name contains "acc" improves upwards, any other downwards (Keras's `mode="auto"`).
public struct ReduceOnPlateau: Equatable, Sendable {
    public var monitor = "val_loss"
    public var factor = 0.1
    public var patience = 10
    public var minDelta = 1e-4
    public var cooldown = 0
    public var minimumRate = 0.0
    public init(monitor: String = "val_loss", factor: Double = 0.1, patience: Int = 10, minDelta: Double = 1e-4,
                cooldown: Int = 0, minimumRate: Double = 0) {
        (self.monitor, self.factor, self.patience, self.minDelta, self.cooldown, self.minimumRate) =
            (monitor, factor, patience, minDelta, cooldown, minimumRate)
    }
    var increases: Bool { monitor.contains("acc") }

    /// The counters between epochs, saved in checkpoints.
    public struct State: Codable, Equatable, Sendable {
        public var best: Double?
        public var wait = 0
        public var cooldownCounter = 0
        /// The learning rate now, as a multiple of the base rate.
        public var scale = 1.0
        public init() {}
    }

    /// Keras's `on_epoch_end`, given the epoch's metrics; a missing monitor leaves the state as it is (Keras warns).
    public func update(_ state: inout State, metrics: [String: Double], baseRate: Double) {
        guard let current = metrics[monitor], current.isFinite else { return }
        let inCooldown = state.cooldownCounter > 0
        if inCooldown {
            state.cooldownCounter -= 1
            state.wait = 0
        }
        let improved = state.best.map { increases ? current > $0 + minDelta : current < $0 - minDelta } ?? true
        if improved {
            state.best = current
            state.wait = 0
        } else if !inCooldown {
            state.wait += 1
            if state.wait >= patience {
                let old = baseRate * state.scale
                if old > minimumRate {
                    state.scale = Swift.max(old * factor, minimumRate) / baseRate
                    state.cooldownCounter = cooldown
                    state.wait = 0
                }
            }
        }
    }
}

/// A learning-rate schedule. The rate of a step is `rate(base:at:)`; a linear warm-up may come before any of them
/// (``ScheduledLearningRate``).
public enum LearningRateSchedule: Equatable, Sendable {
    /// The base rate throughout.
    case constant
    /// PyTorch's StepLR: `base * factor^floor(epoch / every)`, changing between epochs.
    case step(every: Int, factor: Double)
    /// PyTorch's MultiStepLR: multiplied by `factor` once each milestone epoch is done.
    case multiStep(milestones: [Int], factor: Double)
    /// Keras's staircase ExponentialDecay counted in epochs: `base * factor^floor(epoch / every)`. GoogLeNet
    /// (Szegedy et al. 2015, section 6): "decreasing the learning rate by 4% every 8 epochs" is `factor` 0.96, `every`
    /// 8; Inception v3 (Szegedy et al. 2016, section 8): "exponential rate of 0.94 every 2 epochs".
    case exponential(factor: Double, every: Int)
    /// PyTorch's CosineAnnealingLR stepped every step over the whole run: from the base rate to `minimum` (absolute).
    case cosine(minimum: Double)
    /// PyTorch's OneCycleLR (cosine annealing, two phases, no momentum cycling), the base rate as its `max_lr`: from
    /// `base / initialDivisor` up to `base` over the first `warmupFraction` of the steps, then down to
    /// `base / initialDivisor / finalDivisor`.
    case oneCycle(warmupFraction: Double, initialDivisor: Double, finalDivisor: Double)
    /// Keras's ReduceLROnPlateau, decided after each epoch's validation.
    case plateau(ReduceOnPlateau)

    public static let names = ["constant", "step", "multistep", "exponential", "cosine", "onecycle", "plateau"]

    /// The rate at `position` for a base rate (before any warm-up), the plateau's scale applied where it is one.
    public func rate(base: Double, at position: SchedulePosition, plateau: ReduceOnPlateau.State? = nil) -> Double {
        let epoch = position.epoch
        switch self {
        case .constant:
            return base
        case let .step(every, factor), let .exponential(factor, every):
            return base * Foundation.pow(factor, Double(epoch / every))
        case let .multiStep(milestones, factor):
            return base * Foundation.pow(factor, Double(milestones.filter { $0 <= epoch }.count))
        case let .cosine(minimum):
            let t = Double(min(position.globalStep, position.totalSteps)), total = Double(position.totalSteps)
            return minimum + (base - minimum) * (1 + cos(Double.pi * t / total)) / 2
        case let .oneCycle(fraction, initialDivisor, finalDivisor):
            // torch.optim.lr_scheduler.OneCycleLR, anneal_strategy="cos", three_phase=False.
            let initial = base / initialDivisor, final = initial / finalDivisor
            let total = Double(position.totalSteps), t = Double(min(position.globalStep, position.totalSteps - 1))
            let peak = fraction * total - 1, end = total - 1
            func anneal(_ start: Double, _ stop: Double, _ pct: Double) -> Double { stop + (start - stop) / 2 * (cos(Double.pi * pct) + 1) }
            if t <= peak { return anneal(initial, base, peak > 0 ? t / peak : 1) }
            return anneal(base, final, end > peak ? (t - peak) / (end - peak) : 1)
        case .plateau:
            return base * (plateau?.scale ?? 1)
        }
    }

    /// Refuses settings that would give a negative, zero-dividing or non-finite rate.
    public func validate() throws {
        func positive(_ value: Double, _ name: String) throws {
            guard value.isFinite, value > 0 else { throw ScheduleError("the \(name) must be a positive number, not \(value)") }
        }
        switch self {
        case .constant: break
        case let .step(every, factor), let .exponential(factor, every):
            guard every >= 1 else { throw ScheduleError("'every' must be at least 1 epoch, not \(every)") }
            try positive(factor, "factor")
        case let .multiStep(milestones, factor):
            guard !milestones.isEmpty, milestones.allSatisfy({ $0 >= 1 }), milestones == milestones.sorted() else {
                throw ScheduleError("the milestones must be increasing epochs from 1, not \(milestones)")
            }
            try positive(factor, "factor")
        case let .cosine(minimum):
            guard minimum.isFinite, minimum >= 0 else { throw ScheduleError("the minimum rate must be a non-negative number, not \(minimum)") }
        case let .oneCycle(fraction, initialDivisor, finalDivisor):
            guard fraction.isFinite, fraction > 0, fraction < 1 else {
                throw ScheduleError("pct_start must be between 0 and 1, not \(fraction)")
            }
            try positive(initialDivisor, "div_factor")
            try positive(finalDivisor, "final_div_factor")
        case let .plateau(settings):
            try positive(settings.factor, "factor")
            guard settings.factor < 1 else { throw ScheduleError("the plateau factor must be below 1, not \(settings.factor)") }
            guard settings.patience >= 0, settings.cooldown >= 0 else { throw ScheduleError("patience and cooldown must not be negative") }
            guard settings.minDelta.isFinite, settings.minDelta >= 0, settings.minimumRate.isFinite, settings.minimumRate >= 0 else {
                throw ScheduleError("min_delta and min_lr must be non-negative numbers")
            }
        }
    }
}

// MARK: - Names, as `--lr-schedule` spells them and checkpoints keep them

extension LearningRateSchedule: CustomStringConvertible {
    /// `name` or `name:key=value,key=value`; `LearningRateSchedule(parsing:)` reads it back.
    public var description: String {
        func number(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)" }
        switch self {
        case .constant: return "constant"
        case let .step(every, factor): return "step:every=\(every),factor=\(number(factor))"
        case let .multiStep(milestones, factor):
            return "multistep:milestones=\(milestones.map(String.init).joined(separator: "/")),factor=\(number(factor))"
        case let .exponential(factor, every): return "exponential:factor=\(number(factor)),every=\(every)"
        case let .cosine(minimum): return "cosine:min_lr=\(number(minimum))"
        case let .oneCycle(fraction, initial, final):
            return "onecycle:pct_start=\(number(fraction)),div_factor=\(number(initial)),final_div_factor=\(number(final))"
        case let .plateau(p):
            return "plateau:monitor=\(p.monitor),factor=\(number(p.factor)),patience=\(p.patience),min_delta=\(number(p.minDelta)),"
                + "cooldown=\(p.cooldown),min_lr=\(number(p.minimumRate))"
        }
    }

    /// Reads `name[:key=value,...]`: `step:every=30,factor=0.1`, `multistep:milestones=30/60,factor=0.1`,
    /// `exponential:factor=0.94,every=2`, `cosine[:min_lr=0]`, `onecycle[:pct_start=0.3,div_factor=25,final_div_factor=1e4]`,
    /// `plateau[:monitor=val_loss,factor=0.1,patience=10,min_delta=1e-4,cooldown=0,min_lr=0]`, `constant`. Keys left
    /// out take the defaults of the framework that defines the schedule (PyTorch's, Keras's for the plateau).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0]).lowercased()
        var values: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { throw ScheduleError("'\(pair)' in '\(text)' is not key=value") }
                values[kv[0].trimmingCharacters(in: .whitespaces).lowercased()] = kv[1].trimmingCharacters(in: .whitespaces)
            }
        }
        var used: Set<String> = []
        func double(_ key: String, _ fallback: Double?) throws -> Double {
            used.insert(key)
            guard let raw = values[key] else {
                guard let fallback else { throw ScheduleError("the \(name) schedule needs \(key)=... ('\(text)')") }
                return fallback
            }
            guard let value = Double(raw), value.isFinite else { throw ScheduleError("\(key)=\(raw) is not a finite number ('\(text)')") }
            return value
        }
        func int(_ key: String, _ fallback: Int?) throws -> Int {
            used.insert(key)
            guard let raw = values[key] else {
                guard let fallback else { throw ScheduleError("the \(name) schedule needs \(key)=... ('\(text)')") }
                return fallback
            }
            guard let value = Int(raw) else { throw ScheduleError("\(key)=\(raw) is not a whole number ('\(text)')") }
            return value
        }
        switch name {
        case "constant": self = .constant
        case "step": self = .step(every: try int("every", nil), factor: try double("factor", 0.1))
        case "multistep":
            used.insert("milestones")
            guard let raw = values["milestones"] else { throw ScheduleError("the multistep schedule needs milestones=E1/E2/... ('\(text)')") }
            let milestones = raw.split(separator: "/").map { Int($0) }
            guard !milestones.isEmpty, milestones.allSatisfy({ $0 != nil }) else {
                throw ScheduleError("milestones=\(raw) is not a list of epochs separated by '/' ('\(text)')")
            }
            self = .multiStep(milestones: milestones.map { $0! }, factor: try double("factor", 0.1))
        case "exponential", "exp":
            self = .exponential(factor: try double("factor", nil), every: try int("every", 1))
        case "cosine": self = .cosine(minimum: try double("min_lr", 0))
        case "onecycle", "one-cycle":
            self = .oneCycle(warmupFraction: try double("pct_start", 0.3), initialDivisor: try double("div_factor", 25),
                             finalDivisor: try double("final_div_factor", 1e4))
        case "plateau":
            used.insert("monitor")
            let monitor = values["monitor"] ?? "val_loss"
            guard ["val_loss", "val_accuracy", "loss", "accuracy"].contains(monitor) else {
                throw ScheduleError("monitor=\(monitor): the plateau can watch val_loss, val_accuracy, loss or accuracy")
            }
            self = .plateau(ReduceOnPlateau(monitor: monitor, factor: try double("factor", 0.1), patience: try int("patience", 10),
                                            minDelta: try double("min_delta", 1e-4), cooldown: try int("cooldown", 0),
                                            minimumRate: try double("min_lr", 0)))
        default:
            throw ScheduleError("unknown learning-rate schedule '\(name)'; available: \(Self.names.joined(separator: ", "))")
        }
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ScheduleError("the \(name) schedule has no setting '\(unknown)'; it takes \(used.sorted().joined(separator: ", "))")
        }
        try validate()
    }
}

/// A schedule with its base rate and an optional linear warm-up: over the first `warmupEpochs` (counted in steps)
/// the rate rises linearly from base/steps to the schedule's rate, as timm's and Goyal et al.'s warm-up.
public struct ScheduledLearningRate: Equatable, Sendable {
    public var schedule: LearningRateSchedule
    public var baseRate: Double
    public var warmupEpochs: Double
    public init(schedule: LearningRateSchedule = .constant, baseRate: Double, warmupEpochs: Double = 0) {
        (self.schedule, self.baseRate, self.warmupEpochs) = (schedule, baseRate, warmupEpochs)
    }

    public func rate(at position: SchedulePosition, plateau: ReduceOnPlateau.State? = nil) -> Double {
        let scheduled = schedule.rate(base: baseRate, at: position, plateau: plateau)
        let warmupSteps = warmupEpochs * Double(position.stepsPerEpoch)
        guard warmupSteps > 0, Double(position.globalStep) < warmupSteps else { return scheduled }
        return scheduled * Double(position.globalStep + 1) / warmupSteps.rounded(.up)
    }

    public func validate() throws {
        guard baseRate.isFinite, baseRate > 0 else { throw ScheduleError("the learning rate must be a positive number, not \(baseRate)") }
        guard warmupEpochs.isFinite, warmupEpochs >= 0 else {
            throw ScheduleError("the warm-up must be a non-negative number of epochs, not \(warmupEpochs)")
        }
        try schedule.validate()
    }
}
