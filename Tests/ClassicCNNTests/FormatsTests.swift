// FormatsTests.swift
//
// Tests for the file formats and downloads: safetensors round trips (bit-exact), a file written
// by Python's safetensors, hostile and damaged files, atomic writes that fail cleanly, SHA-256
// test vectors, and checksum-verified downloads from a loopback HTTP server.

import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Helpers

/// A new, empty folder under the system temp folder.
private func makeTempFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("ClassicCNNTests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func removeFolder(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

private func bytes(atPath path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func writeBytes(_ bytes: [UInt8], toPath path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A safetensors file from a header string and data bytes; `claimedLength` overrides the length prefix.
private func rawSafeTensors(header: String, data: [UInt8] = [], claimedLength: UInt64? = nil) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    let length = claimedLength ?? UInt64(headerBytes.count)
    var file = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
    file += headerBytes
    file += data
    return file
}

/// Writes `file` to a temp folder, reads it back, and returns the error `read` threw (nil if none).
private func readError(of file: [UInt8]) throws -> SafeTensorsError? {
    let folder = try makeTempFolder()
    defer { removeFolder(folder) }
    let path = folder + "/hostile.safetensors"
    try writeBytes(file, toPath: path)
    do {
        _ = try SafeTensors.read(path: path)
        return nil
    } catch let error as SafeTensorsError {
        #expect(error.path == path)
        return error
    }
}

/// Deterministic pseudo-random bytes.
private func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

private func bitPatterns(_ values: [Float]) -> [UInt32] {
    values.map(\.bitPattern)
}

// MARK: - SafeTensors

@Suite struct SafeTensorsTests {
    @Test func roundTripIsBitExact() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/model.safetensors"

        let specials: [Float] = [
            Float(bitPattern: 0x7fc0_1234),  // quiet NaN with a payload
            Float(bitPattern: 0xffc0_0001),  // negative NaN with a payload
            Float(bitPattern: 0x7f80_0001),  // signalling NaN
            -0.0, 0.0,
            Float.leastNonzeroMagnitude, -Float.leastNonzeroMagnitude,
            Float(bitPattern: 0x007f_ffff),  // largest subnormal
            Float.infinity, -Float.infinity,
            Float.greatestFiniteMagnitude, 1, -1.5,
        ]
        let tensors = [
            NamedTensor(name: "z.specials", shape: [13], values: specials),
            NamedTensor(name: "a.matrix", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
            NamedTensor(name: "scalar", shape: [], values: [42]),
            NamedTensor(name: "empty", shape: [0, 4], values: []),
            NamedTensor(name: "m.ünïcödé \"name\"", shape: [1, 1, 2], values: [0.5, -0.25]),
        ]
        let metadata = [
            "format": "pt",
            "note": "\"quoted\" and \\backslash\\ and\nnewline and \u{01} control",
            "ünïcödé 🎉": "日本語 ✓",
        ]
        try SafeTensors.write(tensors, metadata: metadata, to: path)

        let file = try bytes(atPath: path)
        let headerLength = file[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(headerLength % 8 == 0)
        #expect((8 + headerLength) % 8 == 0)

        let result = try SafeTensors.read(path: path)
        #expect(result.tensors.map(\.name) == tensors.map(\.name))
        for (read, written) in zip(result.tensors, tensors) {
            #expect(read.shape == written.shape)
            #expect(bitPatterns(read.values) == bitPatterns(written.values))
            #expect(result.dtypes[written.name] == "F32")
        }
        #expect(result.metadata == metadata)

        // No temp file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.safetensors"])
    }

    @Test func overwritesAnExistingFile() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/model.safetensors"
        try SafeTensors.write([NamedTensor(name: "a", shape: [1], values: [1])], metadata: [:], to: path)
        try SafeTensors.write([NamedTensor(name: "b", shape: [2], values: [2, 3])], metadata: ["k": "v"], to: path)
        let result = try SafeTensors.read(path: path)
        #expect(result.tensors == [NamedTensor(name: "b", shape: [2], values: [2, 3])])
        #expect(result.metadata == ["k": "v"])
    }

    /// Written by Python's safetensors 0.8.0 with numpy 2.4.6:
    /// ```python
    /// save_file({
    ///     "weight": np.array([[1.5, -2.0, 0.0], [3.25, -0.0, 1e-40]], dtype=np.float32),
    ///     "bias": np.array([0.1, 65504.0], dtype=np.float16),
    ///     "d": np.array([1.0 / 3.0], dtype=np.float64),
    ///     "i": np.array([[-7], [123456]], dtype=np.int64),
    ///     "j": np.array([42, -1, 0], dtype=np.int32),
    ///     "s": np.array(2.5, dtype=np.float32),
    /// }, "py.safetensors", metadata={"format": "np", "note": "héllo \"q\""})
    /// ```
    static let pythonFile = """
        kAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJucCIsIm5vdGUiOiJow6lsbG8gXCJx\
        XCIifSwiaSI6eyJkdHlwZSI6Ikk2NCIsInNoYXBlIjpbMiwxXSwiZGF0YV9vZmZzZXRzIjpbMCwx\
        Nl19LCJkIjp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbMTYsMjRd\
        fSwicyI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbXSwiZGF0YV9vZmZzZXRzIjpbMjQsMjhdfSwi\
        d2VpZ2h0Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDNdLCJkYXRhX29mZnNldHMiOlsyOCw1\
        Ml19LCJqIjp7ImR0eXBlIjoiSTMyIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTIsNjRd\
        fSwiYmlhcyI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzY0LDY4\
        XX19ICAgICAg+f////////9A4gEAAAAAAFVVVVVVVdU/AAAgQAAAwD8AAADAAAAAAAAAUEAAAACA\
        whYBACoAAAD/////AAAAAGYu/3s=
        """

    @Test func readsAFileWrittenByPython() throws {
        let data = try #require(Data(base64Encoded: Self.pythonFile))
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/py.safetensors"
        try data.write(to: URL(fileURLWithPath: path))

        let result = try SafeTensors.read(path: path)
        #expect(result.metadata == ["format": "np", "note": "héllo \"q\""])
        #expect(result.tensors.map(\.name) == ["i", "d", "s", "weight", "j", "bias"])
        #expect(result.dtypes == ["i": "I64", "d": "F64", "s": "F32", "weight": "F32", "j": "I32", "bias": "F16"])

        let byName = Dictionary(uniqueKeysWithValues: result.tensors.map { ($0.name, $0) })
        #expect(byName["weight"]?.shape == [2, 3])
        #expect(byName["weight"].map { bitPatterns($0.values) }
            == [0x3fc0_0000, 0xc000_0000, 0x0, 0x4050_0000, 0x8000_0000, 0x0001_16c2])
        #expect(byName["bias"]?.shape == [2])
        #expect(byName["bias"].map { bitPatterns($0.values) } == [0x3dcc_c000, Float(65504).bitPattern])
        #expect(byName["d"]?.shape == [1])
        #expect(byName["d"]?.values.map(\.bitPattern) == [0x3eaa_aaab])
        #expect(byName["i"]?.shape == [2, 1])
        #expect(byName["i"]?.values == [-7, 123_456])
        #expect(byName["j"]?.values == [42, -1, 0])
        #expect(byName["s"]?.shape == [])
        #expect(byName["s"]?.values == [2.5])
    }

    @Test func convertsBF16AndHalfSpecials() throws {
        // BF16: 1.0, -3.5; F16: +inf, -0.0, smallest subnormal (2^-24), a NaN.
        let header = #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[4],"data_offsets":[4,12]}}"#
        let data: [UInt8] = [0x80, 0x3f, 0x60, 0xc0, 0x00, 0x7c, 0x00, 0x80, 0x01, 0x00, 0x01, 0x7e]
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/mixed.safetensors"
        try writeBytes(rawSafeTensors(header: header, data: data), toPath: path)

        let result = try SafeTensors.read(path: path)
        #expect(result.dtypes == ["b": "BF16", "h": "F16"])
        #expect(result.tensors[0].values == [1.0, -3.5])
        let half = result.tensors[1].values
        #expect(half[0] == .infinity)
        #expect(half[1].bitPattern == (-0.0 as Float).bitPattern)
        #expect(half[2] == 0x1p-24)
        #expect(half[3].isNaN)
        #expect(SafeTensors.floatFromHalf(0x3c00) == 1)
        #expect(SafeTensors.floatFromHalf(0xc000) == -2)
        #expect(SafeTensors.floatFromHalf(0x03ff) == Float(0x3ff) * 0x1p-24)
    }

    @Test func readsAnEmptyHeader() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/empty.safetensors"
        try SafeTensors.write([], metadata: [:], to: path)
        let result = try SafeTensors.read(path: path)
        #expect(result.tensors.isEmpty)
        #expect(result.metadata.isEmpty)
    }

    // MARK: Hostile files

    @Test func rejectsAHugeHeaderLength() throws {
        let file = rawSafeTensors(header: "{}      ", claimedLength: 1 << 40)
        let error = try #require(try readError(of: file))
        #expect(error.reason == "truncated: header claims 1099511627776 bytes but the file has \(file.count)")
    }

    @Test func rejectsAHeaderLongerThanTheFile() throws {
        let file = rawSafeTensors(header: "{}      ", claimedLength: 9)
        let error = try #require(try readError(of: file))
        #expect(error.reason.contains("truncated: header claims 9 bytes but the file has 16"))
    }

    @Test func rejectsAHeaderOverTheSizeLimit() throws {
        // A sparse file larger than the claimed header, so only the 100 MB limit can stop it.
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/big.safetensors"
        try writeBytes(rawSafeTensors(header: "{", claimedLength: 150_000_000), toPath: path)
        #expect(truncate(path, 160_000_000) == 0)
        let error = #expect(throws: SafeTensorsError.self) { try SafeTensors.read(path: path) }
        #expect(error?.reason.contains("header of 150000000 bytes exceeds the 100 MB limit") == true)
    }

    @Test func rejectsNonJSONHeaders() throws {
        let notJSON = try #require(try readError(of: rawSafeTensors(header: "{this is not json}")))
        #expect(notJSON.reason.contains("not a safetensors file"))
        #expect(notJSON.reason.contains("not valid JSON"))

        let binary = try #require(try readError(of: rawSafeTensors(header: "\u{7f}ELF\u{02}\u{01}\u{01}\u{00}")))
        #expect(binary.reason.contains("not a safetensors file"))

        let array = try #require(try readError(of: rawSafeTensors(header: "[1, 2, 3]")))
        #expect(array.reason.contains("not a safetensors file"))

        let zeroLength = try #require(try readError(of: rawSafeTensors(header: "")))
        #expect(zeroLength.reason.contains("not a safetensors file"))
    }

    @Test func rejectsEmptyAndTinyFiles() throws {
        let empty = try #require(try readError(of: []))
        #expect(empty.reason.contains("empty file"))
        let tiny = try #require(try readError(of: [1, 2, 3]))
        #expect(tiny.reason.contains("not a safetensors file"))
    }

    @Test func rejectsOffsetsOutOfRange() throws {
        let header = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
        let error = try #require(try readError(of: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 8))))
        #expect(error.reason.contains("tensor 'x'"))
        #expect(error.reason.contains("data_offsets [8, 16] run past the data buffer of 8 bytes"))
    }

    @Test func rejectsOverlappingOffsets() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let error = try #require(try readError(of: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 12))))
        #expect(error.reason.contains("tensors 'a' and 'b' overlap"))
    }

    @Test func rejectsSizesThatDoNotMatchTheShape() throws {
        let header = #"{"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        let error = try #require(try readError(of: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 16))))
        #expect(error.reason == "tensor 'x': data_offsets [0, 12] do not match shape [2, 2] of F32 (16 bytes)")

        let overflowing = #"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#
        let tooMany = try #require(try readError(of: rawSafeTensors(header: overflowing, data: [0, 0, 0, 0])))
        #expect(tooMany.reason.contains("too many elements"))

        let bytesOverflow = #"{"x":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}"#
        let tooManyBytes = try #require(try readError(of: rawSafeTensors(header: bytesOverflow, data: [0, 0, 0, 0])))
        #expect(tooManyBytes.reason.contains("do not match shape"))
    }

    @Test func rejectsUnknownDTypes() throws {
        let header = #"{"x":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}}"#
        let error = try #require(try readError(of: rawSafeTensors(header: header, data: [UInt8](repeating: 0, count: 8))))
        #expect(error.reason.contains("tensor 'x': unsupported dtype 'Q4_K'"))
    }

    @Test func rejectsMalformedEntries() throws {
        let cases: [(header: String, expected: String)] = [
            (#"{"x":5}"#, "the entry is not a JSON object"),
            (#"{"x":{"shape":[1],"data_offsets":[0,4]}}"#, "missing or non-string dtype"),
            (#"{"x":{"dtype":"F32","data_offsets":[0,4]}}"#, "shape must be"),
            (#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "shape must be"),
            (#"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, "shape must be"),
            (#"{"x":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, "shape must be"),
            (#"{"x":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, "shape must be"),
            (#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, "data_offsets must be"),
            (#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#, "data_offsets must be"),
            (#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, "end before they begin"),
            (#"{"__metadata__":{"n":1}}"#, "__metadata__ value for 'n' is not a string"),
            (#"{"__metadata__":[1]}"#, "__metadata__ is not a JSON object"),
        ]
        for (header, expected) in cases {
            let error = try readError(of: rawSafeTensors(header: header, data: [0, 0, 0, 0]))
            #expect(error?.reason.contains(expected) == true, "\(header) -> \(error?.reason ?? "no error")")
        }
    }

    @Test func rejectsTruncatedData() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/model.safetensors"
        try SafeTensors.write([NamedTensor(name: "w", shape: [4], values: [1, 2, 3, 4])], metadata: [:], to: path)
        var file = try bytes(atPath: path)
        file.removeLast(5)
        let error = try #require(try readError(of: file))
        #expect(error.reason.contains("tensor 'w'"))
        #expect(error.reason.contains("truncated file"))
    }

    @Test func rejectsMissingFilesAndFolders() throws {
        let missing = #expect(throws: SafeTensorsError.self) { try SafeTensors.read(path: "/nonexistent/model.safetensors") }
        #expect(missing?.path == "/nonexistent/model.safetensors")
        #expect(missing?.reason.contains("cannot open") == true)

        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let directory = #expect(throws: SafeTensorsError.self) { try SafeTensors.read(path: folder) }
        #expect(directory?.reason.contains("not a regular file") == true)
    }

    // MARK: Failed writes

    @Test func writingIntoAMissingFolderThrows() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/missing/model.safetensors"
        let error = #expect(throws: SafeTensorsError.self) {
            try SafeTensors.write([NamedTensor(name: "a", shape: [1], values: [1])], metadata: [:], to: path)
        }
        #expect(error?.path == path)
        #expect(error?.reason.contains("No such file or directory") == true)
        #expect(!FileManager.default.fileExists(atPath: folder + "/missing"))
    }

    @Test func writingIntoAReadOnlyFolderThrowsAndKeepsTheOldFile() throws {
        let folder = try makeTempFolder()
        defer {
            chmod(folder, 0o755)
            removeFolder(folder)
        }
        let tensor = NamedTensor(name: "a", shape: [2], values: [1, 2])
        let replacement = NamedTensor(name: "b", shape: [1], values: [3])

        chmod(folder, 0o555)
        let probe = folder + "/probe"
        let folderIsWritable = FileManager.default.createFile(atPath: probe, contents: Data())
        chmod(folder, 0o755)

        if folderIsWritable {
            // Running as root: mode bits do not stop writes. Use a "folder" that is a regular file.
            try? FileManager.default.removeItem(atPath: probe)
            let regularFile = folder + "/not-a-folder"
            try writeBytes(Array("keep me".utf8), toPath: regularFile)
            let path = regularFile + "/model.safetensors"
            let error = #expect(throws: SafeTensorsError.self) { try SafeTensors.write([replacement], metadata: [:], to: path) }
            #expect(error?.path == path)
            #expect(error?.reason.contains("Not a directory") == true)
            #expect(try bytes(atPath: regularFile) == Array("keep me".utf8))
        } else {
            let path = folder + "/model.safetensors"
            try SafeTensors.write([tensor], metadata: [:], to: path)
            let before = try bytes(atPath: path)
            chmod(folder, 0o555)
            let error = #expect(throws: SafeTensorsError.self) { try SafeTensors.write([replacement], metadata: [:], to: path) }
            chmod(folder, 0o755)
            #expect(error?.path == path)
            #expect(try bytes(atPath: path) == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.safetensors"])
        }
    }

    @Test func aFailedWriteLeavesTheOldFileUntouched() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/model.safetensors"
        try SafeTensors.write([NamedTensor(name: "a", shape: [2], values: [1, 2])], metadata: ["v": "1"], to: path)
        let before = try bytes(atPath: path)

        // Block the temp path with a folder so creating the temp file fails (works even as root).
        let tempPath = "\(path).tmp-\(getpid())"
        try FileManager.default.createDirectory(atPath: tempPath, withIntermediateDirectories: false)
        let error = #expect(throws: SafeTensorsError.self) {
            try SafeTensors.write([NamedTensor(name: "b", shape: [1], values: [3])], metadata: [:], to: path)
        }
        #expect(error?.path == path)
        #expect(error?.reason.contains("cannot create temp file") == true)
        #expect(try bytes(atPath: path) == before)
        try FileManager.default.removeItem(atPath: tempPath)

        // Invalid tensors are refused before anything touches the disk.
        let invalid: [[NamedTensor]] = [
            [NamedTensor(name: "a", shape: [3], values: [1, 2])],
            [NamedTensor(name: "a", shape: [-1], values: [])],
            [NamedTensor(name: "a", shape: [1], values: [1]), NamedTensor(name: "a", shape: [1], values: [2])],
            [NamedTensor(name: "__metadata__", shape: [1], values: [1])],
        ]
        for tensors in invalid {
            #expect(throws: SafeTensorsError.self) { try SafeTensors.write(tensors, metadata: [:], to: path) }
        }
        #expect(try bytes(atPath: path) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.safetensors"])
    }
}

// MARK: - SHA-256

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(of: Array(("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
            + "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu").utf8))
            == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        #expect(SHA256.hex(of: [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func incrementalUpdatesMatchOneShot() {
        let message = pseudoRandomBytes(count: 1000, seed: 7)
        let expected = SHA256.hex(of: message)
        for pieceSize in [1, 3, 55, 56, 63, 64, 65, 127, 999] {
            var hasher = SHA256Hasher()
            var start = 0
            while start < message.count {
                let end = min(start + pieceSize, message.count)
                message[start..<end].withUnsafeBytes { hasher.update($0) }
                start = end
            }
            #expect(hasher.finalizeHex() == expected, "piece size \(pieceSize)")
        }
    }

    @Test func hashesFilesInChunks() throws {
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let path = folder + "/million-a"
        try writeBytes([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000), toPath: path)
        #expect(try SHA256.hex(ofFileAt: path) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")

        // Longer than one 1 MiB read chunk, with a ragged end.
        let bigPath = folder + "/big"
        let big = pseudoRandomBytes(count: (1 << 21) + 77, seed: 3)
        try writeBytes(big, toPath: bigPath)
        #expect(try SHA256.hex(ofFileAt: bigPath) == SHA256.hex(of: big))

        let emptyPath = folder + "/empty"
        try writeBytes([], toPath: emptyPath)
        #expect(try SHA256.hex(ofFileAt: emptyPath) == SHA256.hex(of: []))

        let error = #expect(throws: SHA256Error.self) { try SHA256.hex(ofFileAt: folder + "/missing") }
        #expect(error?.path == folder + "/missing")
    }
}

// MARK: - Downloads

@Suite struct DownloaderTests {
    static let payload = pseudoRandomBytes(count: 300_000, seed: 42)

    @Test func fetchesAndVerifies() throws {
        let server = try LoopbackHTTPServer(files: ["/data/blob.bin": Self.payload])
        defer { server.stop() }
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let destination = folder + "/nested/deeper/blob.bin"

        // Upper-case sums are accepted too.
        try Downloader.fetch(server.url("/data/blob.bin"), to: destination,
                             sha256: SHA256.hex(of: Self.payload).uppercased(), timeout: 10)
        #expect(try bytes(atPath: destination) == Self.payload)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/nested/deeper") == ["blob.bin"])
        #expect(server.requestCount == 1)
    }

    @Test func aChecksumMismatchThrowsAndLeavesNoFile() throws {
        let server = try LoopbackHTTPServer(files: ["/blob.bin": Self.payload])
        defer { server.stop() }
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let destination = folder + "/blob.bin"
        let wrong = String(repeating: "0", count: 64)
        let url = server.url("/blob.bin")

        let error = #expect(throws: DownloadError.self) { try Downloader.fetch(url, to: destination, sha256: wrong, timeout: 10) }
        #expect(error?.url == url.absoluteString)
        #expect(error?.reason.contains(wrong) == true)
        #expect(error?.reason.contains(SHA256.hex(of: Self.payload)) == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)

        // An existing file at the destination survives a failed download.
        try writeBytes(Array("old".utf8), toPath: destination)
        #expect(throws: DownloadError.self) { try Downloader.fetch(url, to: destination, sha256: wrong, timeout: 10) }
        #expect(try bytes(atPath: destination) == Array("old".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["blob.bin"])
    }

    @Test func a404Throws() throws {
        let server = try LoopbackHTTPServer(files: [:])
        defer { server.stop() }
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let destination = folder + "/missing.bin"
        let error = #expect(throws: DownloadError.self) {
            try Downloader.fetch(server.url("/missing.bin"), to: destination, sha256: SHA256.hex(of: []), timeout: 10)
        }
        #expect(error?.reason.contains("HTTP status 404") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func aRefusedConnectionThrows() throws {
        let server = try LoopbackHTTPServer(files: [:])
        let url = server.url("/gone.bin")
        server.stop()
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let error = #expect(throws: DownloadError.self) {
            try Downloader.fetch(url, to: folder + "/gone.bin", sha256: SHA256.hex(of: []), timeout: 5)
        }
        #expect(error?.reason.contains("transfer failed") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func aStalledTransferTimesOut() throws {
        let server = try LoopbackHTTPServer(files: [:], stalls: ["/slow.bin"])
        defer { server.stop() }
        let folder = try makeTempFolder()
        defer { removeFolder(folder) }
        let start = Date()
        let error = #expect(throws: DownloadError.self) {
            try Downloader.fetch(server.url("/slow.bin"), to: folder + "/slow.bin", sha256: SHA256.hex(of: []), timeout: 1)
        }
        #expect(error?.reason.contains("timed out") == true)
        #expect(Date().timeIntervalSince(start) < 4.5)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func aMalformedChecksumIsRefused() throws {
        let error = #expect(throws: DownloadError.self) {
            try Downloader.fetch(URL(string: "http://127.0.0.1:9/x")!, to: "/tmp/unused-\(UUID().uuidString)", sha256: "abc")
        }
        #expect(error?.reason.contains("not 64 hex digits") == true)
    }
}
