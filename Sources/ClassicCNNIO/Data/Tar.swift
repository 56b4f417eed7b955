// A minimal reader of tar archives in the ustar layout (POSIX.1-1988, and GNU tar's variant with its long names),
// enough to unpack a downloaded dataset: regular files and folders only. Links, devices, absolute paths and '..'
// are refused, and so are sizes beyond the archive, so an archive can never write outside the folder it is unpacked in.
import Foundation
import ClassicCNNEngine

package enum Tar {
    /// One member: a regular file (with its bytes) or a folder.
    package struct Entry {
        package let path: String
        package let isDirectory: Bool
        package let data: ArraySlice<UInt8>
    }

    static let blockSize = 512

    /// The members of an uncompressed archive, checked: header checksums, sizes, types, paths.
    ///
    /// - Parameter name: what to call the archive in errors.
    /// - Throws: `DataError` naming the archive and the member.
    package static func entries(_ bytes: [UInt8], name: String) throws -> [Entry] {
        var entries: [Entry] = []
        var offset = 0, longName: String?
        func fail(_ reason: String) -> DataError { DataError(path: name, reason: "tar: \(reason)") }
        while offset + blockSize <= bytes.count {
            let header = bytes[offset..<(offset + blockSize)]
            if header.allSatisfy({ $0 == 0 }) { return entries } // the end-of-archive marker
            func field(_ start: Int, _ length: Int) -> ArraySlice<UInt8> {
                let slice = header[(offset + start)..<(offset + start + length)]
                return slice.prefix { $0 != 0 }
            }
            func text(_ start: Int, _ length: Int) -> String { String(decoding: field(start, length), as: UTF8.self) }
            func octal(_ start: Int, _ length: Int, _ what: String) throws -> Int {
                if header[offset + start] & 0x80 != 0 { throw fail("\(what) in base-256 (over 8 GB): refused") }
                let digits = text(start, length).trimmingCharacters(in: .whitespaces)
                guard let value = Int(digits.isEmpty ? "0" : digits, radix: 8), value >= 0 else {
                    throw fail("header at byte \(offset): \(what) '\(digits)' is not an octal number")
                }
                return value
            }
            let magic = text(257, 6)
            guard magic.hasPrefix("ustar") else { throw fail("header at byte \(offset) is not a ustar header (corrupt or not a tar archive)") }
            let recorded = try octal(148, 8, "checksum")
            let sum = header.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
            guard sum == recorded else { throw fail("header at byte \(offset): checksum \(sum) is not the recorded \(recorded): corrupt archive") }
            let size = try octal(124, 12, "size")
            let dataStart = offset + blockSize
            guard size <= bytes.count - dataStart else {
                throw fail("member '\(text(0, 100))' claims \(size) bytes but the archive ends after \(bytes.count - dataStart): truncated")
            }
            let data = bytes[dataStart..<(dataStart + size)]
            let type = header[offset + 156]
            let prefix = magic == "ustar" ? text(345, 155) : "" // GNU tar keeps other fields there
            var path = longName ?? (prefix.isEmpty ? text(0, 100) : prefix + "/" + text(0, 100))
            longName = nil
            offset = dataStart + (size + blockSize - 1) / blockSize * blockSize
            switch type {
            case UInt8(ascii: "L"): // GNU: the next member's long name
                longName = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                continue
            case UInt8(ascii: "x"), UInt8(ascii: "g"): // pax attributes (times, owners): not needed to unpack
                continue
            case 0, UInt8(ascii: "0"), UInt8(ascii: "5"):
                break
            case UInt8(ascii: "1"), UInt8(ascii: "2"):
                throw fail("member '\(path)' is a link: refused")
            default:
                throw fail("member '\(path)' has type '\(Character(UnicodeScalar(type)))' (not a file or folder): refused")
            }
            while path.hasPrefix("./") { path.removeFirst(2) }
            let components = path.split(separator: "/", omittingEmptySubsequences: true)
            guard !path.hasPrefix("/"), !components.contains("..") else { throw fail("member '\(path)' would be written outside the folder: refused") }
            guard !components.isEmpty else { continue }
            entries.append(Entry(path: components.joined(separator: "/"), isDirectory: type == UInt8(ascii: "5") || path.hasSuffix("/"), data: data))
        }
        guard offset == bytes.count else { throw fail("the archive ends inside a header: truncated") }
        return entries
    }

    /// Unpacks an uncompressed archive into `directory` (created if missing). Returns the files written.
    package static func extract(_ bytes: [UInt8], name: String, into directory: String) throws -> [String] {
        let files = FileManager.default
        var written: [String] = []
        for entry in try entries(bytes, name: name) {
            let path = "\(directory)/\(entry.path)"
            do {
                if entry.isDirectory {
                    try files.createDirectory(atPath: path, withIntermediateDirectories: true)
                    continue
                }
                try files.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(entry.data).write(to: URL(fileURLWithPath: path))
                written.append(path)
            } catch {
                throw DataError(path: path, reason: "cannot be written while unpacking \(name) (\(error.localizedDescription))")
            }
        }
        return written
    }
}
