// PyTorch's files read natively: the fixtures in Tests/Fixtures/torch were written by torch.save (torch 2.15.0,
// Scripts/reference/torch_files.py) in both formats, and must read as torch read them; hostile files built here must
// be refused with an error naming the file, never run or crash.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite("PyTorch files")
struct TorchFileTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/torch").path

    struct ExpectedTensor: Decodable { let shape: [Int]; let values: [Double] }
    struct Tensors: Decodable { let tensors: [String: ExpectedTensor] }
    struct LeNet: Decodable {
        let input_shape: [Int]
        let input: [Float]
        let logits_f32: [Float]
        let logits_f16: [Float]
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)")))
    }

    /// Views (a transpose, a row at an offset), float16, bfloat16, float64, int64 and a scalar, in a training
    /// checkpoint's layout with DataParallel's prefix: each tensor as torch has it, in both formats.
    @Test(arguments: ["tensors-zip.pth", "tensors-legacy.pth"])
    func everyKindOfTensor(_ file: String) throws {
        let expected = try Self.decode(Tensors.self, "tensors.json").tensors
        let weights = try TorchFile.read(path: "\(Self.folder)/\(file)")
        #expect(weights.format == (file.contains("zip") ? "PyTorch zip archive" : "PyTorch legacy format"))
        #expect(weights.tensors.map(\.name) == ["a", "b", "c", "d", "e", "f", "g"])
        for tensor in weights.tensors {
            let reference = try #require(expected[tensor.name])
            #expect(tensor.shape == reference.shape, "\(tensor.name)")
            #expect(tensor.values == reference.values.map { Float($0) }, "\(tensor.name)")
        }
        #expect(weights.dtypes == ["a": "F32", "b": "F32", "c": "F32", "d": "F16", "e": "BF16", "f": "I64", "g": "F64"])
    }

    /// LeNet-5's weights as torch.save wrote them give torch's logits in our network: float32 in the legacy format,
    /// float16 in the zip format (torch ran the float16 weights in float32, as we do).
    @Test(arguments: [("lenet5-legacy-f32.pth", false), ("lenet5-zip-f16.pth", true)])
    func lenet5GivesTorchsLogits(_ file: String, _ half: Bool) throws {
        let fixture = try Self.decode(LeNet.self, "lenet5.json")
        let model = try ModelZoo.make("lenet5")
        let missing = try model.loadWeights(path: "\(Self.folder)/\(file)")
        #expect(missing.isEmpty)
        let logits = model.forward(Tensor(shape: fixture.input_shape, values: fixture.input)).values
        let reference = half ? fixture.logits_f16 : fixture.logits_f32
        #expect(logits.count == reference.count)
        let scale = reference.map(abs).max()!
        for (ours, theirs) in zip(logits, reference) {
            #expect(abs(ours - theirs) <= 1e-5 * scale, "\(ours) vs \(theirs)")
        }
    }

    /// `WeightFile.convert` writes the same tensors as safetensors, num_batches_tracked left out; checked against a
    /// model it refuses a file that does not fit.
    @Test func convertsToSafetensors() throws {
        let folder = freshDirectory("torch-convert")
        let output = folder + "/lenet5.safetensors"
        let conversion = try WeightFile.convert("\(Self.folder)/lenet5-legacy-f32.pth", to: output, fitting: try ModelZoo.make("lenet5").parameterLayout)
        #expect(conversion.tensorCount == 10 && conversion.valueCount == 61_706)
        let original = try TorchFile.read(path: "\(Self.folder)/lenet5-legacy-f32.pth")
        let converted = try SafeTensors.read(path: output)
        #expect(converted.tensors == original.tensors)
        #expect(converted.metadata["source"] == "lenet5-legacy-f32.pth" && converted.metadata["model"] == "lenet5")
        #expect(throws: ConfigurationError.self) {
            try WeightFile.convert("\(Self.folder)/lenet5-legacy-f32.pth", to: folder + "/x.safetensors",
                                   fitting: try ModelZoo.make("lenet5", classes: 7).parameterLayout)
        }
        #expect(!FileManager.default.fileExists(atPath: folder + "/x.safetensors"))
    }

    // MARK: - Hostile files

    /// A pickle in the legacy layout around `body` (the object's opcodes), as torch.save frames it.
    static func legacyFile(_ body: [UInt8]) -> [UInt8] {
        let magic: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]
        let version: [UInt8] = [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]
        let info: [UInt8] = [0x80, 0x02, 0x7d, 0x2e]
        return magic + version + info + [0x80, 0x02] + body + [0x2e] + [0x80, 0x02, 0x5d, 0x2e]
    }

    func refusal(_ bytes: [UInt8], _ name: String) -> String {
        let path = freshDirectory("torch-hostile") + "/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        do {
            _ = try TorchFile.read(path: path)
            return "read"
        } catch let error as FileError {
            #expect(error.path == path)
            return error.reason
        } catch {
            return "\(error)"
        }
    }

    /// `os.system("...")` as a pickle writes it: refused at the GLOBAL, before anything could be called.
    @Test func refusesOtherGlobals() {
        let global = Array("cos\nsystem\n".utf8)
        let call: [UInt8] = [0x63] + global + [0x58, 4, 0, 0, 0] + Array("true".utf8) + [0x85, 0x52]
        let reason = refusal(Self.legacyFile(call), "system.pth")
        #expect(reason.contains("refused") && reason.contains("os.system"), "\(reason)")
        let builtins = [0x63] + Array("builtins\neval\n".utf8) + [0x29, 0x52]
        #expect(refusal(Self.legacyFile(builtins), "eval.pth").contains("builtins.eval"))
    }

    /// A storage whose size claims far more than the file holds is refused before it is allocated.
    @Test func refusesLyingStorageSizes() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/tensors-legacy.pth")))
        // The element count of the storage of a, b and c (6, an int64 after the pickles): make it 6 + 2^40.
        let six: [UInt8] = [6, 0, 0, 0, 0, 0, 0, 0]
        let at = try #require((0..<bytes.count - 8).last { Array(bytes[$0..<$0 + 8]) == six })
        bytes[at + 5] = 1
        #expect(refusal(bytes, "lying.pth").contains("elements"))
        // A truncated file: the last storage cut short.
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/tensors-legacy.pth")))
        #expect(refusal(Array(original.dropLast(5)), "short.pth").contains("truncated"))
        let zip = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/tensors-zip.pth")))
        #expect(refusal(Array(zip.prefix(zip.count / 2)), "short-zip.pth").contains("zip"))
    }

    /// A view reaching past its storage, and a zip entry that climbs out of its folder.
    @Test func refusesViewsOutsideStoragesAndEscapingEntries() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/tensors-legacy.pth")))
        // Tensor 'c' is a row view at offset 3 (BININT1 3 before the shape (3,)): move its offset to 5.
        var bytes = original
        let pattern: [UInt8] = [0x4b, 3, 0x4b, 3, 0x85]
        let at = try #require((0..<bytes.count - 5).first { Array(bytes[$0..<$0 + 5]) == pattern })
        bytes[at + 1] = 5
        #expect(refusal(bytes, "view.pth").contains("reach element"))

        var zip = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/tensors-zip.pth")))
        // Rename the entries' folder "tensors-zip" to "../sors-zip" in the central directory and local headers.
        let folderName = Array("tensors-zip/".utf8), escaping = Array("../sors-zip/".utf8)
        var i = 0
        while i + folderName.count <= zip.count {
            if Array(zip[i..<i + folderName.count]) == folderName { zip.replaceSubrange(i..<i + folderName.count, with: escaping) }
            i += 1
        }
        #expect(refusal(zip, "escape.pth").contains("outside"))
    }

    /// Junk, an empty file and a safetensors file are not PyTorch files.
    @Test func refusesOtherFiles() {
        #expect(refusal(Array("hello world, not a pickle".utf8), "junk.pth").contains("not a PyTorch file"))
        #expect(refusal([], "empty.pth").contains("not a PyTorch file"))
        #expect(refusal([0x80, 0x02, 0x8a, 0x0a] + [UInt8](repeating: 0, count: 10) + [0x2e], "magic.pth").contains("not a PyTorch file"))
    }
}

/// Pickles built to hurt: a chain of a million nested tuples (freeing it recursively would overflow the stack), a
/// list appended into itself, and a list changed after it was nested are refused, naming the file.
@Suite("Hostile pickles")
struct HostilePickleTests {
    @Test func deepAndCyclicStructuresAreRefused() throws {
        let folder = freshDirectory("pickle-depth")
        let cases: [(String, [UInt8], String)] = [
            ("deep.pth", [0x29] + [UInt8](repeating: 0x85, count: 1_000_000), "nested deeper than"),
            ("cycle.pth", [0x5d, 0x94, 0x68, 0x00, 0x61], "contains itself"),
            ("late.pth", [0x5d, 0x94, 0x5d, 0x68, 0x00, 0x61, 0x30, 0x68, 0x00, 0x4b, 0x01, 0x61], "already inside"),
        ]
        for (name, body, reason) in cases {
            let path = folder + "/" + name
            #expect(FileManager.default.createFile(atPath: path, contents: Data(TorchFileTests.legacyFile(body))))
            let error = #expect(throws: FileError.self) { try TorchFile.read(path: path) }
            #expect(error?.path == path && error?.reason.contains(reason) == true, "\(name): \(String(describing: error))")
        }
    }
}
