// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ClassicCNN",
    platforms: [.macOS(.v13)],
    products: [
        // The public surface: the library, and the command-line tool over it.
        .library(name: "ClassicCNN", targets: ["ClassicCNN"]),
        // The engine alone: layers, training and checkpoints, without protobuf, libpng or libjpeg.
        .library(name: "ClassicCNNEngine", targets: ["ClassicCNNEngine"]),
        .executable(name: "cnn", targets: ["cnn"]),
    ],
    traits: [
        // `swift build -c release --traits MPI`: data-parallel training over Open MPI (Debian's libopenmpi-dev). The
        // default build needs no MPI: without the trait, the MPI shim reports that MPI is not built in.
        .trait(name: "MPI", description: "Data-parallel training over MPI (links Open MPI, found by pkg-config as ompi-c)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // ONNX export: the runtime library only; the generated onnx.pb.swift is committed (Scripts/generate_onnx_proto.sh).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // `swift package generate-documentation`: the DocC catalogues, which CI builds so that they cannot rot.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Hot loops only: buffers in, buffers out. The instruction set is chosen at run time
        // (per-function `target` attributes and a CPU check), so no unsafeFlags are needed.
        .target(name: "CNNKernels"),
        // Thin C shims over zlib, libpng and libjpeg (their error paths need setjmp, which Swift cannot call).
        .target(
            name: "CCodecs",
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]
        ),
        // Open MPI's header and library (pkg-config ompi-c), and the C shim over them: MPI's handles are macros that
        // Swift cannot import. Linked only with the trait MPI.
        .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(
            name: "CMPI",
            dependencies: [.target(name: "COpenMPI", condition: .when(traits: ["MPI"]))],
            cSettings: [.define("CNN_WITH_MPI", .when(traits: ["MPI"]))]
        ),
        // Three layers with one-way dependencies, which the compiler checks (each sees only what it imports):
        // the engine (tensors, layers, model, losses, optimizers, schedules, the trainer, the in-memory data
        // pipeline and the checkpoints it resumes from); the model zoo over it; and the world's formats over it
        // (dataset files, image codecs, downloads, ONNX, TensorBoard, CSV and plots). What they share beyond their
        // public API is `package`.
        .target(name: "ClassicCNNEngine", dependencies: ["CNNKernels"]),
        .target(name: "ClassicCNNZoo", dependencies: ["ClassicCNNEngine"]),
        .target(
            name: "ClassicCNNIO",
            dependencies: ["ClassicCNNEngine", "CCodecs", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Formats/ONNX/onnx.proto"]
        ),
        // The engine's `Communicator` over MPI, for data-parallel training (functional with the trait MPI).
        .target(name: "ClassicCNNMPI", dependencies: ["ClassicCNNEngine", "CMPI"]),
        // `import ClassicCNN` gives all three.
        .target(name: "ClassicCNN", dependencies: ["ClassicCNNEngine", "ClassicCNNZoo", "ClassicCNNIO"]),
        // The command-line tool: one file per subcommand.
        .executableTarget(
            name: "cnn",
            dependencies: ["ClassicCNN", "ClassicCNNMPI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Benchmarks, kept apart from the library.
        .executableTarget(name: "kernel-bench", dependencies: ["ClassicCNN", "ClassicCNNEngine", "CNNKernels"], path: "Benchmarks/KernelBench"),
        .executableTarget(name: "fine-tune-bench", dependencies: ["ClassicCNN", "ClassicCNNEngine"], path: "Benchmarks/FineTune"),
        .executableTarget(name: "weights-bench", dependencies: ["ClassicCNN", "ClassicCNNEngine"], path: "Benchmarks/WeightsBench"),
        // What both test targets need and no product ships: the Python that checks our files with the real tools.
        .target(name: "TestSupport", dependencies: ["ClassicCNNEngine"], path: "Tests/TestSupport"),
        // The C kernels against their naive twins, for every instruction set the CPU has.
        .testTarget(name: "KernelTests", dependencies: ["CNNKernels", "ClassicCNNEngine", "TestSupport"]),
        .testTarget(name: "ClassicCNNTests", dependencies: ["ClassicCNN", "ClassicCNNEngine", "ClassicCNNZoo", "ClassicCNNIO", "CNNKernels", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["cnn", "ClassicCNN", "ClassicCNNEngine", "ClassicCNNZoo", "ClassicCNNIO", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
