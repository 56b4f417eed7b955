import ArgumentParser
import ClassicCNN
import Foundation

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a network with its weights as an ONNX file (opset 17) for ONNX Runtime and other tools.",
        discussion: """
        Either --checkpoint (a file written by `cnn train`), or --model with --weights (a safetensors state dict or PyTorch .pth, as \
        `cnn forward` reads), or --model with --seed (the network freshly initialised, as `cnn train` starts it: for \
        benchmarks such as Scripts/engines/run.sh, where the values do not matter). The graph takes `input` [N, C, S, S] (already preprocessed, any batch size N) and gives \
        `output` [N, classes]: the logits (LeNet-5 1998: the RBF penalties). Auxiliary heads and dropout, which only \
        training uses, are left out.
        """)

    @Option(help: "A checkpoint written by `cnn train`.") var checkpoint: String?
    @Option(help: "A model name (see `cnn models`), with --weights.") var model: String?
    @Option(help: "A file of parameters (safetensors, or PyTorch's .pth), with --model.") var weights: String?
    @Option(help: "With --model instead of --weights: initialise the network with this seed.") var seed: UInt64?
    @Option(help: "With --model: input height and width (default: the network's own).") var inputSize: Int?
    @Option(help: "With --model: number of classes (default: the network's own).") var classes: Int?
    @Option(help: "Where to write the ONNX file.") var output: String

    func validate() throws {
        if weights != nil && seed != nil { throw ValidationError("give --weights or --seed, not both") }
        switch (checkpoint, model, weights ?? seed.map(String.init)) {
        case (.some, nil, nil):
            if inputSize != nil || classes != nil { throw ValidationError("--input-size and --classes come from the checkpoint") }
        case (nil, .some(let model), .some):
            do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") }
            if let inputSize, !(1...ModelDescriptor.maximumInputSize).contains(inputSize) {
                throw ValidationError("--input-size must be in 1...\(ModelDescriptor.maximumInputSize), got \(inputSize)")
            }
            if let classes, !(1...ModelDescriptor.maximumClasses).contains(classes) {
                throw ValidationError("--classes must be in 1...\(ModelDescriptor.maximumClasses), got \(classes)")
            }
        default:
            throw ValidationError("give either --checkpoint, or --model with --weights or --seed")
        }
    }

    func run() throws {
        let network: Model
        if let checkpoint {
            network = try Checkpoint.load(path: checkpoint).model
        } else {
            network = try ModelZoo.descriptor(named: model!).make(inputSize: inputSize, classes: classes)
            if let seed {
                network.initialize(seed: seed)
            } else if let path = weights {
                do { try network.loadWeights(path: path) } catch let error as ConfigurationError {
                    throw CommandError(description: "\(path): \(error)")
                }
            }
        }
        try ONNXExport.write(network, to: output)
        print("wrote \(output): \(network.name), input [N, \(network.inputShape.map(String.init).joined(separator: ", "))], "
              + "output [N, \(network.configuration.classes)], opset \(ONNXExport.opsetVersion)")
    }
}
