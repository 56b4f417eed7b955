// MNIST (LeCun, Cortes, Burges): the four IDX files, gzip-compressed or raw, validated before use.
//
// IDX layout: a big-endian magic number 0x0000TTDD (TT = 0x08 for unsigned bytes, DD = number of dimensions),
// DD big-endian 32-bit sizes, then the data.
import CCodecs
import Foundation
import ClassicCNNEngine

public enum MNIST {
    public enum Split: String, Sendable, CaseIterable {
        case train, test
        var imageFile: String { self == .train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte" }
        var labelFile: String { self == .train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte" }
        var expectedCount: Int { self == .train ? 60_000 : 10_000 }
    }

    /// The official files and their SHA-256 sums (the gzip files as distributed).
    public static let files: [(name: String, sha256: String)] = [
        ("train-images-idx3-ubyte.gz", "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"),
        ("train-labels-idx1-ubyte.gz", "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"),
        ("t10k-images-idx3-ubyte.gz", "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"),
        ("t10k-labels-idx1-ubyte.gz", "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"),
    ]

    public static let classNames = (0...9).map(String.init)

    static var fileStems: [String] { Split.allCases.flatMap { [$0.imageFile, $0.labelFile] } }

    /// Whether `directory` holds the four files (gzip-compressed or raw).
    public static func isPresent(in directory: String) -> Bool {
        fileStems.allSatisfy { locate($0, in: directory) != nil }
    }

    /// The first missing file of a folder that holds some of the four but not all (nil if none or all are there).
    static func firstMissing(in directory: String) -> String? {
        let present = fileStems.filter { locate($0, in: directory) != nil }
        guard !present.isEmpty, present.count < fileStems.count else { return nil }
        return fileStems.first { locate($0, in: directory) == nil }.map { "\(directory)/\($0).gz" }
    }

    /// Loads one split from `directory`, checking magic numbers, dimensions, sizes and label range.
    public static func load(_ split: Split, from directory: String) throws -> ImageDataset {
        guard let imagePath = locate(split.imageFile, in: directory) else {
            throw DataError(path: "\(directory)/\(split.imageFile).gz", reason: "MNIST file not found (nor without .gz)")
        }
        guard let labelPath = locate(split.labelFile, in: directory) else {
            throw DataError(path: "\(directory)/\(split.labelFile).gz", reason: "MNIST file not found (nor without .gz)")
        }
        let images = try readIDX(path: imagePath)
        guard images.dimensions.count == 3 else {
            throw DataError(path: imagePath, reason: "expected 3 dimensions (images, rows, columns), found \(images.dimensions.count)")
        }
        guard images.dimensions[1] > 0, images.dimensions[2] > 0 else {
            throw DataError(path: imagePath, reason: "images of \(images.dimensions[1])x\(images.dimensions[2]) pixels: a side is zero")
        }
        let labels = try readIDX(path: labelPath)
        guard labels.dimensions.count == 1 else {
            throw DataError(path: labelPath, reason: "expected 1 dimension (labels), found \(labels.dimensions.count)")
        }
        guard labels.dimensions[0] == images.dimensions[0] else {
            throw DataError(path: labelPath, reason: "has \(labels.dimensions[0]) labels but \(imagePath) has \(images.dimensions[0]) images")
        }
        if let bad = labels.bytes.firstIndex(where: { $0 > 9 }) {
            throw DataError(path: labelPath, reason: "label \(labels.bytes[bad]) at index \(bad) is not a digit 0-9")
        }
        return ImageDataset(name: "mnist-\(split.rawValue)", channels: 1, height: images.dimensions[1],
                            width: images.dimensions[2], pixels: images.bytes, labels: labels.bytes.map(Int32.init), classNames: classNames)
    }

    static func locate(_ name: String, in directory: String) -> String? {
        for candidate in ["\(directory)/\(name).gz", "\(directory)/\(name)"] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// Reads an unsigned-byte IDX file, gzip-compressed or not.
    public static func readIDX(path: String) throws -> (dimensions: [Int], bytes: [UInt8]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(path: path, reason: "cannot be read (missing or not a file)")
        }
        var bytes = [UInt8](data)
        if bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B {
            bytes = try gunzip(bytes, path: path)
        }
        guard bytes.count >= 4 else { throw DataError(path: path, reason: "truncated: \(bytes.count) bytes, too short for an IDX header") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DataError(path: path, reason: String(format: "wrong magic number 0x%02X%02X%02X%02X: not an IDX file", bytes[0], bytes[1], bytes[2], bytes[3]))
        }
        guard bytes[2] == 0x08 else {
            throw DataError(path: path, reason: String(format: "IDX element type 0x%02X is not unsigned bytes (0x08)", bytes[2]))
        }
        let rank = Int(bytes[3])
        guard (1...4).contains(rank) else { throw DataError(path: path, reason: "IDX header claims \(rank) dimensions") }
        guard bytes.count >= 4 + 4 * rank else { throw DataError(path: path, reason: "truncated inside the IDX header") }
        var dimensions: [Int] = []
        var total = 1
        for d in 0..<rank {
            let o = 4 + 4 * d
            let size = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            dimensions.append(size)
            total = total.multipliedReportingOverflow(by: size).partialValue
            guard total <= bytes.count else {
                throw DataError(path: path, reason: "truncated: the header claims dimensions \(dimensions)... but the file has only \(bytes.count) bytes")
            }
        }
        let header = 4 + 4 * rank
        guard bytes.count - header == total else {
            let verb = bytes.count - header < total ? "truncated" : "too long"
            throw DataError(path: path, reason: "\(verb): dimensions \(dimensions) need \(total) data bytes, the file has \(bytes.count - header)")
        }
        return (dimensions, Array(bytes[header...]))
    }

    /// Inflates a gzip stream, refusing one that inflates beyond `limit` bytes.
    static func gunzip(_ bytes: [UInt8], path: String, limit: Int = 1 << 27) throws -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { input in
            // The largest MNIST file is 47 MB uncompressed; a stream that inflates far beyond is refused, not held.
            ccodecs_gunzip(input.baseAddress, input.count, limit, &output, &length, &message, message.count)
        }
        guard status == 0, let output else {
            throw DataError(path: path, reason: "gzip: " + String(cString: message))
        }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }
}
