// swift-tools-version:6.0
// libFuzzer harnesses for the readers of untrusted files: safetensors and checkpoints, IDX (MNIST), CIFAR-10 batches,
// PNG and JPEG, PyTorch's .pth. Not part of the library's build; run them with ../Scripts/fuzz.sh (which builds this package with
// `swift build -c release --sanitize=fuzzer`), and keep what they find in Tests/Corpus, which the test suite replays.
import Foundation
import PackageDescription

// A path dependency is known by the name of its folder, which is whatever the clone was called.
let parent = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "cnn-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        // libFuzzer provides main(); -parse-as-library lets this executable have none of its own.
        .executableTarget(name: "cnn-fuzz", dependencies: [.product(name: "ClassicCNN", package: parent)],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ],
    swiftLanguageModes: [.v5]
)
