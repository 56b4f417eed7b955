import ArgumentParser
import ClassicCNN

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a network layer by layer: output shapes, parameters, connections and multiply-adds.")

    @OptionGroup var network: ModelOptions
    @Flag(help: "Print JSON.") var json = false

    struct Layer: Encodable {
        let name: String, type: String, output_shape: [Int], parameters: Int, fixed_parameters: Int, connections: Int, macs: Int
    }
    struct Report: Encodable {
        let model: String, input_shape: [Int], classes: Int
        let parameters: Int, inference_parameters: Int, fixed_parameters: Int, connections: Int, macs: Int
        let layers: [Layer]
    }

    func run() throws {
        let model = network.model
        let built = try network.make()
        let rows = try built.summary()
        let layers = rows.map {
            Layer(name: $0.name, type: $0.kind, output_shape: $0.outputShape, parameters: $0.parameters,
                  fixed_parameters: $0.fixedParameters, connections: $0.cost.connections, macs: $0.cost.multiplyAdds)
        }
        let total = layers.reduce(0) { $0 + $1.parameters }
        let report = Report(
            model: model, input_shape: built.inputShape, classes: built.configuration.classes, parameters: total,
            inference_parameters: built.inferenceParameterCount, fixed_parameters: layers.reduce(0) { $0 + $1.fixed_parameters },
            connections: layers.reduce(0) { $0 + $1.connections }, macs: layers.reduce(0) { $0 + $1.macs }, layers: layers)
        if json { return try printJSON(report) }

        print("Model: \(model)  input \(built.inputShape.map(String.init).joined(separator: "x")), \(built.configuration.classes) classes")
        // Columns as wide as their longest entry (Inception's layer paths run to 40 characters), plus a space.
        let nameWidth = max(20, (layers.map(\.name.count).max() ?? 0) + 1)
        let typeWidth = max(16, (layers.map(\.type.count).max() ?? 0) + 1)
        let header = "Layer".rightPad(nameWidth) + "Type".rightPad(typeWidth) + "Output shape".rightPad(20)
            + "Params".leftPad(20) + "Connections".leftPad(15) + "MACs".leftPad(15)
        print(header)
        print(String(repeating: "=", count: header.count))
        for layer in layers {
            let shape = "[N, " + layer.output_shape.dropFirst().map(String.init).joined(separator: ", ") + "]"
            let params = layer.parameters.grouped + (layer.fixed_parameters > 0 ? " (+\(layer.fixed_parameters.grouped) fixed)" : "")
            print(layer.name.rightPad(nameWidth) + layer.type.rightPad(typeWidth) + shape.rightPad(20) + params.leftPad(20)
                  + layer.connections.grouped.leftPad(15) + layer.macs.grouped.leftPad(15))
        }
        print(String(repeating: "=", count: header.count))
        print("Trainable parameters: \(report.parameters.grouped)"
              + (report.fixed_parameters > 0 ? "  (+ \(report.fixed_parameters.grouped) fixed)" : "")
              + (report.inference_parameters != report.parameters ? "; at inference, without the auxiliary heads: \(report.inference_parameters.grouped)" : ""))
        print("Connections: \(report.connections.grouped)   Multiply-adds per image: \(report.macs.grouped)")
    }
}
