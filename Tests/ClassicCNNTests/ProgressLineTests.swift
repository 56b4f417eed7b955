// The training progress line: Keras's, with an ETA, fitted to the terminal, right in a resumed epoch.
import Testing
import ClassicCNN

@Suite("Progress line")
struct ProgressLineTests {
    @Test func anEightyColumnTerminalDoesNotWrap() {
        for step in [1, 12, 200, 391] {
            let line = ProgressLine.render(step: step, of: 391, stepsBefore: 0, elapsed: Double(step) * 0.16, loss: 1.23456,
                                           accuracy: 0.56789, columns: 80)
            #expect(line.count <= 79, "\(line.count): \(line)")
            #expect(line.hasPrefix(String(repeating: " ", count: 3 - String(step).count) + "\(step)/391 ["), "\(line)")
        }
        let narrow = ProgressLine.render(step: 5, of: 10, stepsBefore: 0, elapsed: 1, loss: 1, accuracy: 0.5, columns: 40)
        #expect(narrow.count <= 39, "\(narrow)")
    }

    @Test func thePipedLineIsKerasWithAnETA() {
        let line = ProgressLine.render(step: 100, of: 391, stepsBefore: 0, elapsed: 16, loss: 1.5, accuracy: 0.25, columns: nil)
        let bar = String(repeating: "=", count: 6) + ">" + String(repeating: ".", count: 23)
        #expect(line == "100/391 [\(bar)] - ETA: 0:47 160.0ms/step - loss: 1.5000 - accuracy: 0.2500", "\(line)")
        let done = ProgressLine.render(step: 391, of: 391, stepsBefore: 0, elapsed: 62.4, loss: 1.5, accuracy: 0.25, columns: nil)
        #expect(done.hasPrefix("391/391 [==============================] - 62s 159.6ms/step"), "\(done)")
    }

    /// An epoch resumed at step 301: the time per step and the ETA count this process's steps only.
    @Test func aResumedEpochTimesItsOwnSteps() {
        let line = ProgressLine.render(step: 310, of: 391, stepsBefore: 300, elapsed: 10, loss: 1, accuracy: 0.5, columns: nil)
        #expect(line.contains("ETA: 1:21 1000.0ms/step"), "\(line)")
    }

    @Test func clocks() {
        #expect(ProgressLine.clock(47) == "0:47" && ProgressLine.clock(3725) == "1:02:05" && ProgressLine.clock(59.6) == "1:00")
    }
}
