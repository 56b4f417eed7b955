import ArgumentParser
import ClassicCNN
import Foundation

/// Two safetensors files (checkpoints, converted weights) tensor by tensor: the largest difference of each, relative
/// to the tensor's largest magnitude, as the data-parallel checks compare 2 ranks with one process.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two safetensors files (checkpoints) tensor by tensor; exit 1 when they differ by more than --tolerance.",
        discussion: """
        Each tensor's difference is max |a - b| / max |a|. The weights and the optimizer's state (names that begin \
        with optimizer.) are reported apart; --tolerance applies to the weights, or to all with --all. Tensors that only \
        one file holds are named and count as a difference.
        """)

    @Argument(help: "The first file.") var first: String
    @Argument(help: "The second file.") var second: String
    @Option(help: "The largest relative difference allowed (0: bit for bit).") var tolerance: Double = 0
    @Flag(help: "Hold the optimizer's state and the other bookkeeping to --tolerance too.") var all = false
    @Option(help: "Print the N tensors that differ most.") var top = 5
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Leave out tensors whose names contain any of these (e.g. bias: the biases "
        + "of convolutions before a batch norm have no gradient but rounding noise).", valueName: "text"))
    var skip: [String] = []

    func run() throws {
        let a = try SafeTensors.read(path: first).tensors, b = try SafeTensors.read(path: second).tensors
        let byName = Dictionary(b.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
        var rows: [(name: String, relative: Double, bitwise: Bool)] = []
        var problems: [String] = []
        for tensor in a where !skip.contains(where: { tensor.name.contains($0) }) {
            guard let other = byName[tensor.name] else { problems.append("\(tensor.name) is only in \(first)"); continue }
            guard other.shape == tensor.shape else {
                problems.append("\(tensor.name) has shape \(tensor.shape) in \(first), \(other.shape) in \(second)")
                continue
            }
            var largest: Float = 0, difference: Float = 0, bitwise = true
            for (x, y) in zip(tensor.values, other.values) {
                largest = max(largest, abs(x))
                difference = max(difference, abs(x - y))
                if x.bitPattern != y.bitPattern { bitwise = false }
            }
            let relative = difference == 0 ? 0 : Double(difference) / Double(max(largest, .leastNormalMagnitude))
            rows.append((tensor.name, bitwise ? 0 : (relative.isNaN ? .infinity : relative), bitwise))
        }
        let names = Set(a.map(\.name))
        problems += b.filter { !names.contains($0.name) && !skip.contains(where: $0.name.contains) }.map { "\($0.name) is only in \(second)" }
        let isState: (String) -> Bool = { $0.hasPrefix("optimizer.") || $0.hasPrefix("ema.") || $0.hasPrefix("best.") }
        let weights = rows.filter { !isState($0.name) }, state = rows.filter { isState($0.name) }
        func line(_ label: String, _ group: [(name: String, relative: Double, bitwise: Bool)]) {
            guard !group.isEmpty else { return }
            let worst = group.max { $0.relative < $1.relative }!
            let same = group.filter(\.bitwise).count
            print("\(label): \(group.count) tensors, \(same) bit for bit; largest relative difference "
                  + String(format: "%.3g", worst.relative) + (worst.relative > 0 ? " (\(worst.name))" : ""))
        }
        line("weights", weights)
        line("optimizer state and averages", state)
        for row in rows.sorted(by: { $0.relative > $1.relative }).prefix(top) where row.relative > 0 {
            print("  \(row.name): " + String(format: "%.3g", row.relative))
        }
        for problem in problems { print("  \(problem)") }
        let held = all ? rows : weights
        let worst = held.map(\.relative).max() ?? 0
        if !problems.isEmpty || worst > tolerance {
            printError("\(first) and \(second) differ: " + (problems.first ?? "largest relative difference \(String(format: "%.3g", worst)) > \(tolerance)"))
            throw ExitCode(1)
        }
    }
}
