// What every test target shares: where the tests find the real datasets, scratch folders, random tensors.
//
// Where the tests find the real datasets: `CNN_DATA_DIR`, else `../shared/data` beside the repository. A test that
// needs them fails with a message saying so; it never passes silently without them.
import Foundation
import ClassicCNNEngine

public struct MissingData: Error, CustomStringConvertible {
    public let description: String
}

public func sharedDataRoot() throws -> String {
    let files = FileManager.default
    if let root = ProcessInfo.processInfo.environment["CNN_DATA_DIR"], !root.isEmpty {
        guard files.fileExists(atPath: root + "/mnist") else {
            throw MissingData(description: "CNN_DATA_DIR is \(root), but \(root)/mnist does not exist")
        }
        return root
    }
    let fallback = files.currentDirectoryPath + "/../shared/data"
    guard files.fileExists(atPath: fallback + "/mnist") else {
        throw MissingData(description: "CNN_DATA_DIR is not set and ../shared/data (from \(files.currentDirectoryPath)) "
            + "does not exist: set CNN_DATA_DIR to the folder holding mnist/, cifar-10-batches-bin/ and samples/")
    }
    return fallback
}

/// A fresh, empty folder for one test.
public func freshDirectory(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("classiccnn-tests-\(ProcessInfo.processInfo.processIdentifier)/\(name)-\(UInt32.random(in: 0...UInt32.max))").path
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A random tensor with values in [-1, 1).
public func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in rng.uniform(-1, 1) })
}
