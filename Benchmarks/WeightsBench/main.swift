// Fetching and converting published weights, measured: one .pth served over HTTP (Scripts/weights/measure.sh serves
// torchvision networks with seeded random weights from a local server, as download.pytorch.org serves the real
// ones), fetched by `PretrainedWeights.fetch` into an empty cache folder (download, SHA-256 check, conversion to
// safetensors), then loaded into the network and run on the input whose logits PyTorch computed from the same file.
//
//     weights-bench --model vgg19 --url http://127.0.0.1:8000/vgg19-0123abcd.pth --reference vgg19.safetensors
//
// Prints one JSON line: seconds to fetch and convert, the process's peak resident memory after it (before the network
// is built for the comparison), and the largest difference from PyTorch's logits relative to their largest magnitude.
import ClassicCNN
import ClassicCNNEngine  // directly too: a change in the engine then rebuilds this
import Foundation

var model = "", url = "", reference = ""
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--model": model = arguments.next() ?? ""
    case "--url": url = arguments.next() ?? ""
    case "--reference": reference = arguments.next() ?? ""
    default: break
    }
}
guard !model.isEmpty, let source = URL(string: url), !reference.isEmpty else {
    FileHandle.standardError.write(Data("usage: weights-bench --model M --url URL-of-NAME-SHA8.pth --reference INPUT_AND_LOGITS.safetensors\n".utf8))
    exit(64)
}
let published = try PretrainedWeights.named(model)
let file = source.lastPathComponent
let weights = PretrainedWeights(model, "bench", file, mebibytes: 0, top1: 0, top5: 0, resize: published.resize,
                                google: published.inputFormat != .imageNet)
let cache = NSTemporaryDirectory() + "weights-bench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: cache) }
let start = Date()
let path = try weights.fetch(into: cache, from: source, timeout: 30)
let seconds = Date().timeIntervalSince(start)
let peak = ResidentMemory.current()?.peak ?? 0
let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0

let network = try ModelZoo.descriptor(named: model).make()
try network.loadWeights(path: path)
let tensors = try SafeTensors.read(path: reference).tensors
let input = tensors.first { $0.name == "input" }!, expected = tensors.first { $0.name == "logits" }!
let logits = network.forward(Tensor(shape: input.shape, values: input.values)).values
let scale = expected.values.map(abs).max() ?? 1
let difference = zip(logits, expected.values).map { abs($0 - $1) }.max() ?? 0
let top1Agrees = (0..<input.shape[0]).allSatisfy { row in
    let classes = expected.shape[1]
    let ours = logits[row * classes..<(row + 1) * classes], theirs = expected.values[row * classes..<(row + 1) * classes]
    return ours.firstIndex(of: ours.max()!)! - row * classes == theirs.firstIndex(of: theirs.max()!)! - row * classes
}
print(String(format: "{\"model\":\"%@\",\"megabytes\":%.1f,\"fetch_and_convert_seconds\":%.2f,\"peak_resident_mb\":%.0f,"
             + "\"max_relative_difference\":%.2e,\"same_top1\":%@}", model, Double(size) / 1e6, seconds, Double(peak) / 1e6,
             difference / scale, top1Agrees ? "true" : "false"))
