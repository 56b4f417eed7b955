// Replays Tests/Corpus: the seeds of the fuzzers in Fuzz/ and every input they found (Scripts/fuzz.sh). Each file
// goes through the reader as the fuzz harness sends it, in this process: a crash fails the suite. Inputs named
// `regression-*` are hostile by construction and must be refused with an error that names the file.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite("Fuzz corpus replay")
struct CorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Corpus").path

    static func cases(_ target: String) -> [String] {
        let folder = root + "/" + target
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted().map { folder + "/" + $0 }
    }

    /// Every target has its seeds; a missing folder would make the replay pass vacuously.
    @Test(arguments: ["safetensors", "checkpoint", "idx", "mnist", "cifar", "image", "torch"])
    func everyTargetHasCases(_ target: String) {
        #expect(Self.cases(target).contains { $0.contains("/seed") }, "no seed in Tests/Corpus/\(target)")
    }

    /// Reads what the loader would make of a dataset, as training does.
    func consume(_ dataset: ImageDataset, inputSize: Int, format: InputFormat) {
        let loader = BatchLoader(dataset: dataset, batchSize: min(max(dataset.count, 1), 8), inputSize: inputSize,
                                 format: format, shuffleSeed: 1, limit: 8)
        defer { loader.stop() }
        while let batch = loader.next() { _ = batch.images.isFinite }
    }

    /// The outcome for one case: nil when it was read, else the error's text.
    func outcome(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return "\(error)" }
    }

    func expectRegressionRefused(_ path: String, _ error: String?) {
        if path.contains("/regression-") { #expect(error != nil, "\(path) should be refused") }
    }

    @Test(arguments: cases("safetensors") + cases("checkpoint"))
    func safetensorsAndCheckpoints(_ path: String) {
        let error = outcome {
            _ = try SafeTensors.read(path: path)
            let (model, _, _) = try Checkpoint.load(path: path)
            if model.parameterCount < 100_000 { _ = model.forward(Tensor(shape: [1] + model.inputShape)) }
        }
        if let error { #expect(error.contains(path), "the error should name the file: \(error)") }
        expectRegressionRefused(path, error)
    }

    @Test(arguments: cases("idx"))
    func idx(_ path: String) {
        let error = outcome { _ = try MNIST.readIDX(path: path) }
        if let error { #expect(error.contains(path), "\(error)") }
        expectRegressionRefused(path, error)
    }

    /// A 4-byte little-endian length, the images file, then the labels file (the harness's framing).
    @Test(arguments: cases("mnist"))
    func mnist(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let split = bytes.count >= 4 ? min(Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24, bytes.count - 4) : 0
        let folder = freshDirectory("corpus-mnist")
        try Data(bytes.count >= 4 ? bytes[4..<(4 + split)] : bytes[...]).write(to: URL(fileURLWithPath: folder + "/t10k-images-idx3-ubyte"))
        try Data(bytes.count >= 4 ? bytes[(4 + split)...] : []).write(to: URL(fileURLWithPath: folder + "/t10k-labels-idx1-ubyte"))
        let error = outcome { consume(try MNIST.load(.test, from: folder), inputSize: 32, format: .unit(channels: 1, fitting: .pad)) }
        if let error { #expect(error.contains(folder), "\(error)") }
        expectRegressionRefused(path, error)
    }

    @Test(arguments: cases("cifar"))
    func cifar(_ path: String) throws {
        let folder = freshDirectory("corpus-cifar")
        try FileManager.default.copyItem(atPath: path, toPath: folder + "/test_batch.bin")
        let error = outcome { consume(try CIFAR10.load(.test, from: folder), inputSize: 40, format: .unit(channels: 3)) }
        if let error { #expect(error.contains(folder), "\(error)") }
        expectRegressionRefused(path, error)
    }

    @Test(arguments: cases("image"))
    func image(_ path: String) {
        let error = outcome { _ = mnistStyleDigit(try Image.load(path: path)) }
        if let error { #expect(error.contains(path), "\(error)") }
        expectRegressionRefused(path, error)
    }

    @Test(arguments: cases("torch"))
    func torch(_ path: String) {
        let error = outcome { _ = try TorchFile.read(path: path) }
        if let error { #expect(error.contains(path), "\(error)") }
        expectRegressionRefused(path, error)
    }
}
