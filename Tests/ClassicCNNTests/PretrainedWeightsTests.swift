// Fetching published weights by name, against a local HTTP server (no internet in CI): the download resumes a
// broken transfer with a range request, a wrong checksum removes the file, a machine without network is told where
// to put the file by hand, and the converted weights load into the network.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite("Published weights")
struct PretrainedWeightsTests {
    static let lenetFile = TorchFileTests.folder + "/lenet5-legacy-f32.pth"

    /// A catalogue entry for our LeNet-5 fixture, named as torchvision names its files (the SHA-256's first digits).
    static func entry(prefix: String? = nil) throws -> (PretrainedWeights, [UInt8]) {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: lenetFile)))
        let hash = try prefix ?? String(SHA256.hex(ofFileAt: lenetFile).prefix(8))
        return (PretrainedWeights("lenet5", "test", "lenet5-\(hash).pth", mebibytes: 0.25, top1: 0, top5: 0), bytes)
    }

    @Test func theCatalogueNamesRegisteredNetworks() throws {
        #expect(PretrainedWeights.all.count == 11)
        for weights in PretrainedWeights.all {
            let network = try ModelZoo.descriptor(named: weights.model).make()
            #expect(network.configuration.classes == 1000, "\(weights.model)")
            #expect(weights.fileName.contains(weights.sha256Prefix) && weights.sha256Prefix.count == 8)
        }
        #expect(try PretrainedWeights.named("vgg16").top1 == 71.592)
        #expect(try PretrainedWeights.named("inception-v3").preprocessing == "resize 342, centre crop 299, pixels to [-1, 1] (transform_input)")
        #expect(throws: ConfigurationError.self) { try PretrainedWeights.named("vgg17") }
    }

    /// Fetched, checked, converted and kept: the second call does not download again.
    @Test func fetchesConvertsAndKeeps() throws {
        let (weights, bytes) = try Self.entry()
        let server = try LoopbackHTTPServer(files: ["/w/" + weights.fileName: bytes])
        defer { server.stop() }
        let folder = freshDirectory("weights-fetch")
        var reports = 0
        let path = try weights.fetch(into: folder, from: server.url("/w/" + weights.fileName), timeout: 10, progress: { _, _ in reports += 1 })
        #expect(path == folder + "/" + weights.convertedFileName)
        #expect(reports > 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == [weights.convertedFileName])
        let network = try ModelZoo.descriptor(named: "lenet5").make()
        try network.loadWeights(path: path)
        #expect(network.parameters[0].parameter.value.values == (try TorchFile.read(path: Self.lenetFile)).tensors[0].values)
        _ = try weights.fetch(into: folder, from: server.url("/w/" + weights.fileName), timeout: 10)
        #expect(server.requestCount == 1)
    }

    /// A transfer that breaks off keeps its bytes; the next call asks for the rest with a range request.
    @Test func resumesABrokenTransfer() throws {
        let (weights, bytes) = try Self.entry()
        let name = "/w/" + weights.fileName
        let server = try LoopbackHTTPServer(files: [name: bytes], truncations: [name: 100_000])
        defer { server.stop() }
        let folder = freshDirectory("weights-resume")
        let error = #expect(throws: DownloadError.self) { try weights.fetch(into: folder, from: server.url(name), timeout: 10) }
        #expect(error?.reason.contains("run again to resume") == true, "\(String(describing: error))")
        let part = folder + "/" + weights.fileName + ".part"
        #expect((try FileManager.default.attributesOfItem(atPath: part)[.size] as? Int) == 100_000)
        _ = try weights.fetch(into: folder, from: server.url(name), timeout: 10)
        #expect(server.requestLog.map(\.range) == [nil, "100000-"])
        #expect(!FileManager.default.fileExists(atPath: part))
    }

    /// A file whose SHA-256 does not start with the name's digits is removed, and nothing is converted.
    @Test func aWrongChecksumRemovesTheFile() throws {
        let (weights, bytes) = try Self.entry(prefix: "00000000")
        let server = try LoopbackHTTPServer(files: ["/w.pth": bytes])
        defer { server.stop() }
        let folder = freshDirectory("weights-checksum")
        let error = #expect(throws: DownloadError.self) { try weights.fetch(into: folder, from: server.url("/w.pth"), timeout: 10) }
        #expect(error?.reason.contains("SHA-256 mismatch") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    /// 404, a stalled server (a timeout, not a hang) and no network at all, the last with where to put the file.
    @Test func failuresAreClear() throws {
        let (weights, bytes) = try Self.entry()
        let server = try LoopbackHTTPServer(files: [:], stalls: ["/slow.pth"])
        defer { server.stop() }
        let folder = freshDirectory("weights-failures")
        let missing = #expect(throws: DownloadError.self) { try weights.fetch(into: folder, from: server.url("/none.pth"), timeout: 10) }
        #expect(missing?.reason.contains("HTTP status 404") == true)
        let start = Date()
        let stalled = #expect(throws: DownloadError.self) { try weights.fetch(into: folder, from: server.url("/slow.pth"), timeout: 1) }
        #expect(stalled?.reason.contains("timed out") == true)
        #expect(Date().timeIntervalSince(start) < 4.5)
        let offline = #expect(throws: DownloadError.self) {
            try weights.fetch(into: folder, from: URL(string: "http://127.0.0.1:9/w.pth")!, timeout: 5)
        }
        #expect(offline?.reason.contains("put it in \(folder)/ (as \(weights.fileName))") == true, "\(String(describing: offline))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
        // Put there by hand: used without the network.
        #expect(FileManager.default.createFile(atPath: folder + "/" + weights.fileName, contents: Data(bytes)))
        let path = try weights.fetch(into: folder, from: URL(string: "http://127.0.0.1:9/w.pth")!, timeout: 5)
        #expect(FileManager.default.fileExists(atPath: path))
    }

    /// Google's weights take pixels in [-1, 1]: a checkpoint keeps the model's input format, and a malformed one is refused.
    @Test func checkpointsKeepTheInputFormat() throws {
        let model = try ModelZoo.make("googlenet-torchvision", inputSize: 64, classes: 3)
        let google = try PretrainedWeights.named("googlenet-torchvision").inputFormat
        model.inputFormat = google
        let path = freshDirectory("weights-format") + "/g.safetensors"
        try Checkpoint.save(model: model, optimizer: nil, info: CheckpointInfo(model: model.name, configuration: model.configuration,
                                                                               epoch: 1, dataset: "folder"), to: path)
        #expect(try Checkpoint.load(path: path).model.inputFormat == google)
        #expect(google != InputFormat.imageNet)
    }
}

/// torchvision saves GoogLeNet and Inception v3 without their auxiliary heads when `aux_logits=False`: such a state
/// dict loads for inference (the heads keep their initialisation and are named), and the logits are those of the full
/// file; a file missing anything else is still refused.
@Suite("State dicts without auxiliary heads")
struct AuxiliaryHeadTests {
    @Test func loadsWithoutTheHeads() throws {
        let source = try ModelZoo.make("googlenet-torchvision", inputSize: 96, classes: 7, seed: 3)
        let folder = freshDirectory("aux-heads")
        let all = source.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) }
        let heads = Set(source.auxiliaryParameterNames)
        #expect(!heads.isEmpty && heads.allSatisfy { $0.hasPrefix("aux1.") || $0.hasPrefix("aux2.") })
        try SafeTensors.write(all.filter { !heads.contains($0.name) }, metadata: [:], to: folder + "/no-heads.safetensors")
        let model = try ModelZoo.make("googlenet-torchvision", inputSize: 96, classes: 7, seed: 9)
        let missing = try model.loadWeights(path: folder + "/no-heads.safetensors")
        #expect(Set(missing) == heads)
        let input = randomTensor([2, 3, 96, 96], seed: 4)
        #expect(model.forward(input).values == source.forward(input).values)
        // Missing a tensor of the main path is still an error, naming it.
        try SafeTensors.write(all.filter { $0.name != "fc.bias" }, metadata: [:], to: folder + "/no-fc.safetensors")
        let error = #expect(throws: ConfigurationError.self) { try model.loadWeights(path: folder + "/no-fc.safetensors") }
        #expect("\(error!)".contains("fc.bias"))
    }
}
