import ArgumentParser
import ClassicCNN
import Foundation

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the training curves of a --log-dir (loss and accuracy, training and validation, against the epoch).")

    @Argument(help: "The folder given to `cnn train --log-dir`; its metrics.csv is read.") var logDir: String
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
        if format == nil {
            throw ValidationError("--output \(output): unknown extension '.\((output as NSString).pathExtension)'; use .png or .svg")
        }
        if !(480...8000).contains(width) || !(240...8000).contains(height) {
            throw ValidationError("--width must be in 480...8000 and --height in 240...8000, got \(width)x\(height)")
        }
    }

    func run() throws {
        let curves = TrainingCurves(epochs: try MetricsCSV.read(path: "\(logDir)/metrics.csv"))
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
