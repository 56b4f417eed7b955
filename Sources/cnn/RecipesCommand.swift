import ArgumentParser
import ClassicCNN

struct RecipesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recipes", abstract: "List the papers' training recipes that `cnn train --recipe` takes, with the sentences they come from.")

    @Flag(help: "Print one JSON object per recipe.") var json = false

    struct Entry: Encodable {
        let name: String, paper: String, optimizer: String, learning_rate: Double, momentum: Double, weight_decay: Double
        let schedule: String, batch_size: Int, epochs: Int, augmentation: String
        let label_smoothing: Float?, gradient_clip_norm: Float?, ema_decay: Double?, auxiliary_weight: Float?
        let rmsprop_epsilon: Double?, rmsprop_convention: String?
        let quote: String, notes: String
    }

    func run() throws {
        for recipe in Recipes.all {
            let entry = Entry(name: recipe.name, paper: recipe.paper, optimizer: recipe.optimizer, learning_rate: recipe.learningRate,
                              momentum: recipe.momentum, weight_decay: recipe.weightDecay, schedule: recipe.schedule.description,
                              batch_size: recipe.batchSize, epochs: recipe.epochs, augmentation: recipe.augmentation,
                              label_smoothing: recipe.labelSmoothing, gradient_clip_norm: recipe.gradientClipNorm,
                              ema_decay: recipe.averageDecay, auxiliary_weight: recipe.auxiliaryWeight,
                              rmsprop_epsilon: recipe.rmsprop?.epsilon, rmsprop_convention: recipe.rmsprop?.convention.rawValue,
                              quote: recipe.quote, notes: recipe.notes)
            if json {
                try printJSON(entry)
                continue
            }
            var settings = "\(recipe.optimizer) lr \(recipe.learningRate)"
            if recipe.optimizer == "sgd" || recipe.rmsprop != nil { settings += ", momentum \(recipe.momentum)" }
            if let rmsprop = recipe.rmsprop { settings += ", rho \(rmsprop.rho), epsilon \(rmsprop.epsilon) (\(rmsprop.convention.rawValue))" }
            settings += ", weight decay \(recipe.weightDecay), batch \(recipe.batchSize), \(recipe.epochs) epochs"
            var extras = ["schedule \(recipe.schedule)", "augment \(recipe.augmentation)"]
            if let value = recipe.labelSmoothing { extras.append("label smoothing \(value)") }
            if let value = recipe.gradientClipNorm { extras.append("clip norm \(value)") }
            if let value = recipe.averageDecay { extras.append("EMA \(value)") }
            if let value = recipe.auxiliaryWeight { extras.append("auxiliary weight \(value)") }
            print("\(recipe.name): \(recipe.paper)")
            print("  \(settings)")
            print("  \(extras.joined(separator: ", "))")
            print("  \"\(recipe.quote)\"")
            print("  Not from the paper: \(recipe.notes)")
            print("")
        }
    }
}
