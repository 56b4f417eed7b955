import ArgumentParser
import ClassicCNN
import Foundation

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a network on a tensor: weights and input from safetensors files, logits to a safetensors file.",
        discussion: """
        The weights are a state dict with the model's parameter names (torchvision's for the networks built in its \
        layout; `num_batches_tracked` entries are ignored): a safetensors file, or PyTorch's .pth as torch.save \
        wrote it (either format). Auxiliary heads may be absent. The input \
        is the float32 N x C x H x W tensor named `input`, already preprocessed; the logits are written as `output`.
        """)

    @Option(help: "A model name (see `cnn models`).") var model: String
    @Option(help: "Number of classes (default: the network's own).") var classes: Int?
    @Option(help: "A file of parameters: safetensors, or PyTorch's .pth.") var weights: String
    @Option(help: "A safetensors file holding the tensor `input` [N, C, H, W].") var input: String
    @Option(help: "Where to write the logits, as the tensor `output` [N, classes].") var output: String
    @Flag(help: "VGG only: weights for the network's own 224 input, run densely on a larger input (section 3.2).")
    var dense = false
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        do { _ = try ModelZoo.descriptor(named: model) } catch { throw ValidationError("\(error)") }
        if let classes, !(1...ModelDescriptor.maximumClasses).contains(classes) {
            throw ValidationError("--classes must be in 1...\(ModelDescriptor.maximumClasses), got \(classes)")
        }
    }

    func run() throws {
        runtime.apply()
        let file = try SafeTensors.read(path: input)
        guard let tensor = file.tensors.first(where: { $0.name == "input" }) else {
            throw CommandError(description: "\(input): no tensor named 'input' (found: \(file.tensors.map(\.name).joined(separator: ", ")))")
        }
        guard tensor.shape.count == 4, tensor.shape[2] == tensor.shape[3], tensor.shape[0] > 0 else {
            throw CommandError(description: "\(input): 'input' has shape \(tensor.shape); expected [N, C, S, S]")
        }
        let descriptor = try ModelZoo.descriptor(named: model)
        var network = try descriptor.make(inputSize: dense ? nil : tensor.shape[2], classes: classes)
        guard tensor.shape[1] == network.configuration.inputChannels else {
            throw CommandError(description: "\(input): 'input' has \(tensor.shape[1]) channels, \(model) takes \(network.configuration.inputChannels)")
        }
        do { try network.loadWeights(path: weights) } catch let error as ConfigurationError {
            throw CommandError(description: "\(weights): \(error)")
        }
        if dense {
            do { network = try VGG.denseEvaluation(of: network, inputSize: tensor.shape[2]) } catch let error as ConfigurationError {
                throw CommandError(description: "--dense: \(error)")
            }
        }
        let logits = network.forward(Tensor(shape: tensor.shape, values: tensor.values))
        try SafeTensors.write([NamedTensor(name: "output", shape: logits.shape, values: logits.values)],
                              metadata: ["model": model], to: output)
        print("Wrote \(output): output \(logits.shape) (the logits of \(model) for input \(tensor.shape))")
    }
}
