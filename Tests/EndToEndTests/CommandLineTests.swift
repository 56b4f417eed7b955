// End-to-end: the built `cnn` binary run as a user runs it, for each subcommand and each kind of bad input.
import Foundation
import Testing
import TestSupport
import ClassicCNN

/// The result of one run of the tool.
struct Run {
    let status: Int32
    let output: String
    let error: String
}

/// The `cnn` executable built beside this test bundle.
func cnnExecutable() throws -> URL {
    let candidates = [
        Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("cnn"),
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("cnn"),
        URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/.build/release/cnn"),
    ].compactMap { $0 }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw MissingTool(description: "the cnn executable was not found beside the tests (\(candidates.map(\.path)))")
    }
    return found
}

struct MissingTool: Error, CustomStringConvertible { let description: String }

@discardableResult
func cnn(_ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws -> Run {
    let process = Process()
    process.executableURL = try cnnExecutable()
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, output: String(decoding: outBox.data, as: UTF8.self),
               error: String(decoding: errData, as: UTF8.self))
}

/// The one JSON object a command's --json printed, which must be on one line.
func json(_ text: String) throws -> Any {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
    guard lines.count == 1 else { throw MissingTool(description: "expected one line of JSON, got \(lines.count): \(text.prefix(300))") }
    return try JSONSerialization.jsonObject(with: Data(lines[0].utf8))
}

/// The JSON objects a list command's --json printed, one per line (JSON Lines).
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n", omittingEmptySubsequences: true).map { line in
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw MissingTool(description: "not a JSON object: \(line.prefix(200))")
        }
        return object
    }
}

func scratch(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "cnn-e2e-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Expects a failure that a user can act on: non-zero, below 128 (not a crash), and a message naming `subject`.
func expectCleanFailure(_ run: Run, naming subject: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(run.status != 0 && run.status < 128, "exit status \(run.status)", sourceLocation: sourceLocation)
    #expect(run.error.contains(subject), "stderr does not name \(subject): \(run.error)", sourceLocation: sourceLocation)
}

@Suite("cnn end to end", .serialized)
struct CommandLineTests {
    @Test func modelsListsTheRegistry() throws {
        let run = try cnn(["models", "--json"])
        #expect(run.status == 0)
        let entries = try jsonLines(run.output)
        let names = entries.compactMap { $0["name"] as? String }
        #expect(names.contains("lenet5") && names.contains("lenet5-1998"))
        let text = try cnn(["models"])
        #expect(text.output.contains("61,706"))
    }

    @Test func summaryGivesThePapersCounts() throws {
        let run = try cnn(["summary", "lenet5-1998", "--json"])
        #expect(run.status == 0)
        let report = try #require(try json(run.output) as? [String: Any])
        #expect(report["parameters"] as? Int == 60_000)
        #expect(report["model"] as? String == "lenet5-1998")
        let layers = try #require(report["layers"] as? [[String: Any]])
        let c3 = try #require(layers.first { $0["name"] as? String == "C3" })
        #expect(c3["connections"] as? Int == 151_600 && c3["parameters"] as? Int == 1_516)
        #expect(c3["output_shape"] as? [Int] == [1, 16, 10, 10])
        #expect(layers.allSatisfy { $0["macs"] is Int && $0["type"] is String })
        let table = try cnn(["summary", "lenet5"])
        #expect(table.output.contains("Trainable parameters: 61,706"))
    }

    @Test func trainEvaluatePredict() throws {
        let directory = scratch("train")
        let root = try sharedDataRoot()
        let train = try cnn(["train", "lenet5", "--epochs", "2", "--steps-per-epoch", "30", "--checkpoint-dir", directory,
                             "--data-dir", root])
        #expect(train.status == 0, "\(train.error)")
        #expect(train.output.contains("Epoch 2/2") && train.output.contains("val_accuracy"))
        #expect(FileManager.default.fileExists(atPath: directory + "/last.safetensors"))
        #expect(FileManager.default.fileExists(atPath: directory + "/best.safetensors"))

        let evaluate = try cnn(["evaluate", "--checkpoint", directory + "/last.safetensors", "--json", "--data-dir", root])
        #expect(evaluate.status == 0, "\(evaluate.error)")
        let report = try #require(try json(evaluate.output) as? [String: Any])
        let accuracy = try #require(report["accuracy"] as? Double)
        #expect(accuracy > 0.5 && (report["loss"] as? Double ?? .nan).isFinite)
        #expect((report["confusion_matrix"] as? [[Int]])?.count == 10)
        #expect(report["images"] as? Int == 10_000)

        let samples = root + "/samples"
        let predict = try cnn(["predict", "--checkpoint", directory + "/best.safetensors", "--json", "--top", "2",
                               samples + "/mnist-test-0000-label7.png", samples + "/mnist-test-0003-label0.png"])
        #expect(predict.status == 0, "\(predict.error)")
        let results = try jsonLines(predict.output)
        #expect(results.count == 2)
        let first = try #require(results.first?["predictions"] as? [[String: Any]])
        #expect(first.count == 2 && first[0]["class"] is String && first[0]["index"] is Int && first[0]["probability"] is Double)
    }

    /// `cnn quantize` calibrates a trained LeNet-5, writes a quantised checkpoint that `evaluate` runs in int8 with the
    /// float accuracy within a point, and refuses bad input without writing anything.
    @Test func quantizeThenEvaluateInInt8() throws {
        let directory = scratch("quantize")
        let root = try sharedDataRoot()
        let train = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "200", "--checkpoint-dir", directory,
                             "--data-dir", root])
        #expect(train.status == 0, "\(train.error)")
        let checkpoint = directory + "/last.safetensors", output = directory + "/int8.safetensors"
        let quantize = try cnn(["quantize", "--checkpoint", checkpoint, "--output", output, "--images", "256", "--limit", "2000",
                                "--data-dir", root])
        #expect(quantize.status == 0, "\(quantize.error)")
        #expect(quantize.output.contains("3 of 3 convolutions quantised to int8"), "\(quantize.output)")
        // "on 2,000 test images: float A%, int8 B%, the same top-1 class for C%"
        let figures = quantize.output.split(separator: "\n").last { $0.hasPrefix("on 2,000 test images") }.map { line in
            line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "%,"))) }
        } ?? []
        #expect(figures.count == 3, "\(quantize.output)")
        if figures.count == 3 {
            #expect(abs(figures[0] - figures[1]) < 1 && figures[2] > 98, "\(figures)")
        }

        let float = try json(cnn(["evaluate", "--checkpoint", checkpoint, "--json", "--limit", "2000", "--data-dir", root]).output) as? [String: Any]
        let int8 = try json(cnn(["evaluate", "--checkpoint", output, "--json", "--limit", "2000", "--data-dir", root]).output) as? [String: Any]
        #expect(float?["int8"] as? Bool == false && int8?["int8"] as? Bool == true)
        let (a, b) = (float?["accuracy"] as? Double ?? 0, int8?["accuracy"] as? Double ?? 0)
        #expect(a > 0.8 && abs(a - b) < 0.01, "float \(a), int8 \(b)")

        // Bad input: the output is the input (or a link to it), the output exists, no such checkpoint, a bad count. Nothing is written.
        let before = try FileManager.default.attributesOfItem(atPath: output)[.modificationDate] as? Date
        expectCleanFailure(try cnn(["quantize", "--checkpoint", checkpoint, "--output", checkpoint]), naming: "--output")
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.safetensors", withDestinationPath: checkpoint)
        expectCleanFailure(try cnn(["quantize", "--checkpoint", checkpoint, "--output", directory + "/link.safetensors", "--overwrite"]),
                           naming: "--output")
        expectCleanFailure(try cnn(["quantize", "--checkpoint", checkpoint, "--output", output, "--data-dir", root]), naming: output)
        expectCleanFailure(try cnn(["quantize", "--checkpoint", directory + "/none.safetensors", "--output", directory + "/x.safetensors"]),
                           naming: "none.safetensors")
        expectCleanFailure(try cnn(["quantize", "--checkpoint", checkpoint, "--output", directory + "/x.safetensors", "--images", "0"]),
                           naming: "--images")
        #expect(!FileManager.default.fileExists(atPath: directory + "/x.safetensors"))
        #expect(try FileManager.default.attributesOfItem(atPath: output)[.modificationDate] as? Date == before)
    }

    /// A second run starts from the first's weights with two layers frozen, on a schedule, with a recipe's settings
    /// overridden; bad prefixes and files that fit nothing are usage errors.
    @Test func fineTunesFromAnotherRunsWeights() throws {
        let (first, second) = (scratch("init-a"), scratch("init-b"))
        let root = try sharedDataRoot()
        let base = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "20", "--validation-steps", "2",
                            "--checkpoint-dir", first, "--data-dir", root])
        #expect(base.status == 0, "\(base.error)")
        // Dense evaluation is VGG's: asking it of LeNet is a usage error.
        #expect(try cnn(["evaluate", "--checkpoint", first + "/last.safetensors", "--dense", "--data-dir", root]).status == 64)
        let tuned = try cnn(["train", "lenet5", "--init", first + "/last.safetensors", "--freeze", "conv1", "conv2",
                             "--recipe", "alexnet", "--augment", "none", "--batch-size", "32", "--epochs", "2", "--steps-per-epoch", "10",
                             "--validation-steps", "2", "--lr-schedule", "cosine", "--checkpoint-dir", second, "--data-dir", root])
        #expect(tuned.status == 0, "\(tuned.error)")
        #expect(tuned.output.contains("Initialised from \(first)/last.safetensors: loaded 10 tensors"), "\(tuned.output)")
        #expect(tuned.output.contains("59,134 of them trained") && tuned.output.contains("lr: "), "\(tuned.output)")
        let (model, info, _) = try Checkpoint.load(path: second + "/last.safetensors")
        let (original, _, _) = try Checkpoint.load(path: first + "/last.safetensors")
        #expect(model.parameters[0].parameter.value == original.parameters[0].parameter.value, "conv1 is frozen")
        #expect(model.parameters.last!.parameter.value != original.parameters.last!.parameter.value, "fc2 is trained")
        #expect(info.optimizer == "sgd" && info.trainingState?.schedule == "cosine:min_lr=0" && info.trainingState?.frozen == ["conv1", "conv2"])

        expectCleanFailure(try cnn(["train", "lenet5", "--freeze", "features", "--data-dir", root, "--checkpoint-dir", second]), naming: "features")
        #expect(try cnn(["train", "lenet5", "--freeze", "features", "--data-dir", root, "--checkpoint-dir", second]).status == 64)
        let alien = second + "/alien.safetensors"
        try SafeTensors.write([NamedTensor(name: "features.0.weight", shape: [2], values: [1, 2])], metadata: [:], to: alien)
        let refused = try cnn(["train", "lenet5", "--init", alien, "--data-dir", root, "--checkpoint-dir", second])
        #expect(refused.status == 64 && refused.error.contains("fits a parameter"), "\(refused.error)")
        #expect(try cnn(["train", "lenet5", "--train-only", "head", "--data-dir", root, "--checkpoint-dir", second]).status == 64)
    }

    @Test func trainsAVGGOnCIFAR10AtItsNativeSize() throws {
        let directory = scratch("cifar")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try cnn(["train", "vgg11", "--dataset", "cifar10", "--input-size", "32", "--classes", "10", "--epochs", "1",
                           "--steps-per-epoch", "3", "--validation-steps", "1", "--optimizer", "sgd", "--momentum", "0",
                           "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("val_accuracy"))
        let evaluate = try cnn(["evaluate", "--checkpoint", directory + "/last.safetensors", "--json", "--data-dir", try sharedDataRoot()])
        #expect(evaluate.status == 0, "\(evaluate.error)")
        let report = try #require(try json(evaluate.output) as? [String: Any])
        #expect(report["dataset"] as? String == "cifar10" && report["images"] as? Int == 10_000)
        #expect((report["class_names"] as? [String])?.first == "airplane")

        // predict on a colour picture of any size: CIFAR-10's class names, probabilities summing to at most 1.
        let picture = try sharedDataRoot() + "/samples/cifar-test-0002-deer.jpg"
        let predict = try cnn(["predict", "--checkpoint", directory + "/last.safetensors", "--top", "10", "--json", picture])
        #expect(predict.status == 0, "\(predict.error)")
        let results = try jsonLines(predict.output)
        let predictions = try #require(results.first?["predictions"] as? [[String: Any]])
        #expect(Set(predictions.compactMap { $0["class"] as? String }) == Set(["airplane", "automobile", "bird", "cat", "deer",
                                                                              "dog", "frog", "horse", "ship", "truck"]))
        let total = predictions.compactMap { $0["probability"] as? Double }.reduce(0, +)
        #expect(abs(total - 1) < 1e-4)
    }

    /// A 1000-class network names ImageNet's classes; --model with --weights takes a plain state dict.
    @Test func predictNamesImageNetClasses() throws {
        let directory = scratch("imagenet-names")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try cnn(["train", "googlenet-torchvision", "--dataset", "cifar10", "--input-size", "32", "--epochs", "1",
                           "--steps-per-epoch", "1", "--validation-steps", "1", "--batch-size", "4",
                           "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()])
        #expect(run.status == 0, "\(run.error)")
        let picture = try sharedDataRoot() + "/samples/cifar-test-0001-dog.png"
        let predict = try cnn(["predict", "--checkpoint", directory + "/last.safetensors", "--top", "1000", "--json", picture])
        #expect(predict.status == 0, "\(predict.error)")
        let results = try jsonLines(predict.output)
        let names = try #require(results.first?["predictions"] as? [[String: Any]]).compactMap { $0["class"] as? String }
        #expect(names.count == 1000 && names.contains("tench") && names.contains("toilet tissue"))
        expectCleanFailure(try cnn(["predict", "--model", "googlenet-torchvision", picture]), naming: "--weights")
        // A checkpoint serves as a state dict (its optimizer state is ignored): the same predictions.
        let plain = try cnn(["predict", "--model", "googlenet-torchvision", "--weights", directory + "/last.safetensors",
                             "--input-size", "32", "--top", "1000", "--json", picture])
        #expect(plain.status == 0, "\(plain.error)")
        #expect(plain.output == predict.output)
    }

    /// Ctrl-C (SIGINT), or the SIGTERM that `docker stop`, Slurm and systemd send: the run stops after the step, saves
    /// last.safetensors, says how to resume and exits 130 (143 for SIGTERM); --resume then finishes the run.
    @Test(arguments: [SIGINT, SIGTERM])
    func interruptedTrainingSavesAndResumes(_ signal: Int32) throws {
        let directory = scratch("interrupt-\(signal)")
        let arguments = ["train", "lenet5", "--epochs", "2", "--steps-per-epoch", "1500", "--validation-steps", "2",
                         "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()]
        let process = Process()
        process.executableURL = try cnnExecutable()
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Wait until training has started (the first epoch's header), then interrupt.
        var seen = Data()
        let deadline = Date().addingTimeInterval(60)
        while !String(decoding: seen, as: UTF8.self).contains("Epoch 1/2"), Date() < deadline, process.isRunning {
            seen.append(out.fileHandleForReading.availableData)
        }
        Thread.sleep(forTimeInterval: 0.5)
        kill(process.processIdentifier, signal)
        let rest = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        _ = rest
        #expect(process.terminationStatus == 128 + signal, "exit \(process.terminationStatus): \(errors)")
        #expect(errors.contains("--resume"))
        #expect(FileManager.default.fileExists(atPath: directory + "/last.safetensors"))

        let resumed = try cnn(arguments + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.error)")
        #expect(resumed.output.contains("Resuming") && resumed.output.contains("Epoch 2/2"))
    }

    /// --resume continues the run as it was: options that would change it are refused with the run's own values;
    /// the learning rate and the number of epochs may change.
    @Test func resumeRefusesWhatItCannotHonour() throws {
        let directory = scratch("resume-conflicts"), root = try sharedDataRoot()
        let first = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "5", "--validation-steps", "1",
                             "--checkpoint-dir", directory, "--data-dir", root])
        try #require(first.status == 0, "\(first.error)")
        let conflicting = try cnn(["train", "lenet5", "--resume", "--batch-size", "16", "--dataset", "cifar10", "--optimizer", "sgd",
                                   "--checkpoint-dir", directory, "--data-dir", root])
        #expect(conflicting.status == 64, "\(conflicting.error)")
        for part in ["--batch-size 16 (the run's: 32)", "--dataset cifar10 (the run's: mnist)", "--optimizer sgd (the run's: adam)"] {
            #expect(conflicting.error.contains(part), "\(conflicting.error)")
        }
        let more = try cnn(["train", "lenet5", "--resume", "--lr", "0.0005", "--epochs", "2", "--batch-size", "32",
                            "--checkpoint-dir", directory, "--data-dir", root])
        #expect(more.status == 0, "\(more.error)")
        #expect(more.output.contains("from 0.001 to 0.0005") && more.output.contains("Epoch 2/2") && more.output.contains("lr: 0.0005"),
                "\(more.output)")
    }

    /// A new run in a folder that holds another run's checkpoints is refused, naming that run, and the checkpoints
    /// stay as they were; --overwrite replaces them.
    @Test func aNewRunDoesNotReplaceAnotherRunsCheckpoints() throws {
        let directory = scratch("overwrite"), root = try sharedDataRoot()
        let arguments = ["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "5", "--validation-steps", "1",
                         "--checkpoint-dir", directory, "--data-dir", root]
        let first = try cnn(arguments)
        try #require(first.status == 0, "\(first.error)")
        let best = try Data(contentsOf: URL(fileURLWithPath: directory + "/best.safetensors"))
        let second = try cnn(arguments + ["--seed", "4"])
        #expect(second.status == 64, "\(second.error)")
        for part in ["holds another run's checkpoints", "lenet5 on mnist, epoch 1", "--resume", "--overwrite"] {
            #expect(second.error.contains(part), "\(second.error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/best.safetensors")) == best)
        let replaced = try cnn(arguments + ["--seed", "4", "--overwrite"])
        #expect(replaced.status == 0, "\(replaced.error)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/best.safetensors")) != best)
    }

    /// Memory is proportional to one batch: after the first epoch, later epochs add no resident memory.
    @Test func residentMemoryIsFlatAcrossEpochs() throws {
        let directory = scratch("memory")
        let run = try cnn(["train", "lenet5", "--epochs", "6", "--steps-per-epoch", "150", "--validation-steps", "4", "--json",
                           "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()])
        #expect(run.status == 0, "\(run.error)")
        // JSON Lines: one object per epoch on one line, snake_case as every other command.
        let lines = run.output.split(separator: "\n").map(String.init)
        let objects = try lines.map { try #require(try json($0) as? [String: Any], "not a JSON object: \($0)") }
        #expect(objects.first?["val_accuracy"] is Double && objects.first?["images_per_second"] is Double)
        let resident = objects.compactMap { $0["resident_bytes"] as? Int }
        try #require(resident.count == 6, "epochs reported: \(objects.count)")
        let growth = resident.last! - resident[1]
        #expect(growth < 4 << 20, "resident memory grew by \(growth >> 10) kB from epoch 2 to 6: \(resident.map { $0 >> 10 })")
    }

    /// A safetensors file of float32 tensors, written by hand (the format is an 8-byte header length, a JSON header
    /// and the data), so that this test needs neither the library nor Python.
    func safetensors(_ tensors: [(String, [Int], [Float])], at path: String) throws {
        var entries: [String] = [], data = Data(), offset = 0
        for (name, shape, values) in tensors {
            entries.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + 4 * values.count)]}")
            values.forEach { withUnsafeBytes(of: $0.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            offset += 4 * values.count
        }
        var header = "{" + entries.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var file = Data(withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) })
        file.append(Data(header.utf8))
        file.append(data)
        try file.write(to: URL(fileURLWithPath: path))
    }

    /// `cnn forward` with hand-made weights: LeNet-5 with every weight 0.01 and zero biases, on an all-ones input,
    /// gives 25 * 0.01 = 0.25 after conv1 (and its pool), 150 * 0.01 * 0.25 = 0.375 after conv2, 1.5 after conv3,
    /// 1.8 after fc1 and 84 * 0.01 * 1.8 = 1.512 for every class.
    @Test func forwardRunsGivenWeightsOnAGivenTensor() throws {
        let directory = scratch("forward")
        let shapes: [(String, [Int])] = [("conv1.weight", [6, 1, 5, 5]), ("conv1.bias", [6]), ("conv2.weight", [16, 6, 5, 5]),
                                         ("conv2.bias", [16]), ("conv3.weight", [120, 16, 5, 5]), ("conv3.bias", [120]),
                                         ("fc1.weight", [84, 120]), ("fc1.bias", [84]), ("fc2.weight", [10, 84]), ("fc2.bias", [10])]
        let tensors = shapes.map { name, shape in (name, shape, [Float](repeating: name.hasSuffix("bias") ? 0 : 0.01, count: shape.reduce(1, *))) }
        try safetensors(tensors, at: directory + "/weights.safetensors")
        try safetensors([("input", [2, 1, 32, 32], [Float](repeating: 1, count: 2048))], at: directory + "/input.safetensors")
        let run = try cnn(["forward", "--model", "lenet5", "--weights", directory + "/weights.safetensors",
                           "--input", directory + "/input.safetensors", "--output", directory + "/output.safetensors"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("Wrote \(directory)/output.safetensors: output [2, 10]"), "forward says what it wrote: \(run.output)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/output.safetensors"))
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.load(as: UInt64.self) })
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        #expect(header.contains("\"output\"") && header.contains("[2,10]"))
        let values = (0..<20).map { i in Float(bitPattern: bytes[(8 + headerLength + 4 * i)...].prefix(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) }
        #expect(values.allSatisfy { abs($0 - 1.512) < 1e-4 }, "\(values)")

        // A state dict missing a parameter is refused, naming it.
        try safetensors(Array(tensors.dropLast()), at: directory + "/partial.safetensors")
        expectCleanFailure(try cnn(["forward", "--model", "lenet5", "--weights", directory + "/partial.safetensors",
                                    "--input", directory + "/input.safetensors", "--output", directory + "/o.safetensors"]), naming: "fc2.bias")
    }

    /// `cnn export` writes an ONNX file from a state dict (the library's ONNXTests run such files in ONNX Runtime),
    /// and a file it cannot write is reported by name with nothing left behind.
    /// `cnn compare`: the largest relative difference per tensor, 0 for the same file, exit 1 beyond --tolerance or when
    /// a tensor is missing.
    @Test func compareTellsHowFarTwoFilesAre() throws {
        let directory = scratch("compare")
        try safetensors([("a.weight", [2, 2], [1, -2, 3, 4]), ("optimizer.a.weight.momentum", [2, 2], [0, 0, 0, 1])], at: directory + "/one.safetensors")
        try safetensors([("a.weight", [2, 2], [1, -2, 3, 4.0004]), ("optimizer.a.weight.momentum", [2, 2], [0, 0, 0, 2])],
                        at: directory + "/two.safetensors")
        try safetensors([("a.weight", [2, 2], [1, -2, 3, 4])], at: directory + "/short.safetensors")
        let same = try cnn(["compare", directory + "/one.safetensors", directory + "/one.safetensors", "--all"])
        #expect(same.status == 0 && same.output.contains("weights: 1 tensors, 1 bit for bit"), "\(same.output) \(same.error)")
        let close = try cnn(["compare", directory + "/one.safetensors", directory + "/two.safetensors", "--tolerance", "1e-3"])
        #expect(close.status == 0 && close.output.contains("0.0001 (a.weight)") && close.output.contains("difference 1 (optimizer.a.weight.momentum)"),
                "\(close.output) \(close.error)")
        expectCleanFailure(try cnn(["compare", directory + "/one.safetensors", directory + "/two.safetensors", "--tolerance", "1e-3", "--all"]),
                           naming: "two.safetensors")
        expectCleanFailure(try cnn(["compare", directory + "/one.safetensors", directory + "/two.safetensors"]), naming: "0.0001 > 0.0")
        let missing = try cnn(["compare", directory + "/one.safetensors", directory + "/short.safetensors", "--tolerance", "1"])
        expectCleanFailure(missing, naming: "optimizer.a.weight.momentum is only in")
        expectCleanFailure(try cnn(["compare", directory + "/one.safetensors", directory + "/nothing.safetensors"]), naming: "nothing.safetensors")
    }

    /// Started by mpirun (its variables set) but built without the trait MPI: a clear refusal, not a lone run.
    @Test func trainUnderMPIWithoutTheTraitSaysHowToBuild() throws {
        let directory = scratch("mpi-refusal")
        let run = try cnn(["train", "lenet5", "--steps-per-epoch", "1", "--epochs", "1", "--checkpoint-dir", directory + "/c"],
                          environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"])
        expectCleanFailure(run, naming: "--traits MPI")
        #expect(!FileManager.default.fileExists(atPath: directory + "/c"))
    }

    @Test func exportWritesAnONNXFile() throws {
        let directory = scratch("export")
        let shapes: [(String, [Int])] = [("conv1.weight", [6, 1, 5, 5]), ("conv1.bias", [6]), ("conv2.weight", [16, 6, 5, 5]),
                                         ("conv2.bias", [16]), ("conv3.weight", [120, 16, 5, 5]), ("conv3.bias", [120]),
                                         ("fc1.weight", [84, 120]), ("fc1.bias", [84]), ("fc2.weight", [10, 84]), ("fc2.bias", [10])]
        try safetensors(shapes.map { ($0.0, $0.1, [Float](repeating: 0.01, count: $0.1.reduce(1, *))) }, at: directory + "/weights.safetensors")
        let run = try cnn(["export", "--model", "lenet5", "--weights", directory + "/weights.safetensors", "--output", directory + "/lenet5.onnx"])
        #expect(run.status == 0, "\(run.error)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/lenet5.onnx"))
        #expect(bytes.count > 61_706 * 4, "\(bytes.count) bytes cannot hold LeNet-5's weights")
        #expect(String(decoding: bytes.prefix(64), as: UTF8.self).contains("ClassicCNN"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["lenet5.onnx", "weights.safetensors"])

        let missing = directory + "/no/such/folder/lenet5.onnx"
        expectCleanFailure(try cnn(["export", "--model", "lenet5", "--weights", directory + "/weights.safetensors", "--output", missing]),
                           naming: missing)
        #expect(try cnn(["export", "--model", "lenet5", "--output", directory + "/x.onnx"]).status == 64)
        #expect(try cnn(["export", "--checkpoint", "c", "--classes", "3", "--output", directory + "/x.onnx"]).status == 64)
        // --seed: the network as training would start it, for benchmarks; not together with --weights.
        let seeded = try cnn(["export", "--model", "lenet5", "--seed", "3", "--output", directory + "/seeded.onnx"])
        #expect(seeded.status == 0 && seeded.output.contains("seeded.onnx"), "\(seeded.error)")
        let seededBytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/seeded.onnx"))
        #expect(seededBytes.count > 61_706 * 4 && seededBytes != bytes)
        expectCleanFailure(try cnn(["export", "--model", "lenet5", "--seed", "3", "--weights", directory + "/weights.safetensors",
                                    "--output", directory + "/x.onnx"]), naming: "--seed")
    }

    @Test func badOptionsAreUsageErrors() throws {
        expectCleanFailure(try cnn(["train", "lenet5", "--epochs", "0"]), naming: "--epochs")
        expectCleanFailure(try cnn(["train", "lenet5", "--optimizer", "lamb"]), naming: "lamb")
        expectCleanFailure(try cnn(["train", "lenet5", "--recipe", "resnet"]), naming: "resnet")
        expectCleanFailure(try cnn(["train", "lenet5", "--lr-schedule", "warm-restarts"]), naming: "warm-restarts")
        expectCleanFailure(try cnn(["summary", "lenet6"]), naming: "lenet6")
        // A near miss gets a suggestion.
        expectCleanFailure(try cnn(["summary", "vgg-16"]), naming: "did you mean vgg16")
        // A negative number is a value that is out of range, not a missing one.
        expectCleanFailure(try cnn(["train", "lenet5", "--batch-size", "-4"]), naming: "--batch-size must be in 1...")
        // Help names only what the command has: evaluate neither trains nor takes --seed.
        let help = try cnn(["evaluate", "--help"])
        #expect(help.status == 0 && !help.output.contains("--seed") && !help.output.contains("train without"), "\(help.output)")
        let version = try cnn(["--version"])
        #expect(version.status == 0 && version.output.hasPrefix(ClassicCNNVersion.current), "\(version.output)")
        expectCleanFailure(try cnn(["train", "lenet5", "--bogus"]), naming: "--bogus")
        // Smaller than the network's own input is not an error: windows that do not fit are padded to fit.
        let small = try cnn(["summary", "lenet5", "--input-size", "16", "--json"])
        #expect(small.status == 0, "\(small.error)")
        // Usage errors exit 64 (EX_USAGE), before any work starts.
        for arguments in [["summary", "lenet6"], ["train", "lenet5", "--classes", "-1"], ["train", "lenet5", "--input-size", "0"],
                          ["bench", "lenet5", "--classes", "0"], ["bench", "lenet5", "--input-size", "100000"],
                          ["train", "lenet5", "--batch-size", "1000000000"], ["evaluate", "--checkpoint", "x", "--batch-size", "0"],
                          ["train", "lenet5", "--recipe", "resnet"], ["train", "lenet5", "--lr-schedule", "exponential:factor=-1"],
                          ["train", "lenet5", "--lr-schedule", "step:every=2,gamma=0.1"], ["train", "lenet5", "--ema", "1.5"],
                          ["train", "lenet5", "--label-smoothing", "1"], ["train", "lenet5", "--clip-norm", "0"],
                          ["train", "lenet5", "--warmup-epochs", "-1"], ["train", "lenet5", "--augment", "crop:x"],
                          ["train", "lenet5", "--class-weight", "1,x"]] {
            let run = try cnn(arguments)
            #expect(run.status == 64, "\(arguments): exit \(run.status), \(run.error)")
        }
        // Too large for the dense layers: a clean error, not an allocation that kills the process.
        expectCleanFailure(try cnn(["summary", "lenet5", "--input-size", "4000"]), naming: "--input-size")
        // A 10-class dataset on a 5-class model.
        expectCleanFailure(try cnn(["train", "lenet5", "--classes", "5", "--epochs", "1", "--steps-per-epoch", "1",
                                    "--checkpoint-dir", scratch("classes"), "--data-dir", try sharedDataRoot()]), naming: "--classes")
    }

    /// Without the data and without the network: the message names every place searched, the files expected, the
    /// options that point elsewhere and the URL to fetch by hand.
    @Test(arguments: [("cifar10", "CNN_CIFAR10_URL", "cifar-10-binary.tar.gz"), ("mnist", "CNN_MNIST_URL", "")])
    func offlineDataIsExplained(_ dataset: String, _ variable: String, _ file: String) throws {
        let cache = scratch("offline-\(dataset)"), elsewhere = scratch("offline-cwd-\(dataset)")
        let url = "http://127.0.0.1:9/\(file)"
        // A binary copied out of the clone, run from another folder: no Data/mnist beside it or the working directory.
        let copy = elsewhere + "/cnn"
        try FileManager.default.copyItem(atPath: try cnnExecutable().path, toPath: copy)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: copy)
        process.arguments = ["train", dataset == "mnist" ? "lenet5" : "vgg11", "--dataset", dataset, "--input-size", "32", "--classes", "10",
                             "--epochs", "1", "--checkpoint-dir", cache + "/ck"]
        process.currentDirectoryURL = URL(fileURLWithPath: elsewhere)
        var environment = ProcessInfo.processInfo.environment
        (environment["CNN_DATA_DIR"], environment["CNN_CACHE_DIR"], environment[variable]) = ("", cache, url)
        process.environment = environment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0 && process.terminationStatus < 128)
        for part in ["was looked for in", cache, "--data-dir", "CNN_DATA_DIR", "127.0.0.1:9"] {
            #expect(message.contains(part), "the message does not name \(part): \(message)")
        }
    }

    @Test func badDataIsReportedByFileAndNothingIsOverwritten() throws {
        let root = try sharedDataRoot()
        let data = scratch("baddata")
        let checkpoints = scratch("keep")
        let marker = Data("previous run".utf8)
        // --overwrite: bad data must leave the previous run's files as they were even when told it may replace them.
        #expect(FileManager.default.createFile(atPath: checkpoints + "/last.safetensors", contents: marker))
        // A truncated training-images file beside good others.
        for name in ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: "\(root)/mnist/\(name)", toPath: "\(data)/\(name)")
        }
        let images = try Data(contentsOf: URL(fileURLWithPath: "\(root)/mnist/train-images-idx3-ubyte.gz"))
        #expect(FileManager.default.createFile(atPath: "\(data)/train-images-idx3-ubyte.gz", contents: images.prefix(images.count / 3)))
        let run = try cnn(["train", "lenet5", "--data-dir", data, "--checkpoint-dir", checkpoints, "--overwrite"])
        expectCleanFailure(run, naming: "train-images-idx3-ubyte.gz")
        #expect(FileManager.default.contents(atPath: checkpoints + "/last.safetensors") == marker)

        // Wrong magic: an uncompressed file that is not IDX.
        try FileManager.default.removeItem(atPath: "\(data)/train-images-idx3-ubyte.gz")
        #expect(FileManager.default.createFile(atPath: "\(data)/train-images-idx3-ubyte", contents: Data("%PDF-1.4 not mnist".utf8)))
        expectCleanFailure(try cnn(["train", "lenet5", "--data-dir", data, "--checkpoint-dir", checkpoints, "--overwrite"]), naming: "wrong magic")

        // A folder without MNIST.
        // (Each run here has a --checkpoint-dir of its own: the repository's checkpoints/, which the README's first
        // command fills, would be refused before the data is read.)
        expectCleanFailure(try cnn(["train", "lenet5", "--data-dir", scratch("empty"), "--checkpoint-dir", scratch("empty-ck")]),
                           naming: "no MNIST files")

        // One file missing among the four: named.
        let partial = scratch("partial")
        for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: "\(root)/mnist/\(name)", toPath: "\(partial)/\(name)")
        }
        expectCleanFailure(try cnn(["train", "lenet5", "--data-dir", partial, "--checkpoint-dir", scratch("partial-ck")]),
                           naming: "t10k-labels-idx1-ubyte.gz")

        // A truncated labels file (raw IDX, cut short).
        let labels = try Data(contentsOf: URL(fileURLWithPath: "\(root)/mnist/t10k-labels-idx1-ubyte.gz"))
        #expect(FileManager.default.createFile(atPath: "\(partial)/t10k-labels-idx1-ubyte.gz", contents: labels.prefix(labels.count - 100)))
        expectCleanFailure(try cnn(["train", "lenet5", "--data-dir", partial, "--checkpoint-dir", checkpoints, "--overwrite"]), naming: "t10k-labels-idx1-ubyte.gz")
        #expect(FileManager.default.contents(atPath: checkpoints + "/last.safetensors") == marker)
    }

    @Test func badCheckpointsAndImagesAreReportedByFile() throws {
        let directory = scratch("badckpt")
        let root = try sharedDataRoot()
        let truncated = directory + "/truncated.safetensors"
        #expect(FileManager.default.createFile(atPath: truncated, contents: Data([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0x7B])))
        expectCleanFailure(try cnn(["evaluate", "--checkpoint", truncated]), naming: truncated)
        let missing = directory + "/missing.safetensors"
        expectCleanFailure(try cnn(["predict", "--checkpoint", missing, root + "/samples/mnist-test-0000-label7.png"]), naming: missing)

        // A real checkpoint, then an image that is not an image.
        let train = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "2", "--checkpoint-dir", directory, "--data-dir", root])
        #expect(train.status == 0)
        let notImage = directory + "/notes.png"
        #expect(FileManager.default.createFile(atPath: notImage, contents: Data("just text".utf8)))
        let predict = try cnn(["predict", "--checkpoint", directory + "/last.safetensors", notImage])
        expectCleanFailure(predict, naming: notImage)
        #expect(predict.error.contains("not a PNG or JPEG"))

        // A truncated PNG, and a foreign safetensors file given as a checkpoint.
        let png = try Data(contentsOf: URL(fileURLWithPath: root + "/samples/cifar-test-0001-dog.png"))
        let cut = directory + "/cut.png"
        #expect(FileManager.default.createFile(atPath: cut, contents: png.prefix(png.count / 2)))
        expectCleanFailure(try cnn(["predict", "--checkpoint", directory + "/last.safetensors", cut]), naming: cut)
        let foreign = directory + "/foreign.safetensors"
        let header = Data(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
        var bytes = Data(withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
        bytes.append(header)
        bytes.append(Data([0, 0, 128, 63]))
        #expect(FileManager.default.createFile(atPath: foreign, contents: bytes))
        expectCleanFailure(try cnn(["evaluate", "--checkpoint", foreign, "--data-dir", root]), naming: "not a ClassicCNN checkpoint")

        // Evaluating and predicting write nothing.
        let before = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let last = FileManager.default.contents(atPath: directory + "/last.safetensors")
        #expect(try cnn(["evaluate", "--checkpoint", directory + "/last.safetensors", "--data-dir", root]).status == 0)
        #expect(try cnn(["predict", "--checkpoint", directory + "/last.safetensors", root + "/samples/mnist-test-0002-label1.png"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == before)
        #expect(FileManager.default.contents(atPath: directory + "/last.safetensors") == last)
    }
}

/// PyTorch's files and published weights from the command line (the library's TorchFileTests and
/// PretrainedWeightsTests cover the readers and the download against a local server).
@Suite("cnn and PyTorch's files", .serialized)
struct TorchCommandTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/torch").path

    /// `cnn convert` writes the tensors as safetensors; `forward` and `predict` take the .pth itself.
    @Test func convertAndUseAPthFile() throws {
        let directory = scratch("torch-convert")
        let run = try cnn(["convert", Self.fixtures + "/lenet5-zip-f16.pth", directory + "/l.safetensors", "--model", "lenet5"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("10 tensors, 61,706 values, from a PyTorch zip archive file"), "\(run.output)")
        let sample = try sharedDataRoot() + "/samples/cifar-test-0000-automobile.png"
        for weights in [directory + "/l.safetensors", Self.fixtures + "/lenet5-legacy-f32.pth"] {
            let predict = try cnn(["predict", "--model", "lenet5", "--weights", weights, sample])
            #expect(predict.status == 0, "\(predict.error)")
        }
        // Another network's file, a file that is not PyTorch's, and a file that is missing: clean failures.
        expectCleanFailure(try cnn(["convert", Self.fixtures + "/lenet5-zip-f16.pth", directory + "/x.safetensors", "--model", "alexnet-cifar"]),
                           naming: "lenet5-zip-f16.pth")
        expectCleanFailure(try cnn(["convert", Self.fixtures + "/lenet5.json", directory + "/x.safetensors"]), naming: "not a weights file")
        expectCleanFailure(try cnn(["convert", directory + "/none.pth", directory + "/x.safetensors"]), naming: "none.pth")
        #expect(!FileManager.default.fileExists(atPath: directory + "/x.safetensors"))
    }

    /// A Keras file converts for a network (the Keras tests cover the mapping); without --model it is a usage error.
    @Test func convertAKerasFile() throws {
        let directory = scratch("keras-convert")
        let keras = Self.fixtures + "/../keras/lenet5.keras"
        let run = try cnn(["convert", keras, directory + "/k.safetensors", "--model", "lenet5"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("10 tensors, 61,706 values, from a Keras 3 .keras archive file"), "\(run.output)")
        let bare = try cnn(["convert", keras, directory + "/x.safetensors"])
        #expect(bare.status == 64 && bare.error.contains("give --model"), "\(bare.error)")
    }

    /// `--init` takes a .pth; `weights list` lists; names without published weights are usage errors (64).
    @Test func initListAndBadNames() throws {
        let directory = scratch("torch-init")
        let data = try sharedDataRoot() + "/mnist"
        let train = try cnn(["train", "lenet5", "--data-dir", data, "--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
                             "--init", Self.fixtures + "/lenet5-legacy-f32.pth", "--checkpoint-dir", directory + "/c"])
        #expect(train.status == 0, "\(train.error)")
        #expect(train.output.contains("loaded 10 tensors"), "\(train.output)")
        let list = try cnn(["weights", "list", "--json"])
        #expect(list.status == 0 && list.output.split(separator: "\n").count == 11, "\(list.output)")
        #expect(list.output.contains("\"url\":\"https:\\/\\/download.pytorch.org\\/models\\/vgg16-397923af.pth\"") ||
                list.output.contains("\"url\":\"https://download.pytorch.org/models/vgg16-397923af.pth\""), "\(list.output)")
        let unknown = try cnn(["weights", "fetch", "lenet5"])
        #expect(unknown.status == 64 && unknown.error.contains("no published weights for 'lenet5'"), "\(unknown.error)")
        let predict = try cnn(["predict", "--model", "vgg16", "--pretrained", "--classes", "10", "x.png"])
        #expect(predict.status == 64, "\(predict.error)")
        // Offline: the message says where to put the file; nothing is left in the cache folder.
        let cache = directory + "/cache"
        let offline = try cnn(["weights", "fetch", "googlenet-torchvision", "--timeout", "5"],
                              environment: ["CNN_WEIGHTS_DIR": cache, "CNN_WEIGHTS_MIRROR": "http://127.0.0.1:9/models"])
        expectCleanFailure(offline, naming: "put it in \(cache)/ (as googlenet-1378be20.pth)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).isEmpty)
    }
}
