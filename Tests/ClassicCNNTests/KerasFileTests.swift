// Keras's weight files on our networks: the fixtures in Tests/Fixtures/keras were written by Keras 3.15
// (tensorflow-cpu 2.21, Scripts/reference/keras_files.py) as model.save's .h5 and .keras and save_weights's
// .weights.h5; our LeNet-5 on them must give Keras's logits. The HDF5 library is loaded when needed: where it is not
// installed (.ci/run installs it, and checks that it did), the error must say what to install.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite("Keras files")
struct KerasFileTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/keras").path

    struct Case: Decodable { let input_shape: [Int]; let input: [Float]; let logits: [Float] }

    static func fixture(_ name: String) throws -> Case {
        let all = try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/keras.json"))
            .replacingKeys(dropping: ["made_by", "keras"]))
        return try #require(all[name])
    }

    /// Whether this machine has the HDF5 library; without it, reading must fail with what to install.
    static var libraryIsInstalled: Bool {
        do { _ = try KerasFile.layers(path: folder + "/lenet5.h5"); return true } catch let error as FileError {
            return !error.reason.contains("not installed")
        } catch { return true }
    }

    @Test(arguments: [("lenet5.h5", "lenet5", 32), ("lenet5.keras", "lenet5", 32), ("lenet5.weights.h5", "lenet5", 32),
                      ("lenet5-36.h5", "lenet5-36", 36)])
    func lenet5GivesKerasLogits(_ file: String, _ name: String, _ size: Int) throws {
        let model = try ModelZoo.make("lenet5", inputSize: size)
        guard Self.libraryIsInstalled else {
            let error = #expect(throws: FileError.self) { try model.loadWeights(path: "\(Self.folder)/\(file)") }
            #expect(error?.reason.contains("apt-get install libhdf5") == true, "\(String(describing: error))")
            return
        }
        try model.loadWeights(path: "\(Self.folder)/\(file)")
        let fixture = try Self.fixture(name)
        let logits = model.forward(Tensor(shape: fixture.input_shape, values: fixture.input)).values
        let scale = fixture.logits.map(abs).max()!
        #expect(logits.count == fixture.logits.count)
        for (ours, theirs) in zip(logits, fixture.logits) { #expect(abs(ours - theirs) <= 1e-5 * scale, "\(ours) vs \(theirs)") }
    }

    /// Layers in Keras's order, kernels in Keras's layout; a file for another network is refused, naming the layers.
    @Test func layersAndMismatches() throws {
        guard Self.libraryIsInstalled else { return }
        let layers = try KerasFile.layers(path: Self.folder + "/lenet5.keras")
        #expect(layers.map(\.name) == ["conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"])
        #expect(layers[0].variables.map(\.shape) == [[5, 5, 1, 6], [6]])
        let alexnet = try ModelZoo.descriptor(named: "alexnet-cifar").make(inputSize: 67)
        let error = #expect(throws: ConfigurationError.self) { try alexnet.loadWeights(path: Self.folder + "/lenet5.h5") }
        #expect("\(error!)".contains("the file has 3 convolution layers"), "\(error!)")
        // Not for a network: a Keras file alone cannot be read as a state dict.
        #expect(throws: FileError.self) { try WeightFile.read(path: Self.folder + "/lenet5.h5") }
        #expect(KerasFile.naturalOrder("conv2d_2", "conv2d_10") && KerasFile.naturalOrder("conv2d", "conv2d_1")
                && KerasFile.naturalOrder("block1_conv2", "block2_conv1") && !KerasFile.naturalOrder("dense", "conv2d_9"))
    }

    /// An HDF5 file whose dataset claims more values than the file holds (2^32, none stored) is refused before the
    /// read; junk behind HDF5's signature is refused by the library.
    @Test func refusesLyingShapesAndJunk() throws {
        if Self.libraryIsInstalled {
            let error = #expect(throws: FileError.self) { try KerasFile.layers(path: Self.folder + "/lying.h5") }
            #expect(error?.reason.contains("claims more values than the file holds") == true, "\(String(describing: error))")
        }
        let path = freshDirectory("keras-junk") + "/junk.h5"
        var bytes: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 0xff, count: 200)
        bytes[20] = 0
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let model = try ModelZoo.make("lenet5")
        let error = #expect(throws: FileError.self) { try model.loadWeights(path: path) }
        #expect(error?.path == path || error?.path == "libhdf5", "\(String(describing: error))")
    }
}

private extension Data {
    /// The JSON object without the given keys (the fixture's provenance strings), so the rest decodes as one type.
    func replacingKeys(dropping keys: [String]) throws -> Data {
        var object = try JSONSerialization.jsonObject(with: self) as! [String: Any]
        for key in keys { object.removeValue(forKey: key) }
        return try JSONSerialization.data(withJSONObject: object)
    }
}
