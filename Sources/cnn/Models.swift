import ArgumentParser
import ClassicCNN

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the networks in the registry.")

    @Flag(help: "Print JSON.") var json = false

    struct Entry: Encodable {
        let name: String, title: String, reference: String
        let input_size: Int, classes: Int, input_channels: Int, dataset: String, parameters: Int
    }

    func run() throws {
        let entries = try ModelZoo.all.map { descriptor in
            Entry(name: descriptor.name, title: descriptor.title, reference: descriptor.reference,
                  input_size: descriptor.defaultInputSize, classes: descriptor.defaultClasses,
                  input_channels: descriptor.inputChannels, dataset: descriptor.defaultDataset,
                  parameters: try descriptor.make().parameterCount)
        }
        if json { return try printJSONLines(entries) }
        let width = entries.map(\.name.count).max() ?? 0
        for entry in entries {
            let size = "\(entry.input_channels)x\(entry.input_size)x\(entry.input_size)"
            print(entry.name.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                  + size.padding(toLength: 11, withPad: " ", startingAt: 0)
                  + entry.parameters.grouped.leftPad(12) + " params  " + entry.title)
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    func rightPad(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
