import ArgumentParser
import ClassicCNN
import Foundation

struct Weights: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "torchvision's published ImageNet weights: list them, fetch them into the cache.",
        discussion: """
        Weights are kept in $CNN_WEIGHTS_DIR, else $XDG_CACHE_HOME/classiccnn/weights, else \
        ~/.cache/classiccnn/weights, converted to safetensors. `cnn predict --model M --pretrained` and \
        `cnn train M --init pretrained:M` fetch them on first use. Set CNN_WEIGHTS_MIRROR to a folder URL holding \
        the same file names to fetch from elsewhere; on a machine without network, put the .pth file in the cache \
        folder by hand.
        """,
        subcommands: [List.self, Fetch.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the published weights: URL, size, accuracy, preprocessing.")
        @Flag(help: "Print JSON Lines.") var json = false

        struct Entry: Encodable {
            let model, torchvisionName, url, sha256Prefix, preprocessing: String
            let mebibytes, top1, top5: Double
            let cached: Bool
        }

        func run() throws {
            let folder = PretrainedWeights.cacheDirectory
            let entries = PretrainedWeights.all.map {
                Entry(model: $0.model, torchvisionName: $0.torchvisionName, url: $0.url.absoluteString, sha256Prefix: $0.sha256Prefix,
                      preprocessing: $0.preprocessing, mebibytes: $0.mebibytes, top1: $0.top1, top5: $0.top5,
                      cached: FileManager.default.fileExists(atPath: folder + "/" + $0.convertedFileName))
            }
            if json { return try printJSONLines(entries) }
            print("torchvision 0.29's ImageNet-1K weights (top-1 / top-5 as torchvision publishes them); cache: \(folder)")
            for entry in entries {
                let figures = String(format: "%6.1f MiB  top-1 %.3f  top-5 %.3f", entry.mebibytes, entry.top1, entry.top5)
                print("\(entry.model.padding(toLength: 22, withPad: " ", startingAt: 0)) \(figures)  \(entry.cached ? "cached" : "      ")  \(entry.preprocessing)")
                print("    \(entry.url)  (SHA-256 \(entry.sha256Prefix)...)")
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a network's weights, check them and convert them to safetensors.")
        @Argument(help: "A network with published weights (see `cnn weights list`).") var model: String
        @Option(help: "Seconds without data before the download fails.") var timeout: Double = 60

        func validate() throws {
            do { _ = try PretrainedWeights.named(model) } catch { throw ValidationError("\(error)") }
            if timeout <= 0 { throw ValidationError("--timeout must be positive, got \(timeout)") }
        }

        func run() throws {
            let weights = try PretrainedWeights.named(model)
            let path = try fetchPretrained(weights, timeout: timeout)
            print("\(model): \(path)")
        }
    }
}

/// Fetches (if not cached) and converts a set of weights, showing the download's progress on standard error.
func fetchPretrained(_ weights: PretrainedWeights, timeout: Double = 60) throws -> String {
    let folder = PretrainedWeights.cacheDirectory
    let target = folder + "/" + weights.convertedFileName
    if FileManager.default.fileExists(atPath: target) { return target }
    let terminal = isatty(STDERR_FILENO) == 1
    let start = Date()
    var lastShown = Date.distantPast, lastTenth = -1
    FileHandle.standardError.write(Data("Fetching \(weights.sourceURL.absoluteString) into \(folder)\n".utf8))
    let progress: (Int, Int?) -> Void = { received, total in
        let megabytes = Double(received) / 1e6
        let rate = megabytes / max(Date().timeIntervalSince(start), 1e-3)
        let fraction = total.map { Double(received) / Double(max($0, 1)) }
        let tenth = Int((fraction ?? 0) * 10)
        guard terminal ? Date().timeIntervalSince(lastShown) >= 0.25 || received == total : tenth != lastTenth else { return }
        lastShown = Date()
        lastTenth = tenth
        let of = total.map { String(format: " of %.1f MB (%.0f%%)", Double($0) / 1e6, fraction! * 100) } ?? " MB"
        let line = String(format: "  %.1f", megabytes) + of + String(format: ", %.1f MB/s", rate)
        FileHandle.standardError.write(Data((terminal ? "\r" + line + "   " : line + "\n").utf8))
    }
    do {
        let path = try weights.fetch(timeout: timeout, progress: progress) { conversion in
            if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
            let seconds = Date().timeIntervalSince(start)
            FileHandle.standardError.write(Data(String(format: "Converted %d tensors (%@) to safetensors; %.1f s in all\n",
                                                       conversion.tensorCount, conversion.format, seconds).utf8))
        }
        return path
    } catch let error as DownloadError {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        throw CommandError(description: "\(error)")
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a PyTorch .pth / .pt file (either torch.save format) or a Keras .h5 / .keras file to safetensors.",
        discussion: """
        The state dict's tensors keep their names (DataParallel's `module.` prefix removed; a training checkpoint's \
        `state_dict` or `model` entry is taken) and become float32; `num_batches_tracked` is dropped. With --model \
        the file must fit that network (the names and shapes of all its parameters; auxiliary heads may be absent). \
        Only what torch.save writes for tensors is read: any other Python object in the file is refused, never run. \
        Keras files (HDF5, read through the HDF5 library: apt-get install libhdf5-103-1) need --model: their layers \
        are matched by kind and order onto the network's, kernels transposed from HWIO to OIHW.
        """)

    @Argument(help: "The PyTorch file.") var input: String
    @Argument(help: "The safetensors file to write.") var output: String
    @Option(help: "Check the file against this network (see `cnn models`).") var model: String?
    @Option(help: "With --model: the number of classes (default: the network's own).") var classes: Int?
    @Option(help: "With --model: the input size (default: the network's own).") var inputSize: Int?

    func validate() throws {
        if let model { do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") } }
        if model == nil && (classes != nil || inputSize != nil) { throw ValidationError("--classes and --input-size go with --model") }
    }

    func run() throws {
        let start = Date()
        let conversion: WeightFile.Conversion
        do {
            if [.kerasHDF5, .kerasArchive].contains(try WeightFile.kind(of: input)) {
                guard let model else { throw ValidationError("\(input) is a Keras file: give --model, the network its layers map onto") }
                let network = try ModelZoo.descriptor(named: model).make(inputSize: inputSize, classes: classes)
                conversion = try WeightFile.convert(input, to: output, for: network)
            } else {
                // Only the layout is kept while converting: a large file is never in memory beside a whole network.
                let layout = try model.map { try ModelZoo.descriptor(named: $0).make(inputSize: inputSize, classes: classes).parameterLayout }
                conversion = try WeightFile.convert(input, to: output, fitting: layout)
            }
        } catch let error as ConfigurationError {
            throw CommandError(description: "\(input): \(error)")
        }
        print(String(format: "Wrote %@: %d tensors, %@ values, from a %@ file in %.1f s", output, conversion.tensorCount,
                     conversion.valueCount.grouped, conversion.format, Date().timeIntervalSince(start)))
        if !conversion.missingAuxiliary.isEmpty {
            print("  without the auxiliary heads (\(conversion.missingAuxiliary.count) tensors, needed only for training)")
        }
    }
}
