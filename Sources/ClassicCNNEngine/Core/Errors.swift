// The errors that more than one part of the library throws.

/// A file that cannot be read or written, or whose contents are wrong: which file, and what is wrong, in words.
/// Datasets, images, safetensors files, checkpoints and logs all report their problems with it (under the names
/// `DataError`, `ImageError`, `SafeTensorsError`, `CheckpointError` and `LogError`, which are this type).
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file path, or the name given to what was read from memory.
    public let path: String
    /// The problem, in words (for example `"not a safetensors file: the header is not valid JSON"`).
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `"<path>: <reason>"`.
    public var description: String { "\(path): \(reason)" }
}

/// A dataset file that cannot be used.
public typealias DataError = FileError
/// An image that cannot be read, decoded, encoded or written.
public typealias ImageError = FileError
/// A safetensors file that cannot be read or written.
public typealias SafeTensorsError = FileError
/// A checkpoint that cannot be read, or whose model cannot be rebuilt.
public typealias CheckpointError = FileError
/// A log that cannot be written.
public typealias LogError = FileError

/// Errors in a model's configuration (`--classes`, `--input-size`) or in what is loaded into it.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The name among `names` within a few edits of `name` (case and punctuation ignored), if one is closest.
public func closestName(to name: String, among names: [String]) -> String? {
    func plain(_ text: String) -> [Character] { Array(text.lowercased().filter { $0.isLetter || $0.isNumber }) }
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() { current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))) }
            previous = current
        }
        return previous[b.count]
    }
    let target = plain(name)
    let scored = names.map { (name: $0, distance: distance(target, plain($0))) }.sorted { $0.distance < $1.distance }
    guard let best = scored.first, best.distance <= max(1, target.count / 4) else { return nil }
    return best.name
}
