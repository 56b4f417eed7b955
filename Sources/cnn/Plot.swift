import ArgumentParser
import ClassicCNN
import Foundation

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the training curves of a --log-dir (loss and accuracy, training and validation, against the epoch).")

    @Argument(help: "The folder given to `cnn train --log-dir` (its metrics.csv is read), or a CSV with the same columns; several draw several runs in the same panels.")
    var logDirs: [String]
    @Option(help: "The runs' names in the legend, separated by commas (with several runs; default: the folders' names).") var labels: String?
    @Option(help: "The picture to write: .png or .svg.") var output = "curves.png"
    @Option(help: "Width in pixels.") var width = 960
    @Option(help: "Height in pixels.") var height = 400

    enum Format { case png, svg }

    var format: Format? {
        switch (output as NSString).pathExtension.lowercased() {
        case "png": .png
        case "svg": .svg
        default: nil
        }
    }

    func validate() throws {
        if logDirs.isEmpty { throw ValidationError("give at least one log folder") }
        if logDirs.count > 4 { throw ValidationError("at most 4 runs fit in one plot, got \(logDirs.count)") }
        if let labels, labels.split(separator: ",").count != logDirs.count {
            throw ValidationError("--labels gives \(labels.split(separator: ",").count) names for \(logDirs.count) runs")
        }
        if format == nil {
            throw ValidationError("--output \(output): unknown extension '.\((output as NSString).pathExtension)'; use .png or .svg")
        }
        if !(480...8000).contains(width) || !(240...8000).contains(height) {
            throw ValidationError("--width must be in 480...8000 and --height in 240...8000, got \(width)x\(height)")
        }
    }

    func run() throws {
        let runs = try logDirs.map { path in
            try MetricsCSV.read(path: path.hasSuffix(".csv") ? path : "\(path)/metrics.csv")
        }
        let names = labels.map { $0.split(separator: ",").map(String.init) }
            ?? logDirs.map { (($0.hasSuffix(".csv") ? ($0 as NSString).deletingLastPathComponent : $0) as NSString).lastPathComponent }
        let curves = runs.count == 1 ? TrainingCurves(epochs: runs[0]) : TrainingCurves(runs: Array(zip(names, runs)).map { ($0.0, $0.1) })
        switch format {
        case .svg:
            do { try Data(curves.svg(width: width, height: height).utf8).write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
                throw CommandError(description: "\(output): cannot write (\(error.localizedDescription))")
            }
        default:
            try curves.image(width: width, height: height).writePNG(path: output)
        }
        print("Wrote \(output) (\(curves.epochs.count) epochs)")
    }
}
