// The `cnn` command-line tool: a thin layer of subcommands over the ClassicCNN library.
import ArgumentParser
import ClassicCNN
import Foundation

@main
struct CNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn",
        abstract: "The classic convolutional networks, exact to their papers: build, count, train, evaluate, predict.",
        subcommands: [Models.self, Summary.self, Train.self, Evaluate.self, Predict.self, Bench.self])
}

/// Options that several subcommands share.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the numeric kernels (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func apply() {
        if let threads { Parallel.threads = threads }
    }
}

struct DataOptions: ParsableArguments {
    @Option(help: "The folder holding the datasets (or the MNIST files themselves). Default: $CNN_DATA_DIR, then the MNIST in the repository, then the download cache.")
    var dataDir: String?
}

/// Prints an Encodable value as pretty JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Loads the named dataset's split. Only MNIST is wired in so far.
func loadDataset(_ name: String, split: MNIST.Split, dataDirectory: String?) throws -> ImageDataset {
    switch name {
    case "mnist":
        let directory = try DataLocator.mnistDirectory(dataDirectory: dataDirectory)
        return try MNIST.load(split, from: directory)
    default:
        throw ValidationError("unknown dataset '\(name)'; available: mnist")
    }
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
