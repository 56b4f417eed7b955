// The CIFAR-10 download: a synthetic archive (a few records per batch file, in the official layout) served over
// loopback, checked, unpacked in process and read; and the archives that must be refused.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

/// A ustar archive built by hand, so that the members a hostile archive might hold can be written too.
struct TarBuilder {
    var bytes: [UInt8] = []

    mutating func add(_ path: String, _ data: [UInt8] = [], type: Character = "0", link: String = "") {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) { for (i, byte) in text.utf8.enumerated() { header[offset + i] = byte } }
        put(path, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(format: "%011o", data.count), at: 124)
        put("00000000000", at: 136)
        header[156] = type.asciiValue!
        put(link, at: 157)
        put("ustar", at: 257)
        put("00", at: 263)
        put("        ", at: 148)
        put(String(format: "%06o", header.reduce(0) { $0 + Int($1) }), at: 148)
        bytes += header + data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    var archive: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

/// Compresses with the system's gzip (the library only inflates).
func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
    let folder = freshDirectory("gzip")
    let path = folder + "/data"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-n", path]
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + ".gz")))
}

@Suite("CIFAR-10 download")
struct CIFARDownloadTests {
    /// Three records per batch file: label (file index + record) % 10, pixels a function of both.
    static func syntheticArchive() -> [UInt8] {
        var tar = TarBuilder()
        tar.add("cifar-10-batches-bin/", type: "5")
        for (file, name) in (CIFAR10.Split.train.files + CIFAR10.Split.test.files).enumerated() {
            var records: [UInt8] = []
            for record in 0..<3 {
                records.append(UInt8((file + record) % 10))
                for i in 0..<3072 { records.append(UInt8(truncatingIfNeeded: i + 17 * file + record)) }
            }
            tar.add("cifar-10-batches-bin/\(name)", records)
        }
        tar.add("cifar-10-batches-bin/batches.meta.txt", Array(CIFAR10.defaultClassNames.joined(separator: "\n").utf8))
        return tar.archive
    }

    @Test func downloadsChecksAndUnpacksTheArchiveInProcess() throws {
        let archive = try gzip(Self.syntheticArchive())
        let server = try LoopbackHTTPServer(files: ["/cifar.tar.gz": archive])
        defer { server.stop() }
        let cache = freshDirectory("cifarcache")
        let folder = try DataLocator.downloadCIFAR10(into: cache, from: server.url("/cifar.tar.gz"), sha256: SHA256.hex(of: archive))
        #expect(folder == cache + "/cifar-10-batches-bin")
        let test = try CIFAR10.load(.test, from: folder), train = try CIFAR10.load(.train, from: folder)
        #expect(test.count == 3 && train.count == 15)
        #expect(test.labels == [5, 6, 7] && Array(test.pixels[0..<3]) == [85, 86, 87])
        // Nothing else is left in the cache: no archive, no half-unpacked folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache) == ["cifar-10-batches-bin"])
    }

    @Test func aChecksumMismatchLeavesNothing() throws {
        let archive = try gzip(Self.syntheticArchive())
        let server = try LoopbackHTTPServer(files: ["/cifar.tar.gz": archive])
        defer { server.stop() }
        let cache = freshDirectory("cifarmismatch")
        #expect { try DataLocator.downloadCIFAR10(into: cache, from: server.url("/cifar.tar.gz")) } throws: {
            "\($0)".contains("/cifar.tar.gz") && "\($0)".contains("SHA-256 mismatch") && "\($0)".contains(DataLocator.cifar10ArchiveSHA256)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).isEmpty)
    }

    @Test func corruptArchivesAreRefusedAndLeaveNothing() throws {
        let good = try gzip(Self.syntheticArchive())
        var corrupt = good
        for i in 200..<260 { corrupt[i] ^= 0x5A }
        var missing = TarBuilder()
        missing.add("cifar-10-batches-bin/test_batch.bin", [UInt8](repeating: 0, count: 3073))
        let cases: [(String, [UInt8], String)] = [
            ("corrupt", corrupt, "gzip"),
            ("truncated", Array(good.prefix(good.count / 2)), "gzip"),
            ("notar", try gzip(Array("just text".utf8) + [UInt8](repeating: 1, count: 600)), "not a ustar header"),
            ("incomplete", try gzip(missing.archive), "data_batch_1.bin"),
        ]
        for (name, archive, reason) in cases {
            let server = try LoopbackHTTPServer(files: ["/c.tar.gz": archive])
            defer { server.stop() }
            let cache = freshDirectory("cifar-\(name)")
            do {
                _ = try DataLocator.downloadCIFAR10(into: cache, from: server.url("/c.tar.gz"), sha256: SHA256.hex(of: archive))
                Issue.record("\(name): accepted")
            } catch {
                #expect("\(error)".contains("cifar-10-binary.tar.gz") && "\(error)".contains(reason), "\(name): \(error)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: cache).isEmpty, "\(name)")
        }
    }

    @Test func theTarReaderRefusesTraversalLinksAndAbsurdSizes() throws {
        func refusal(_ build: (inout TarBuilder) -> Void) -> String {
            var tar = TarBuilder()
            build(&tar)
            do { _ = try Tar.entries(tar.archive, name: "t.tar"); return "accepted" } catch { return "\(error)" }
        }
        #expect(refusal { $0.add("a/../../evil", [1]) }.contains("outside the folder"))
        #expect(refusal { $0.add("/etc/evil", [1]) }.contains("outside the folder"))
        #expect(refusal { $0.add("link", type: "2", link: "/etc/passwd") }.contains("is a link"))
        #expect(refusal { $0.add("hard", type: "1", link: "x") }.contains("is a link"))
        #expect(refusal { $0.add("dev", type: "3") }.contains("not a file or folder"))
        // A size beyond the archive, and a header whose checksum does not match.
        var tar = TarBuilder()
        tar.add("big", [1, 2, 3])
        var bytes = tar.archive
        for (i, byte) in String(format: "%011o", 1 << 30).utf8.enumerated() { bytes[124 + i] = byte }
        #expect { try Tar.entries(bytes, name: "t.tar") } throws: { "\($0)".contains("checksum") }
        let sum = bytes[0..<512].enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
        for (i, byte) in String(format: "%06o", sum).utf8.enumerated() { bytes[148 + i] = byte }
        #expect { try Tar.entries(bytes, name: "t.tar") } throws: { "\($0)".contains("truncated") && "\($0)".contains("big") }
        // The good case: files and a folder, './' prefixes removed.
        var fine = TarBuilder()
        fine.add("./d/", type: "5")
        fine.add("./d/x.bin", [9, 8])
        let entries = try Tar.entries(fine.archive, name: "t.tar")
        #expect(entries.map(\.path) == ["d", "d/x.bin"] && entries.map(\.isDirectory) == [true, false] && Array(entries[1].data) == [9, 8])
    }
}
