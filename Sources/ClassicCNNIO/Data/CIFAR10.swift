// CIFAR-10 (Krizhevsky 2009), the binary version: data_batch_1.bin ... data_batch_5.bin and test_batch.bin, each
// record one label byte followed by 3072 pixel bytes (the 1024 red, then green, then blue values of a 32x32 image,
// row-major); class names in batches.meta.txt. Validated before use: sizes, label range. Downloaded when absent: the
// official archive, checked by its SHA-256 and unpacked in process.
import Foundation
import ClassicCNNEngine

public enum CIFAR10 {
    public enum Split: String, Sendable, CaseIterable {
        case train, test
        public var files: [String] {
            self == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        }
    }

    public static let recordSize = 1 + 3 * 32 * 32
    /// The names in the official batches.meta.txt, used when the file is absent.
    public static let defaultClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// Whether `directory` holds the six batch files.
    public static func isPresent(in directory: String) -> Bool {
        (Split.train.files + Split.test.files).allSatisfy { FileManager.default.fileExists(atPath: "\(directory)/\($0)") }
    }

    /// Loads one split, checking each file's size (a whole number of 3,073-byte records) and every label.
    public static func load(_ split: Split, from directory: String) throws -> ImageDataset {
        var pixels: [UInt8] = [], labels: [Int32] = []
        for name in split.files {
            let path = "\(directory)/\(name)"
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                throw DataError(path: path, reason: "CIFAR-10 batch file not found (or not a file)")
            }
            let size = Int(info.st_size)
            guard size > 0, size % recordSize == 0 else {
                throw DataError(path: path, reason: "\(size) bytes is not a whole number of \(recordSize)-byte records: truncated or not a CIFAR-10 batch")
            }
            guard let data = FileManager.default.contents(atPath: path), data.count == size else {
                throw DataError(path: path, reason: "cannot be read")
            }
            let records = size / recordSize
            pixels.reserveCapacity(pixels.count + records * (recordSize - 1))
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let bytes = raw.bindMemory(to: UInt8.self)
                for record in 0..<records {
                    let base = record * recordSize
                    guard bytes[base] < 10 else {
                        throw DataError(path: path, reason: "record \(record) has label \(bytes[base]), not 0-9")
                    }
                    labels.append(Int32(bytes[base]))
                    pixels.append(contentsOf: bytes[(base + 1)..<(base + recordSize)])
                }
            }
        }
        return ImageDataset(name: "cifar10-\(split.rawValue)", channels: 3, height: 32, width: 32, pixels: pixels,
                            labels: labels, classNames: try classNames(in: directory))
    }

    /// The class names from batches.meta.txt (ten non-empty lines), or the official ones if the file is absent.
    static func classNames(in directory: String) throws -> [String] {
        let path = "\(directory)/batches.meta.txt"
        guard let data = FileManager.default.contents(atPath: path) else { return defaultClassNames }
        let names = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard names.count == 10 else {
            throw DataError(path: path, reason: "expected 10 class names, one per line, found \(names.count)")
        }
        return names
    }
}

extension DataLocator {
    /// The folder holding CIFAR-10's binary batches: `--data-dir` (the folder itself or its `cifar-10-batches-bin/`;
    /// authoritative when given), then `$CNN_DATA_DIR/cifar-10-batches-bin`, then the cache folder, into which the
    /// official archive is downloaded and unpacked when `allowDownload`.
    public static func cifar10Directory(dataDirectory: String?, allowDownload: Bool = true) throws -> String {
        let sub = "cifar-10-batches-bin"
        if let dataDirectory {
            for candidate in [dataDirectory, "\(dataDirectory)/\(sub)"] where CIFAR10.isPresent(in: candidate) { return candidate }
            throw DataError(path: dataDirectory, reason: "no CIFAR-10 binary batches here or in its \(sub)/ folder (expected data_batch_1.bin ... test_batch.bin)")
        }
        var candidates: [String] = []
        if let root = ProcessInfo.processInfo.environment["CNN_DATA_DIR"], !root.isEmpty { candidates.append("\(root)/\(sub)") }
        candidates.append("\(cacheDirectory)/\(sub)")
        if let found = candidates.first(where: CIFAR10.isPresent(in:)) { return found }
        guard allowDownload else {
            throw DataError(path: candidates.joined(separator: ", "),
                            reason: "CIFAR-10 not found: put the binary version's files (cifar-10-batches-bin) there or pass --data-dir")
        }
        do { return try downloadCIFAR10(into: cacheDirectory) } catch {
            throw DataError(path: "\(cacheDirectory)/\(sub)", reason: "not downloaded: \(error)\n" + offlineAdvice(
                dataset: "CIFAR-10", searched: candidates, files: "data_batch_1.bin ... data_batch_5.bin and test_batch.bin (the binary version)",
                folder: sub, url: cifar10ArchiveURL, unpack: "unpack it so that \(cacheDirectory)/\(sub) holds them"))
        }
    }

    /// Where the official CIFAR-10 archive is downloaded from: `CNN_CIFAR10_URL`, else the University of Toronto.
    public static var cifar10ArchiveURL: URL {
        if let url = ProcessInfo.processInfo.environment["CNN_CIFAR10_URL"], let parsed = URL(string: url) { return parsed }
        return URL(string: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")!
    }

    /// The SHA-256 of the official cifar-10-binary.tar.gz.
    public static let cifar10ArchiveSHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"

    /// Downloads the CIFAR-10 binary archive into `cache`, checks its SHA-256, and unpacks it in process (gunzip, then
    /// the tar members) into `cache/cifar-10-batches-bin`, which appears only once complete. Returns that folder.
    public static func downloadCIFAR10(into cache: String, from url: URL = cifar10ArchiveURL,
                                       sha256: String = cifar10ArchiveSHA256) throws -> String {
        let sub = "cifar-10-batches-bin", archive = "\(cache)/cifar-10-binary.tar.gz"
        try Downloader.fetch(url, to: archive, sha256: sha256)
        defer { try? FileManager.default.removeItem(atPath: archive) }
        guard let compressed = FileManager.default.contents(atPath: archive) else {
            throw DataError(path: archive, reason: "cannot be read after downloading it")
        }
        // The official archive unpacks to 185 MB; a stream inflating far beyond is refused, not held.
        let tar = try MNIST.gunzip([UInt8](compressed), path: archive, limit: 1 << 28)
        let staging = "\(cache)/.\(sub).partial-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        _ = try Tar.extract(tar, name: archive, into: staging)
        guard CIFAR10.isPresent(in: "\(staging)/\(sub)") else {
            throw DataError(path: archive, reason: "the archive does not hold \(sub)/ with data_batch_1.bin ... test_batch.bin")
        }
        let destination = "\(cache)/\(sub)"
        try? FileManager.default.removeItem(atPath: destination) // an incomplete folder left by hand
        guard rename("\(staging)/\(sub)", destination) == 0 else {
            throw DataError(path: destination, reason: "cannot move the unpacked files here: \(String(cString: strerror(errno)))")
        }
        return destination
    }
}
