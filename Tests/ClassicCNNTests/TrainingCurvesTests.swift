// The training curves: round tick values, the bitmap font, and both series drawn in both panels of the PNG and SVG.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("Training curves")
struct TrainingCurvesTests {
    @Test func axisTicksAreRoundNumbers() {
        let loss = Axis(low: 0.043, high: 2.31, targetTicks: 5, integers: false)
        #expect(loss.step == 0.5 && loss.low == 0 && loss.high == 2.5 && loss.ticks.count == 6)
        #expect(loss.ticks.map(loss.label) == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"])
        let accuracy = Axis(low: 0.9712, high: 0.9891, targetTicks: 5, integers: false)
        #expect(abs(accuracy.step - 0.005) < 1e-12 && accuracy.label(accuracy.ticks[0]) == "0.970")
        let epochs = Axis(low: 1, high: 30, targetTicks: 8, integers: true)
        #expect(epochs.step == 5 && epochs.ticks.first == 5 && epochs.ticks.last == 30)
        let one = Axis(low: 1, high: 1, targetTicks: 8, integers: true)
        #expect(one.ticks == [0, 1, 2])
    }

    @Test func fontHasEveryCharacterOfThePlot() {
        for character in "0123456789abcdefghijklmnopqrstuvwxyz.-+_:%()/= " {
            #expect(BitmapFont.glyphs[character]?.count == BitmapFont.height, "\(character)")
            #expect(BitmapFont.glyphs[character]!.allSatisfy { $0 < 32 })
        }
        #expect(BitmapFont.rows("E") == BitmapFont.rows("e") && BitmapFont.rows("~") == BitmapFont.missing)
        // g, j, p, q and y hang below the baseline ("shiP" and "fro9" before they did); the others do not.
        for character in "abcdefghijklmnopqrstuvwxyz0123456789" {
            let hangs = BitmapFont.rows(character)[BitmapFont.baseline...].contains { $0 != 0 }
            #expect(hangs == "gjpqy".contains(character), "\(character)")
        }
    }

    /// Ours beside PyTorch's: each run in its own pair of colours, named in the legend.
    @Test func severalRunsShareThePanels() {
        func run(_ offset: Double) -> [EpochMetrics] {
            (1 ... 3).map { n in
                EpochMetrics(epoch: n, step: n, wallTime: 0, loss: 1 / Double(n) + offset, accuracy: 0.5 + 0.1 * Double(n) - offset,
                             validationLoss: 1.1 / Double(n), validationAccuracy: 0.45 + 0.1 * Double(n), learningRate: 0.1, imagesPerSecond: 1)
            }
        }
        let shapes = TrainingCurves(runs: [("ours", run(0)), ("pytorch", run(0.05))]).shapes(width: 960, height: 400)
        let texts = shapes.compactMap { if case let .text(text, _, _, _, _, _) = $0 { text } else { nil } }
        #expect(["ours train", "ours validation", "pytorch train", "pytorch validation"].allSatisfy(texts.contains))
        let colours = Set(shapes.compactMap { if case let .polyline(_, color, _) = $0 { color.hex } else { nil } })
        #expect(colours.count == 4, "four curves in each panel, in four colours")
        let lines = shapes.filter { if case .polyline = $0 { true } else { false } }
        #expect(lines.count == 8)
    }

    @Test func curvesDrawBothSeriesInBothPanels() throws {
        let epochs = (1 ... 5).map { n in
            EpochMetrics(epoch: n, step: 100 * n, wallTime: 0, loss: 1 / Double(n), accuracy: 0.8 + 0.03 * Double(n),
                         validationLoss: 1.2 / Double(n), validationAccuracy: 0.78 + 0.03 * Double(n), learningRate: 0.001,
                         imagesPerSecond: 1000)
        }
        let curves = TrainingCurves(epochs: epochs)
        let image = curves.image(width: 800, height: 360)
        #expect(image.width == 800 && image.height == 360 && image.channels == 3)
        func count(_ color: PlotColor, in columns: Range<Int>) -> Int {
            var n = 0
            for y in 0 ..< image.height {
                for x in columns {
                    let i = (y * image.width + x) * 3
                    if image.pixels[i] == color.red && image.pixels[i + 1] == color.green && image.pixels[i + 2] == color.blue { n += 1 }
                }
            }
            return n
        }
        for panel in [0 ..< 400, 400 ..< 800] {
            #expect(count(.training, in: panel) > 300 && count(.validation, in: panel) > 300)
            #expect(count(.black, in: panel) > 500)
        }
        // The PNG decodes to the same pixels.
        #expect(try Image.decode(try image.pngData(), name: "curves") == image)
        let svg = curves.svg(width: 800, height: 360)
        #expect(svg.hasPrefix("<svg") && svg.contains("</svg>"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 4)
        #expect(svg.contains(">loss</text>") && svg.contains(">accuracy</text>") && svg.contains(">validation</text>")
                && svg.contains(">epoch</text>"))
        // Training only (no validation) and a single epoch still draw.
        let single = TrainingCurves(epochs: [EpochMetrics(epoch: 1, step: 10, wallTime: 0, loss: 0.3, accuracy: 0.9, validationLoss: nil,
                                                          validationAccuracy: nil, learningRate: 0.01, imagesPerSecond: 1)])
        #expect(!single.svg().contains(">validation</text>") && single.svg().contains(">train</text>"))
        #expect(single.image().pixels.contains(PlotColor.training.green), "the single epoch's marker is drawn")
    }

    /// Long run names (--labels "ours (30 epochs)","pytorch (first 3)" once ran off both edges): the legend shrinks,
    /// then shortens the names, and stays inside the picture.
    @Test func aWideLegendStaysInsideThePicture() {
        let epochs = (1...3).map { EpochMetrics(epoch: $0, step: $0 * 10, wallTime: 0, loss: 1 / Double($0), accuracy: 0.5,
                                                validationLoss: 1.1 / Double($0), validationAccuracy: 0.45, learningRate: 0.1,
                                                imagesPerSecond: 1) }
        for names in [["ours (30 epochs)", "pytorch (first 3)"], [String(repeating: "a very long run name ", count: 6), "b"]] {
            let shapes = TrainingCurves(runs: names.map { ($0, epochs) }).shapes(width: 960, height: 400)
            // The legend's texts are the ones on its line (y = 8).
            let legend = shapes.compactMap { shape -> (String, Double, Int)? in
                if case let .text(text, x, y, _, scale, _) = shape, y == 8 { return (text, x, scale) }
                return nil
            }
            #expect(legend.count == 4)
            for (text, x, scale) in legend {
                let right = x + Double(BitmapFont.textWidth(text) * scale)
                #expect(x >= 0 && right <= 960, "\(text) at \(x)...\(right)")
            }
        }
    }
}
