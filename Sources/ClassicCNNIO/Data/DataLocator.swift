// Where datasets are found: `--data-dir`, then `CNN_DATA_DIR`, then the MNIST that ships in the repository, then a
// cache folder into which the official files are downloaded and checked against their SHA-256 sums.
import Foundation
import ClassicCNNEngine

public enum DataLocator {
    /// The cache folder: `CNN_CACHE_DIR`, else `$XDG_CACHE_HOME/classiccnn`, else `~/.cache/classiccnn`.
    public static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let dir = environment["CNN_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(xdg)/classiccnn" }
        return NSHomeDirectory() + "/.cache/classiccnn"
    }

    /// Where the official MNIST files are downloaded from: `CNN_MNIST_URL`, else a public mirror of them.
    public static var mnistMirror: URL {
        if let url = ProcessInfo.processInfo.environment["CNN_MNIST_URL"], let parsed = URL(string: url) { return parsed }
        return URL(string: "https://ossci-datasets.s3.amazonaws.com/mnist/")!
    }

    /// The folder holding the four MNIST files, looked for in the documented order. `dataDirectory` (the
    /// `--data-dir` option) is authoritative: if MNIST is not there, that is an error, not a reason to look elsewhere.
    /// The last resort downloads into the cache when `allowDownload`.
    public static func mnistDirectory(dataDirectory: String?, allowDownload: Bool = true) throws -> String {
        // A folder with some of the files but not all is an error naming the missing file, never a reason to
        // look elsewhere or to download.
        func checkComplete(_ folder: String) throws {
            if let missing = MNIST.firstMissing(in: folder) {
                throw DataError(path: missing, reason: "MNIST file missing (nor without .gz), while the other files are in \(folder)")
            }
        }
        if let dataDirectory {
            for candidate in [dataDirectory, "\(dataDirectory)/mnist"] {
                try checkComplete(candidate)
                if MNIST.isPresent(in: candidate) { return candidate }
            }
            throw DataError(path: dataDirectory, reason: "no MNIST files here or in its mnist/ folder (expected train-images-idx3-ubyte.gz and the three others)")
        }
        var candidates: [String] = []
        if let root = ProcessInfo.processInfo.environment["CNN_DATA_DIR"], !root.isEmpty {
            candidates += ["\(root)/mnist", root]
        }
        candidates += repositoryDataFolders()
        candidates.append("\(cacheDirectory)/mnist")
        for candidate in candidates { try checkComplete(candidate) }
        if let found = candidates.first(where: MNIST.isPresent(in:)) { return found }
        guard allowDownload else {
            throw DataError(path: candidates.joined(separator: ", "), reason: "MNIST not found")
        }
        do { return try downloadMNIST(into: "\(cacheDirectory)/mnist") } catch {
            throw DataError(path: "\(cacheDirectory)/mnist", reason: "not downloaded: \(error)\n" + offlineAdvice(
                dataset: "MNIST", searched: candidates, files: MNIST.files.map(\.name).joined(separator: ", "), folder: "mnist",
                url: mnistMirror, unpack: "put them (gzipped or not) in \(cacheDirectory)/mnist"))
        }
    }

    /// What a machine without the network is told when a dataset could not be downloaded: every place searched, the
    /// files expected, the options that point elsewhere, and where to fetch the files by hand.
    static func offlineAdvice(dataset: String, searched: [String], files: String, folder: String, url: URL, unpack: String) -> String {
        var seen = Set<String>()
        let places = searched.filter { seen.insert(URL(fileURLWithPath: $0).standardized.path).inserted }
        return "  \(dataset) was looked for in:\n" + places.map { "    \($0)\n" }.joined()
            + "  expected there: \(files)\n"
            + "  point at a copy with --data-dir DIR (the folder, or its parent holding \(folder)/) or CNN_DATA_DIR=DIR,\n"
            + "  or fetch \(url.absoluteString) by hand on a machine with the network and \(unpack)"
    }

    /// Downloads the four official files into `directory`, each checked against its SHA-256 sum.
    public static func downloadMNIST(into directory: String, from mirror: URL = mnistMirror) throws -> String {
        for (name, sha256) in MNIST.files where !FileManager.default.fileExists(atPath: "\(directory)/\(name)") {
            try Downloader.fetch(mirror.appendingPathComponent(name), to: "\(directory)/\(name)", sha256: sha256)
        }
        return directory
    }

    /// `Data/mnist` of this repository: from the working directory, and from the executable's folder upwards
    /// (`.build/release/cnn` sits three levels below the repository root).
    static func repositoryDataFolders() -> [String] {
        var folders = [FileManager.default.currentDirectoryPath + "/Data/mnist"]
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            folders.append(url.appendingPathComponent("Data/mnist").path)
            url.deleteLastPathComponent()
        }
        return folders
    }
}
