// The fine-tuning experiment of the README: LeNet-5 trained on MNIST's digits 0-4, then given digits 5-9 with its
// convolutions frozen and a new classifier, against the same network trained from scratch for the same steps.
//
//     swift run -c release fine-tune-bench [--steps 25,50,100,200] [--lr 0.001] [--data-dir ../shared/data]
import ClassicCNN
import ClassicCNNEngine  // directly too: a change in the engine then rebuilds this (through the umbrella alone it did not)
import Foundation

var steps = [25, 50, 100, 200]
var rate: Float = 0.001
var dataDirectory = ProcessInfo.processInfo.environment["CNN_DATA_DIR"] ?? "../shared/data"
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--steps": steps = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--data-dir": dataDirectory = arguments.next() ?? dataDirectory
    case "--lr": rate = Float(arguments.next() ?? "") ?? rate
    default:
        FileHandle.standardError.write(Data("usage: fine-tune-bench [--steps N,N,...] [--lr RATE] [--data-dir DIR]\n".utf8))
        exit(64)
    }
}

let train = try MNIST.load(.train, from: dataDirectory + "/mnist"), test = try MNIST.load(.test, from: dataDirectory + "/mnist")
let firstTrain = try train.selecting(classes: [0, 1, 2, 3, 4])
let secondTrain = try train.selecting(classes: [5, 6, 7, 8, 9]), secondTest = try test.selecting(classes: [5, 6, 7, 8, 9])

var options = TrainingOptions()
options.epochs = 1
options.seed = 1
let base = try ModelZoo.make("lenet5", classes: 5, seed: 1)
let baseStart = Date()
try Trainer(model: base, optimizer: Adam(), trainingSet: firstTrain, validationSet: nil, options: options).fit()
let baseAccuracy = try Evaluation.run(model: base, dataset: try test.selecting(classes: [0, 1, 2, 3, 4])).accuracy
print(String(format: "base: digits 0-4, 1 epoch (%d images) in %.1f s, test accuracy %.2f%%", firstTrain.count,
             Date().timeIntervalSince(baseStart), baseAccuracy * 100))
func tensors(_ prefixes: [String]) -> [NamedTensor] {
    base.parameters.filter { p in prefixes.contains { p.name.hasPrefix($0) } }
        .map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) }
}

/// How the second network starts: the base's tensors it takes, and the layers it freezes.
struct Start { let name: String; let loaded: [String]; let frozen: [String] }
let starts = [
    Start(name: "scratch", loaded: [], frozen: []),
    Start(name: "conv frozen, new fc1 fc2", loaded: ["conv"], frozen: ["conv1", "conv2", "conv3"]),
    Start(name: "conv+fc1 frozen, new fc2", loaded: ["conv", "fc1"], frozen: ["conv1", "conv2", "conv3", "fc1"]),
    Start(name: "all but fc2 loaded, none frozen", loaded: ["conv", "fc1"], frozen: []),
]

print("digits 5-9 (\(secondTrain.count) training, \(secondTest.count) test images), Adam \(rate), batch 32; median test accuracy of 3 seeds (ms per step):")
print("steps" + starts.map { $0.name.leftPadded(34) }.joined())
for count in steps {
    var row = String(count).leftPadded(5)
    for start in starts {
        var accuracies: [Double] = [], time = 0.0
        for seed: UInt64 in 2...4 {
            let model = try ModelZoo.make("lenet5", classes: 5, seed: seed)
            var run = options
            run.seed = seed
            run.stepsPerEpoch = count
            if !start.loaded.isEmpty { try model.loadMatching(tensors(start.loaded)) }
            run.frozen = start.frozen
            let begin = Date()
            try Trainer(model: model, optimizer: Adam(learningRate: rate), trainingSet: secondTrain, validationSet: nil, options: run).fit()
            time += Date().timeIntervalSince(begin) / Double(count) / 3
            accuracies.append(try Evaluation.run(model: model, dataset: secondTest).accuracy)
        }
        row += String(format: "%.2f%% (%.2f ms)", accuracies.sorted()[1] * 100, time * 1000).leftPadded(34)
    }
    print(row)
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
