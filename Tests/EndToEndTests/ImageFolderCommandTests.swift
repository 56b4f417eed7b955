// End-to-end: `cnn train --dataset PATH` on image folders made from the sample pictures, and each bad folder a user
// may hand it, reported by name before any training.
import ClassicCNN
import Foundation
import Testing
import TestSupport

@Suite("cnn image folders", .serialized)
struct ImageFolderCommandTests {
    /// Two classes from the samples: the CIFAR pictures (PNG and JPEG, colour) and the MNIST digits (grey PNG).
    func sampleFolder(_ name: String) throws -> String {
        let root = scratch(name), samples = try sharedDataRoot() + "/samples"
        for file in try FileManager.default.contentsOfDirectory(atPath: samples) {
            let kind = file.hasPrefix("cifar") ? "pictures" : "digits"
            try FileManager.default.createDirectory(atPath: "\(root)/\(kind)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(samples)/\(file)", toPath: "\(root)/\(kind)/\(file)")
        }
        return root
    }

    /// The loader holds a few batches, not the folder: ten times the files, the same peak memory.
    @Test func loaderMemoryDoesNotGrowWithTheFolder() throws {
        func folder(_ name: String, files: Int) throws -> String {
            let root = scratch(name)
            var state: UInt32 = 12_345
            for index in 0..<files {
                let kind = index % 2 == 0 ? "a" : "b"
                try FileManager.default.createDirectory(atPath: "\(root)/\(kind)", withIntermediateDirectories: true)
                let pixels = (0..<(96 * 96 * 3)).map { _ -> UInt8 in state = state &* 1_664_525 &+ 1_013_904_223; return UInt8(state >> 24) }
                try Image(width: 96, height: 96, channels: 3, pixels: pixels).writePNG(path: "\(root)/\(kind)/\(index).png")
            }
            return root
        }
        func peak(_ root: String) throws -> Int {
            let run = try cnn(["bench-data", "--dataset", root, "--input-size", "224", "--batch-size", "32", "--batches", "1000", "--json"])
            try #require(run.status == 0, "\(run.error)")
            return try #require((try json(run.output) as? [String: Any])?["peak_resident_megabytes"] as? Int)
        }
        let small = try peak(try folder("memory-small", files: 160)), large = try peak(try folder("memory-large", files: 1_600))
        #expect(large - small < 24, "peak memory \(small) MB for 160 files, \(large) MB for 1,600")
    }

    @Test func trainsOnAnImageFolderWithASeededValidationSplit() throws {
        let root = try sampleFolder("folder-train"), checkpoints = scratch("folder-train-ck")
        let run = try cnn(["train", "lenet5", "--dataset", root, "--epochs", "1", "--batch-size", "4", "--validation-fraction", "0.25",
                           "--checkpoint-dir", checkpoints, "--threads", "1"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("on \(root):") && run.output.contains("val_accuracy"), "\(run.output)")
        #expect(FileManager.default.fileExists(atPath: checkpoints + "/last.safetensors"))
        // evaluate takes the folder from the checkpoint and splits it as training did.
        let evaluate = try cnn(["evaluate", "--checkpoint", checkpoints + "/last.safetensors", "--validation-fraction", "0.25", "--json"])
        #expect(evaluate.status == 0, "\(evaluate.error)")
        let report = try #require(try json(evaluate.output) as? [String: Any])
        #expect(report["dataset"] as? String == root && (report["images"] as? Int ?? 0) > 0, "\(report)")
        // Two class folders make a 2-class network (not the network's own 10), and the checkpoint keeps their names,
        // which predict then shows instead of indices.
        #expect(report["class_names"] as? [String] == ["digits", "pictures"], "\(report)")
        let (_, info, _) = try Checkpoint.load(path: checkpoints + "/last.safetensors")
        #expect(info.configuration.classes == 2 && info.classNames == ["digits", "pictures"])
        let predict = try cnn(["predict", "--checkpoint", checkpoints + "/last.safetensors", "--top", "2",
                               try sharedDataRoot() + "/samples/mnist-test-0000-label7.png"])
        #expect(predict.status == 0 && predict.output.contains("digits") && predict.output.contains("pictures"), "\(predict.output)")
        // --classes that disagrees with the folder is refused, naming both.
        let mismatch = try cnn(["train", "lenet5", "--dataset", root, "--classes", "3", "--epochs", "1", "--checkpoint-dir", scratch("folder-mismatch")])
        #expect(mismatch.status == 64 && mismatch.error.contains("2 class folders"), "\(mismatch.error)")
    }

    /// A folder of labelled images the checkpoint was not trained on is evaluated whole (with one image per class
    /// too, even with --ten-crop); the training folder's held-out share with --split val; a folder whose classes are
    /// not the checkpoint's is refused.
    @Test func evaluatesAWholeFolderOfTestImages() throws {
        let root = try sampleFolder("folder-eval-train"), checkpoints = scratch("folder-eval-ck")
        let train = try cnn(["train", "lenet5", "--dataset", root, "--epochs", "1", "--batch-size", "4", "--checkpoint-dir", checkpoints,
                             "--threads", "1"])
        try #require(train.status == 0, "\(train.error)")
        let checkpoint = checkpoints + "/last.safetensors"
        // Another folder: one image per class.
        let test = scratch("folder-eval-test"), samples = try sharedDataRoot() + "/samples"
        for (kind, file) in [("digits", "mnist-test-0000-label7.png"), ("pictures", "cifar-test-0001-dog.png")] {
            try FileManager.default.createDirectory(atPath: "\(test)/\(kind)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(samples)/\(file)", toPath: "\(test)/\(kind)/\(file)")
        }
        for extra in [[], ["--ten-crop"]] {
            let whole = try cnn(["evaluate", "--checkpoint", checkpoint, "--dataset", test, "--json"] + extra)
            #expect(whole.status == 0, "\(whole.error)")
            let report = try #require(try json(whole.output) as? [String: Any])
            #expect(report["images"] as? Int == 2, "\(report)")
        }
        let held = try cnn(["evaluate", "--checkpoint", checkpoint, "--json"])
        let heldReport = try #require(try json(held.output) as? [String: Any])
        let all = try cnn(["evaluate", "--checkpoint", checkpoint, "--split", "all", "--json"])
        let allReport = try #require(try json(all.output) as? [String: Any])
        #expect(heldReport["images"] as? Int ?? 0 < allReport["images"] as? Int ?? 0, "\(heldReport) \(allReport)")
        #expect(allReport["images"] as? Int == 25)
        // Other classes: refused, naming both lists.
        try FileManager.default.moveItem(atPath: test + "/pictures", toPath: test + "/photos")
        let other = try cnn(["evaluate", "--checkpoint", checkpoint, "--dataset", test])
        #expect(other.status != 0 && other.status < 128 && other.error.contains("digits, photos") && other.error.contains("digits, pictures"),
                "\(other.error)")
    }

    /// A folder given by a relative path is kept in the checkpoint as its absolute path, so that `cnn evaluate`
    /// finds it from any folder.
    @Test func theCheckpointKeepsTheFoldersAbsolutePath() throws {
        let root = try sampleFolder("folder-relative"), checkpoints = scratch("folder-relative-ck")
        let parent = (root as NSString).deletingLastPathComponent, relative = (root as NSString).lastPathComponent
        let run = try cnn(["train", "lenet5", "--dataset", relative, "--epochs", "1", "--batch-size", "4", "--checkpoint-dir", checkpoints,
                           "--threads", "1"], directory: parent)
        #expect(run.status == 0, "\(run.error)")
        let (_, info, _) = try Checkpoint.load(path: checkpoints + "/last.safetensors")
        #expect(info.dataset == URL(fileURLWithPath: root).standardized.path, "\(info.dataset)")
        let evaluate = try cnn(["evaluate", "--checkpoint", checkpoints + "/last.safetensors", "--json"], directory: "/")
        #expect(evaluate.status == 0, "\(evaluate.error)")
    }

    @Test func badFoldersStopTheRunBeforeTrainingNamingTheProblem() throws {
        let checkpoints = scratch("folder-bad-ck")
        func train(_ root: String, _ extra: [String] = []) throws -> Run {
            try cnn(["train", "lenet5", "--dataset", root, "--epochs", "1", "--batch-size", "4", "--checkpoint-dir", checkpoints,
                     "--threads", "1"] + extra)
        }
        // An empty class folder.
        let empty = try sampleFolder("folder-empty")
        try FileManager.default.createDirectory(atPath: empty + "/nothing", withIntermediateDirectories: true)
        var run = try train(empty)
        expectCleanFailure(run, naming: empty + "/nothing")
        #expect(run.error.contains("empty class folder"))
        // A folder without class folders.
        let flat = scratch("folder-flat")
        try FileManager.default.copyItem(atPath: try sharedDataRoot() + "/samples/mnist-test-0000-label7.png", toPath: flat + "/seven.png")
        run = try train(flat)
        expectCleanFailure(run, naming: flat)
        #expect(run.error.contains("no class folders"))
        // A file that is not an image, among good ones: nothing is trained, nothing is written.
        let bad = try sampleFolder("folder-notimage")
        try Data("<html>not found</html>".utf8).write(to: URL(fileURLWithPath: bad + "/digits/oops.png"))
        run = try train(bad)
        expectCleanFailure(run, naming: bad + "/digits/oops.png")
        #expect(run.error.contains("not a PNG or JPEG") && run.error.contains("--skip-bad-images"))
        #expect(!run.output.contains("Epoch"))
        #expect(!FileManager.default.fileExists(atPath: checkpoints + "/last.safetensors"))
        // Skipped when asked, each named.
        run = try train(bad, ["--skip-bad-images", "--validation-fraction", "0"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.error.contains("skipping \(bad)/digits/oops.png"))
        #expect(FileManager.default.fileExists(atPath: checkpoints + "/last.safetensors"))
        // A fraction outside [0, 1) is a usage error.
        run = try train(bad, ["--validation-fraction", "1"])
        #expect(run.status == 64 && run.error.contains("--validation-fraction"))
    }

    @Test func benchDataMeasuresAFolder() throws {
        let root = try sampleFolder("folder-bench")
        let run = try cnn(["bench-data", "--dataset", root, "--input-size", "64", "--batch-size", "4", "--json"])
        #expect(run.status == 0, "\(run.error)")
        let report = try #require(try json(run.output) as? [String: Any])
        #expect(report["images"] as? Int == 25 && (report["images_per_second"] as? Double ?? 0) > 0)
    }

    /// `--pretrained` and `--init pretrained:NAME` from a cache that already holds the converted weights (as after
    /// `cnn weights fetch`; here GoogLeNet with seeded random weights, so no network is needed): predict names
    /// ImageNet's classes, and a fine-tuning run starts from them, keeps Google's [-1, 1] input format in its
    /// checkpoint, and says what it loaded.
    @Test func pretrainedWeightsFromTheCache() throws {
        let cache = scratch("pretrained-cache"), folder = try sampleFolder("pretrained-folder")
        let weights = try PretrainedWeights.named("googlenet-torchvision")
        let source = try ModelZoo.make("googlenet-torchvision", seed: 5)
        try SafeTensors.write(source.parameters.map { NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values) },
                              metadata: [:], to: cache + "/" + weights.convertedFileName)
        let environment = ["CNN_WEIGHTS_DIR": cache, "CNN_WEIGHTS_MIRROR": "http://127.0.0.1:9/models"]
        let sample = try sharedDataRoot() + "/samples/cifar-test-0001-dog.png"
        let predict = try cnn(["predict", "--model", "googlenet-torchvision", "--pretrained", "--json", sample], environment: environment)
        #expect(predict.status == 0, "\(predict.error)")
        #expect(ImageNet.classNames.contains { predict.output.contains("\"class\":\"\($0)\"") }, "\(predict.output)")
        let train = try cnn(["train", "googlenet-torchvision", "--init", "pretrained:googlenet-torchvision", "--dataset", folder,
                             "--classes", "2", "--input-size", "96", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                             "--validation-steps", "1", "--checkpoint-dir", cache + "/run"], environment: environment)
        #expect(train.status == 0, "\(train.error)")
        #expect(train.output.contains("Initialised from pretrained:googlenet-torchvision"), "\(train.output)")
        #expect(train.output.contains("fc.weight"), "the new classifier is named as freshly initialised: \(train.output)")
        let (model, _, _) = try Checkpoint.load(path: cache + "/run/last.safetensors")
        #expect(model.inputFormat == weights.inputFormat)
    }
}
