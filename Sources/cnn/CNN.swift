// The `cnn` command-line tool: a thin layer of subcommands over the ClassicCNN library.
import ArgumentParser
import ClassicCNN
import Foundation

@main
struct CNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn",
        abstract: "The classic convolutional networks, exact to their papers: build, count, train, evaluate, predict.",
        version: ClassicCNNVersion.current,
        subcommands: [Models.self, Summary.self, Train.self, RecipesCommand.self, Evaluate.self, Predict.self, Forward.self, Convert.self, Weights.self, Export.self, Quantize.self, Compare.self, Bench.self,
                      BenchData.self, Plot.self, ShowData.self, Visualize.self])
}

/// Options that several subcommands share.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the numeric kernels (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func apply() {
        if let threads { EngineOptions.process.threads = threads }
    }
}

/// The network and its size: `MODEL [--input-size N] [--classes N]`, checked before any work starts.
struct ModelOptions: ParsableArguments {
    @Argument(help: "A model name (see `cnn models`).") var model: String
    @Option(help: "Input height and width (default: the network's own).") var inputSize: Int?
    @Option(help: "Number of classes (default: the network's own).") var classes: Int?

    func validate() throws {
        do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") }
        if let inputSize, !(1...ModelDescriptor.maximumInputSize).contains(inputSize) {
            throw ValidationError("--input-size must be in 1...\(ModelDescriptor.maximumInputSize), got \(inputSize)")
        }
        if let classes, !(1...ModelDescriptor.maximumClasses).contains(classes) {
            throw ValidationError("--classes must be in 1...\(ModelDescriptor.maximumClasses), got \(classes)")
        }
    }

    var descriptor: ModelDescriptor { get throws { try ModelZoo.descriptor(named: model) } }

    func make() throws -> Model { try descriptor.make(inputSize: inputSize, classes: classes) }
}

/// The largest --batch-size accepted.
let maximumBatchSize = 65_536

func validateBatchSize(_ batchSize: Int) throws {
    guard (1...maximumBatchSize).contains(batchSize) else {
        throw ValidationError("--batch-size must be in 1...\(maximumBatchSize), got \(batchSize)")
    }
}

func validateAugmentation(_ name: String) throws {
    do { try Augmentation.checkName(name) } catch { throw ValidationError("--augment: \(error)") }
}

/// A failure that is not a usage error (exit status 1 rather than 64).
struct CommandError: Error, CustomStringConvertible {
    let description: String
}

struct DataOptions: ParsableArguments {
    @Option(help: "The folder holding the datasets (or the MNIST files themselves). Default: $CNN_DATA_DIR, then the MNIST in the repository, then the download cache.")
    var dataDir: String?
}

/// Prints each element as a JSON object on a line of its own (JSON Lines): a list (models, predictions).
func printJSONLines<T: Encodable>(_ values: [T]) throws {
    for value in values { try printJSON(value) }
}

/// Prints a report as one JSON object on one line (JSON Lines), keys snake_case and sorted: what every command's
/// --json prints.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}


extension Int {
    /// 61706 -> "61,706".
    var grouped: String {
        let digits = String(Swift.abs(self))
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return (self < 0 ? "-" : "") + out
    }
}
