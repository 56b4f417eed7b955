// The IDX reader on the real files and on broken ones, and the data locator.
import Foundation
import Testing
import TestSupport
import ClassicCNN
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo

@Suite("MNIST")
struct MNISTTests {
    @Test func realFilesHaveThePublishedLabelCounts() throws {
        let directory = try sharedDataRoot() + "/mnist"
        let train = try MNIST.load(.train, from: directory), test = try MNIST.load(.test, from: directory)
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train.height == 28 && train.width == 28 && train.channels == 1)
        func counts(_ d: ImageDataset) -> [Int] { (0...9).map { digit in d.labels.filter { $0 == digit }.count } }
        #expect(counts(train) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        #expect(counts(test) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
        // The first test image is a 7, and its centre pixel row has ink.
        #expect(test.labels[0] == 7)
        #expect(test.pixels[(14 * 28)..<(15 * 28)].contains { $0 > 128 })
    }

    @Test func theRepositoryShipsTheSameFiles() throws {
        let shipped = FileManager.default.currentDirectoryPath + "/Data/mnist"
        for (name, sum) in MNIST.files {
            #expect(try SHA256.hex(ofFileAt: "\(shipped)/\(name)") == sum, "\(name)")
        }
    }

    private func write(_ bytes: [UInt8], _ name: String) -> String {
        let path = freshDirectory("idx") + "/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    private func idx(_ dims: [Int], data: [UInt8], magic: [UInt8]? = nil) -> [UInt8] {
        var bytes = magic ?? [0, 0, 8, UInt8(dims.count)]
        for d in dims { bytes += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return bytes + data
    }

    @Test func readsAValidFile() throws {
        let path = write(idx([2, 2, 3], data: Array(0..<12)), "ok")
        let (dims, bytes) = try MNIST.readIDX(path: path)
        #expect(dims == [2, 2, 3] && bytes == Array(0..<12))
    }

    @Test func rejectsATruncatedFile() {
        let path = write(idx([60000, 28, 28], data: Array(repeating: 0, count: 1000)), "truncated")
        #expect { try MNIST.readIDX(path: path) } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("truncated")
        }
    }

    @Test func rejectsAWrongMagicNumber() {
        let path = write(idx([4], data: [1, 2, 3, 4], magic: [0x50, 0x4B, 3, 4]), "zip")
        #expect { try MNIST.readIDX(path: path) } throws: { "\($0)".contains("wrong magic number") && "\($0)".contains(path) }
        let floats = write(idx([1], data: [0, 0, 0, 0], magic: [0, 0, 0x0D, 1]), "floats")
        #expect { try MNIST.readIDX(path: floats) } throws: { "\($0)".contains("not unsigned bytes") }
    }

    @Test func rejectsALyingHeaderWithoutAllocatingIt() {
        // Claims 2^31 - 1 images: must fail on the size check, not try to allocate.
        let path = write(idx([0x7FFF_FFFF, 28, 28], data: []), "liar")
        #expect { try MNIST.readIDX(path: path) } throws: { "\($0)".contains("truncated") }
    }

    @Test func rejectsACorruptGzipStream() throws {
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: sharedDataRoot() + "/mnist/t10k-labels-idx1-ubyte.gz")))
        let path = write(Array(good.prefix(good.count / 2)), "t10k-labels-idx1-ubyte.gz")
        #expect { try MNIST.readIDX(path: path) } throws: { "\($0)".contains("gzip") && "\($0)".contains(path) }
    }

    @Test func labelsOutsideZeroToNineAreReported() throws {
        let directory = freshDirectory("badlabels")
        let images = idx([2, 28, 28], data: Array(repeating: 0, count: 2 * 784))
        #expect(FileManager.default.createFile(atPath: directory + "/t10k-images-idx3-ubyte", contents: Data(images)))
        #expect(FileManager.default.createFile(atPath: directory + "/t10k-labels-idx1-ubyte", contents: Data(idx([2], data: [3, 12]))))
        #expect { try MNIST.load(.test, from: directory) } throws: { "\($0)".contains("label 12") }
    }

    @Test func dataDirIsAuthoritative() {
        let empty = freshDirectory("nomnist")
        #expect { try DataLocator.mnistDirectory(dataDirectory: empty) } throws: { "\($0)".contains(empty) }
    }

    @Test func downloadsIntoTheCacheFromAMirrorAndChecksTheSums() throws {
        let root = try sharedDataRoot() + "/mnist"
        var files: [String: [UInt8]] = [:]
        for (name, _) in MNIST.files {
            files["/mnist/" + name] = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(root)/\(name)")))
        }
        let server = try LoopbackHTTPServer(files: files)
        defer { server.stop() }
        let cache = freshDirectory("cache") + "/mnist"
        let mirror = URL(string: "http://127.0.0.1:\(server.port)/mnist/")!
        let directory = try DataLocator.downloadMNIST(into: cache, from: mirror)
        #expect(MNIST.isPresent(in: directory))
        #expect(try MNIST.load(.test, from: directory).count == 10_000)

        // A mirror serving a wrong file: the checksum stops it and nothing is left behind.
        var tampered = files
        tampered["/mnist/t10k-labels-idx1-ubyte.gz"]![100] ^= 0xFF
        let bad = try LoopbackHTTPServer(files: tampered)
        defer { bad.stop() }
        let other = freshDirectory("cache2")
        #expect { try DataLocator.downloadMNIST(into: other, from: URL(string: "http://127.0.0.1:\(bad.port)/mnist/")!) } throws: {
            "\($0)".contains("t10k-labels-idx1-ubyte.gz")
        }
        #expect(!FileManager.default.fileExists(atPath: other + "/t10k-labels-idx1-ubyte.gz"))
    }
}
