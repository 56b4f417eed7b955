// End to end: `cnn train --log-dir` read back by TensorBoard's own reader (Scripts/tensorboard_read.py, in a Python
// with tensorboard: $CNN_TEST_PYTHON, else .venv-ci/bin/python, made on first use), resumed into the same folder,
// then drawn by `cnn plot`.
import ClassicCNN
import Foundation
import TestSupport
import Testing

/// A Python that can import tensorboard (see `testPython`).
func tensorBoardPython() throws -> String { try testPython() }

/// The scalars TensorBoard reads from `directory`: tag -> [(step, value)].
func tensorBoardScalars(_ directory: String) throws -> [String: [(step: Int, value: Double)]] {
    let python = try tensorBoardPython()
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Scripts/tensorboard_read.py").standardized.path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script, directory]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw MissingTool(description: "\(python) \(script) failed (\(process.terminationStatus)): \(error)")
    }
    guard let tags = try JSONSerialization.jsonObject(with: output) as? [String: [[Double]]] else {
        throw MissingTool(description: "tensorboard_read.py printed no JSON object: \(String(decoding: output, as: UTF8.self))")
    }
    return tags.mapValues { $0.map { (Int($0[0]), $0[2]) } }
}

@Suite("cnn train --log-dir and cnn plot", .serialized)
struct LogTests {
    @Test func tensorBoardReadsTheLogAndPlotDrawsIt() throws {
        let directory = scratch("logs"), logs = directory + "/logs"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = ["train", "lenet5", "--steps-per-epoch", "20", "--validation-steps", "2", "--checkpoint-dir", directory,
                         "--log-dir", logs, "--data-dir", try sharedDataRoot()]
        let train = try cnn(arguments + ["--epochs", "2"])
        #expect(train.status == 0, "\(train.error)")

        var scalars = try tensorBoardScalars(logs)
        let epochTags = ["epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy", "epoch/learning_rate",
                         "epoch/images_per_second"]
        let stepTags = ["step/loss", "step/accuracy", "step/learning_rate", "step/images_per_second"]
        #expect(Set(scalars.keys) == Set(epochTags + stepTags))
        for tag in epochTags { #expect(scalars[tag]?.map(\.step) == [1, 2], "\(tag)") }
        // 20 steps per epoch, a point every 20 global steps.
        for tag in stepTags { #expect(scalars[tag]?.map(\.step) == [20, 40], "\(tag)") }
        #expect(scalars["epoch/learning_rate"]?.allSatisfy { abs($0.value - 0.001) < 1e-9 } == true)
        #expect(scalars["epoch/val_accuracy"]?.allSatisfy { $0.value > 0.3 && $0.value <= 1 } == true)
        #expect(scalars["epoch/images_per_second"]?.allSatisfy { $0.value > 0 } == true)

        // Resumed: a third epoch into the same folder; TensorBoard merges the two event files, the CSV is appended.
        let resumed = try cnn(arguments + ["--epochs", "3", "--resume"])
        #expect(resumed.status == 0, "\(resumed.error)")
        scalars = try tensorBoardScalars(logs)
        #expect(scalars["epoch/loss"]?.map(\.step) == [1, 2, 3])
        #expect(scalars["step/loss"]?.map(\.step) == [20, 40, 60])
        let files = try FileManager.default.contentsOfDirectory(atPath: logs)
        #expect(files.filter { $0.hasPrefix("events.out.tfevents.") }.count == 2)
        let csv = try String(contentsOfFile: logs + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 4 && csv[0].hasPrefix("epoch,step,wall_time,loss,accuracy,val_loss,val_accuracy,lr,images_per_second"))
        #expect(csv.dropFirst().map { String($0.prefix(4)) } == ["1,20", "2,40", "3,60"])
        // The CSV and TensorBoard agree (float32 in the event file).
        let rows = try MetricsCSV.read(path: logs + "/metrics.csv")
        for (row, point) in zip(rows, scalars["epoch/val_loss"] ?? []) {
            #expect(abs((row.validationLoss ?? .nan) - point.value) < 1e-6 * max(1, abs(point.value)))
        }

        // The curves, as PNG and as SVG.
        let png = directory + "/curves.png", svg = directory + "/curves.svg"
        let plot = try cnn(["plot", logs, "--output", png])
        #expect(plot.status == 0, "\(plot.error)")
        let image = try Image.load(path: png)
        #expect(image.width == 960 && image.height == 400 && image.channels == 3)
        var colours = Set<Int>(), nonWhite = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            let (red, green, blue) = (Int(image.pixels[i]), Int(image.pixels[i + 1]), Int(image.pixels[i + 2]))
            colours.insert(red << 16 | green << 8 | blue)
            if red + green + blue < 765 { nonWhite += 1 }
        }
        #expect(colours.count >= 4, "the plot is blank: \(colours.count) colours")
        #expect(nonWhite > 2000, "the plot is nearly blank: \(nonWhite) pixels drawn")
        let vector = try cnn(["plot", logs, "--output", svg, "--width", "640", "--height", "300"])
        #expect(vector.status == 0, "\(vector.error)")
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(text.hasPrefix("<svg") && text.contains("width=\"640\"") && text.components(separatedBy: "<polyline").count - 1 == 4)
    }

    @Test func badInputGivesAClearError() throws {
        let directory = scratch("plot-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        expectCleanFailure(try cnn(["plot", directory, "--output", directory + "/curves.png"]), naming: directory + "/metrics.csv")
        try "epoch,loss,accuracy\n1,0.5,0.8\n".write(toFile: directory + "/metrics.csv", atomically: true, encoding: .utf8)
        expectCleanFailure(try cnn(["plot", directory, "--output", directory + "/curves.jpg"]), naming: directory + "/curves.jpg")
        expectCleanFailure(try cnn(["plot", directory, "--output", directory + "/c.png", "--width", "100"]), naming: "--width")
        expectCleanFailure(try cnn(["plot", directory, "--output", directory + "/missing/curves.png"]), naming: directory + "/missing/curves.png")
        expectCleanFailure(try cnn(["plot", directory, "--output", directory + "/missing/curves.svg"]), naming: directory + "/missing/curves.svg")
        // A log folder that cannot be written is refused before training starts.
        try "".write(toFile: directory + "/file", atomically: true, encoding: .utf8)
        let train = try cnn(["train", "lenet5", "--epochs", "1", "--steps-per-epoch", "2", "--checkpoint-dir", directory + "/ck",
                             "--log-dir", directory + "/file/logs", "--data-dir", try sharedDataRoot()])
        expectCleanFailure(train, naming: directory + "/file/logs")
        #expect(!train.output.contains("Epoch 1/1"))
    }

    /// metrics.csv that cannot be written (a link to /dev/full): the run finishes with its checkpoints, says which file
    /// failed, and exits 1.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full, whose writes fail with ENOSPC")) func aLogThatCannotBeWrittenLosesNoCheckpoint() throws {
        let directory = scratch("log-full"), logs = directory + "/logs"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: logs + "/metrics.csv", withDestinationPath: "/dev/full")
        let run = try cnn(["train", "lenet5", "--epochs", "2", "--steps-per-epoch", "5", "--validation-steps", "1",
                           "--checkpoint-dir", directory, "--log-dir", logs, "--data-dir", try sharedDataRoot()])
        expectCleanFailure(run, naming: logs + "/metrics.csv")
        #expect(run.output.contains("Epoch 2/2"), "training went on after the log failed")
        #expect(run.error.contains("No space left on device"))
        #expect(FileManager.default.fileExists(atPath: directory + "/last.safetensors"))
        let evaluate = try cnn(["evaluate", "--checkpoint", directory + "/last.safetensors", "--json", "--data-dir", try sharedDataRoot()])
        #expect(evaluate.status == 0, "\(evaluate.error)")
    }
}
