// One libFuzzer entry point for every reader; CNN_FUZZ_TARGET picks the reader (safetensors, checkpoint, idx, mnist,
// cifar, image, torch). Each input is written to a file and read as a user's file would be: the readers must throw a
// named error or succeed, never crash, hang or allocate what a header merely claims.
import ClassicCNN
import Foundation

enum Target: String, CaseIterable { case safetensors, checkpoint, idx, mnist, cifar, image, torch }

let target: Target = {
    let name = ProcessInfo.processInfo.environment["CNN_FUZZ_TARGET"] ?? ""
    guard let target = Target(rawValue: name) else {
        fatalError("set CNN_FUZZ_TARGET to one of \(Target.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

let folder: String = {
    let path = "/dev/shm/cnn-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

func write(_ bytes: UnsafeRawBufferPointer, to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// Splits an input in two at a 4-byte length prefix, for readers that take two files (MNIST's images and labels).
func split(_ bytes: UnsafeRawBufferPointer) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
    guard bytes.count >= 4 else { return (bytes, UnsafeRawBufferPointer(start: nil, count: 0)) }
    let first = min(Int(bytes.loadUnaligned(as: UInt32.self)), bytes.count - 4)
    return (UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + first)]), UnsafeRawBufferPointer(rebasing: bytes[(4 + first)...]))
}

/// Uses what was read as training would: every image through the loader into one batch.
func consume(_ dataset: ImageDataset, inputSize: Int, format: InputFormat) {
    let loader = BatchLoader(dataset: dataset, batchSize: min(max(dataset.count, 1), 8), inputSize: inputSize, format: format,
                             shuffleSeed: 1, limit: 8)
    defer { loader.stop() }
    while let batch = loader.next() { _ = batch.images.isFinite }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    switch target {
    case .safetensors:
        write(bytes, to: folder + "/x.safetensors")
        _ = try? SafeTensors.read(path: folder + "/x.safetensors")
    case .checkpoint:
        write(bytes, to: folder + "/x.safetensors")
        if let (model, _, _) = try? Checkpoint.load(path: folder + "/x.safetensors"), model.parameterCount < 100_000 {
            _ = model.forward(Tensor(shape: [1] + model.inputShape))
        }
    case .idx:
        write(bytes, to: folder + "/x-idx")
        _ = try? MNIST.readIDX(path: folder + "/x-idx")
    case .mnist:
        let (images, labels) = split(bytes)
        write(images, to: folder + "/t10k-images-idx3-ubyte")
        write(labels, to: folder + "/t10k-labels-idx1-ubyte")
        if let dataset = try? MNIST.load(.test, from: folder) { consume(dataset, inputSize: 32, format: .unit(channels: 1, fitting: .pad)) }
    case .cifar:
        let directory = folder + "/cifar"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        write(bytes, to: directory + "/test_batch.bin")
        if let dataset = try? CIFAR10.load(.test, from: directory) { consume(dataset, inputSize: 40, format: .unit(channels: 3)) }
    case .image:
        if let image = try? Image.decode(Array(bytes), name: "input") { _ = mnistStyleDigit(image) }
    case .torch:
        // PyTorch's .pth in either format: read every tensor, as `cnn convert` does.
        write(bytes, to: folder + "/x.pth")
        _ = try? TorchFile.read(path: folder + "/x.pth")
    }
    return 0
}
