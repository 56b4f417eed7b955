// The papers' training recipes as data: each setting with the sentence of the paper it comes from. Where a paper is
// silent, the value comes from the reference code named beside it, or is ours and says so.
import ClassicCNNEngine

/// A paper's training settings. `cnn train --recipe NAME` starts from them; options given explicitly override them.
public struct Recipe: Sendable {
    public let name: String
    /// The paper, and the sentences the settings come from.
    public let paper: String
    public let quote: String
    /// "sgd", "rmsprop", "adam" or "adamw".
    public let optimizer: String
    public let learningRate: Double
    public let momentum: Double
    public let weightDecay: Double
    /// RMSProp's decay, epsilon and convention (nil for the other optimizers).
    public var rmsprop: (rho: Double, epsilon: Double, convention: RMSProp.Convention)?
    public let schedule: LearningRateSchedule
    public let batchSize: Int
    public let epochs: Int
    /// `--augment`'s name.
    public let augmentation: String
    public var labelSmoothing: Float?
    public var gradientClipNorm: Float?
    /// The decay of the moving average of the weights used for evaluation (Polyak averaging).
    public var averageDecay: Double?
    /// The weight of the auxiliary heads' losses, where the network has them.
    public var auxiliaryWeight: Float?
    /// What is ours rather than the paper's.
    public let notes: String

    /// The optimizer these settings describe, at the recipe's rate (or `learningRate` when given).
    public func makeOptimizer(learningRate rate: Double? = nil) throws -> any Optimizer {
        var settings: [String: Double] = ["learning_rate": rate ?? learningRate, "momentum": momentum, "weight_decay": weightDecay]
        if let rmsprop {
            settings["rho"] = rmsprop.rho
            settings["epsilon"] = rmsprop.epsilon
            settings["tensorflow_convention"] = rmsprop.convention == .tensorFlow ? 1 : 0
        }
        return try ClassicCNNEngine.makeOptimizer(named: optimizer, settings: settings)
    }

    /// The recipe's settings of a model: the auxiliary heads' weight.
    public func apply(to model: Model) {
        if let auxiliaryWeight { for head in model.auxiliaries { head.weight = auxiliaryWeight } }
    }
}

public struct UnknownRecipeError: Error, CustomStringConvertible {
    public let name: String
    public var description: String { "unknown recipe '\(name)'; available: \(Recipes.all.map(\.name).joined(separator: ", "))" }
}

public enum Recipes {
    public static let alexnet = Recipe(
        name: "alexnet", paper: "Krizhevsky, Sutskever, Hinton 2012, section 5",
        quote: "We trained our models using stochastic gradient descent with a batch size of 128 examples, momentum of 0.9, and "
            + "weight decay of 0.0005. ... The heuristic which we followed was to divide the learning rate by 10 when the validation "
            + "error rate stopped improving with the current learning rate. The learning rate was initialized at 0.01 and reduced "
            + "three times prior to termination. We trained the network for roughly 90 cycles through the training set",
        optimizer: "sgd", learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4,
        schedule: .plateau(ReduceOnPlateau(monitor: "val_accuracy", factor: 0.1, patience: 5, minDelta: 0)),
        batchSize: 128, epochs: 90, augmentation: "alexnet",
        notes: "the plateau's patience (5 epochs) is ours: the paper divided by hand")

    public static let vgg = Recipe(
        name: "vgg", paper: "Simonyan, Zisserman 2015, section 3.1",
        quote: "The batch size was set to 256, momentum to 0.9. The training was regularised by weight decay (the L2 penalty "
            + "multiplier set to 5e-4) and dropout regularisation for the first two fully-connected layers (dropout ratio set to 0.5). "
            + "The learning rate was initially set to 1e-2, and then decreased by a factor of 10 when the validation set accuracy "
            + "stopped improving. In total, the learning rate was decreased 3 times, and the learning was stopped after 370K "
            + "iterations (74 epochs)",
        optimizer: "sgd", learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4,
        schedule: .plateau(ReduceOnPlateau(monitor: "val_accuracy", factor: 0.1, patience: 5, minDelta: 0)),
        batchSize: 256, epochs: 74, augmentation: "vgg",
        notes: "the plateau's patience (5 epochs) is ours; dropout 0.5 is in the networks themselves")

    public static let googlenet = Recipe(
        name: "googlenet", paper: "Szegedy et al. 2015, sections 5 and 6",
        quote: "Our training used asynchronous stochastic gradient descent with 0.9 momentum, fixed learning rate schedule "
            + "(decreasing the learning rate by 4% every 8 epochs). Polyak averaging was used to create the final model used at "
            + "inference time. ... the losses of the auxiliary classifiers were weighted by 0.3",
        optimizer: "sgd", learningRate: 0.01, momentum: 0.9, weightDecay: 2e-4,
        schedule: .exponential(factor: 0.96, every: 8), batchSize: 32, epochs: 250, augmentation: "alexnet",
        averageDecay: 0.9999, auxiliaryWeight: 0.3,
        notes: "the base rate 0.01, weight decay 2e-4 and batch 32 are Caffe's bvlc_googlenet solver (the paper gives none); "
            + "the averaging decay 0.9999 is Inception v3's; the paper's photometric distortions and aspect-ratio crops are "
            + "approximated by AlexNet's augmentation")

    public static let inceptionV3 = Recipe(
        name: "inception-v3", paper: "Szegedy et al. 2016, sections 7 and 8",
        quote: "batch size 32, for 100 epochs. ... our best models were achieved using RMSProp with decay of 0.9 and epsilon = 1.0. "
            + "We used a learning rate of 0.045, decayed every two epoch using an exponential rate of 0.94. In addition, gradient "
            + "clipping with threshold 2.0 was found to be useful to stabilize the training. Model evaluations are performed using "
            + "a running average of the parameters computed over time. ... label-smoothing regularization ... epsilon = 0.1",
        optimizer: "rmsprop", learningRate: 0.045, momentum: 0.9, weightDecay: 4e-5,
        rmsprop: (rho: 0.9, epsilon: 1.0, convention: .tensorFlow),
        schedule: .exponential(factor: 0.94, every: 2), batchSize: 32, epochs: 100, augmentation: "alexnet",
        labelSmoothing: 0.1, gradientClipNorm: 2.0, averageDecay: 0.9999, auxiliaryWeight: 0.4,
        notes: "momentum 0.9, weight decay 4e-5, the auxiliary weight 0.4 and the averaging decay 0.9999 are TF-slim's released "
            + "training code (train_image_classifier.py, inception_v3.py); RMSProp in TensorFlow's convention")

    public static let inceptionV4 = Recipe(
        name: "inception-v4", paper: "Szegedy, Ioffe, Vanhoucke, Alemi 2017, section 4",
        quote: "RMSProp with decay of 0.9 and epsilon = 1.0. We used a learning rate of 0.045, decayed every two epochs using an "
            + "exponential rate of 0.94. Model evaluations are performed using a running average of the parameters computed over time",
        optimizer: "rmsprop", learningRate: 0.045, momentum: 0.9, weightDecay: 4e-5,
        rmsprop: (rho: 0.9, epsilon: 1.0, convention: .tensorFlow),
        schedule: .exponential(factor: 0.94, every: 2), batchSize: 32, epochs: 100, augmentation: "alexnet",
        averageDecay: 0.9999,
        notes: "momentum 0.9, weight decay 4e-5, batch 32 and the averaging decay are TF-slim's defaults; the epochs are ours")

    public static let all = [alexnet, vgg, googlenet, inceptionV3, inceptionV4]

    public static func named(_ name: String) throws -> Recipe {
        guard let recipe = all.first(where: { $0.name == name }) else { throw UnknownRecipeError(name: name) }
        return recipe
    }
}
