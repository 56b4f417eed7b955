// The progress line of a training epoch, Keras's, fitted to a terminal's width.
import Foundation

public enum ProgressLine {
    /// "m:ss" or "h:mm:ss".
    public static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
    }

    /// The progress line, Keras's: `12/391 [=>....] - ETA: 1:02 - 160.2ms/step - loss: 1.2345 - accuracy: 0.5678`, its
    /// bar narrowed (to 10) and then its figures dropped from the right to fit `columns`.
    public static func render(step: Int, of steps: Int, stepsBefore: Int, elapsed: Double, loss: Double, accuracy: Double,
                             columns: Int?) -> String {
        let perStep = elapsed / Double(max(step - stepsBefore, 1))
        let timing = step < steps ? "ETA: \(clock(perStep * Double(steps - step)))" : "\(Int(elapsed.rounded()))s"
        let parts = ["\(timing) \(String(format: "%.1f", perStep * 1000))ms/step", "loss: \(String(format: "%.4f", loss))",
                     "accuracy: \(String(format: "%.4f", accuracy))"]
        let stepText = String(step), width = String(steps).count
        let counter = String(repeating: " ", count: max(width - stepText.count, 0)) + stepText + "/\(steps)"
        func line(barWidth width: Int, parts: [String]) -> String {
            let done = steps > 0 ? width * step / steps : width
            let bar = String(repeating: "=", count: max(done - 1, 0)) + (done < width ? ">" : "=") + String(repeating: ".", count: width - done)
            return ([counter + " [" + bar + "]"] + parts).joined(separator: " - ")
        }
        guard let columns else { return line(barWidth: 30, parts: parts) }
        var kept = parts
        while true {
            let fixed = line(barWidth: 0, parts: kept).count
            let width = min(30, columns - 1 - fixed)
            if width >= 10 || kept.isEmpty { return String(line(barWidth: max(width, 1), parts: kept).prefix(columns - 1)) }
            kept.removeLast()
        }
    }
}
