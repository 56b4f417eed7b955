// Reliability of the built `cnn` under the failures a long run meets: SIGKILL at any moment, a full disk and a
// read-only checkpoint folder. Each must leave checkpoints that load, and never a partial `best`.
import Foundation
import Testing
import TestSupport

/// Starts `cnn` with output discarded, for runs that the test ends itself.
func startCNN(_ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = try cnnExecutable()
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// A small deterministic generator for kill times (SplitMix64).
struct KillClock {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func seconds(in range: ClosedRange<Double>) -> Double {
        range.lowerBound + Double(next() >> 11) / Double(1 << 53) * (range.upperBound - range.lowerBound)
    }
}

@Suite("cnn under failure", .serialized)
struct ReliabilityTests {
    /// One-step epochs, so that most of a run's time is spent writing checkpoints and most kills land inside a write.
    func trainArguments(_ directory: String) throws -> [String] {
        ["train", "lenet5", "--epochs", "100000", "--steps-per-epoch", "1", "--validation-steps", "1",
         "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()]
    }

    func expectLoads(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let run = try cnn(["evaluate", "--checkpoint", path, "--json", "--data-dir", try sharedDataRoot()])
        #expect(run.status == 0, "\(path) does not load after SIGKILL: \(run.error)", sourceLocation: sourceLocation)
    }

    @Test func sigkillAtRandomMomentsNeverLeavesACheckpointThatFailsToLoad() throws {
        let directory = scratch("sigkill")
        let last = directory + "/last.safetensors", best = directory + "/best.safetensors"
        var clock = KillClock(state: 2026)
        var killsInsideAWrite = 0
        let kills = 24
        for iteration in 0..<kills {
            let resume = FileManager.default.fileExists(atPath: last)
            let process = try startCNN(try trainArguments(directory) + (resume ? ["--resume"] : []))
            // Loading MNIST takes about a quarter of a second; the kills spread over the loading and many epochs.
            Thread.sleep(forTimeInterval: clock.seconds(in: 0.15...1.2))
            if iteration % 2 == 1 {
                // Every other kill waits for a checkpoint being written (its temporary file), to strike inside it.
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline, process.isRunning,
                      !((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).contains(where: { $0.contains(".tmp-") }) {
                    usleep(200)
                }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)

            let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            if names.contains(where: { $0.contains(".tmp-") }) { killsInsideAWrite += 1 }
            for path in [last, best] where FileManager.default.fileExists(atPath: path) {
                try expectLoads(path)
            }
        }
        // The files of killed runs are a few hundred kilobytes each; the next run clears them away.
        print("sigkill: \(kills) kills, \(killsInsideAWrite) of them while a checkpoint was being written")
        #expect(killsInsideAWrite >= kills / 4, "only \(killsInsideAWrite) kills landed inside a checkpoint write")

        // A final run resumes, is interrupted cleanly, and leaves exactly the two checkpoints behind.
        let process = Process()
        process.executableURL = try cnnExecutable()
        process.arguments = try trainArguments(directory) + ["--resume"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Drain the output on another thread (a full pipe would block the run), watching for the first epoch.
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var text = ""
            func append(_ data: Data) { lock.lock(); text += String(decoding: data, as: UTF8.self); lock.unlock() }
            var started: Bool { lock.lock(); defer { lock.unlock() }; return text.contains("Epoch ") }
        }
        let seen = Seen()
        let reader = out.fileHandleForReading
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            while case let data = reader.availableData, !data.isEmpty { seen.append(data) }
            drained.signal()
        }
        let deadline = Date().addingTimeInterval(60)
        while !seen.started, Date() < deadline, process.isRunning { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.3)
        process.interrupt()
        let stopBy = Date().addingTimeInterval(30)
        while process.isRunning, Date() < stopBy { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("Ctrl-C did not stop training within 30 s")
        }
        process.waitUntilExit()
        drained.wait()
        #expect(process.terminationStatus == 130)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["best.safetensors", "last.safetensors"])
        try expectLoads(last)
        try expectLoads(best)
    }

    /// Runs a shell command, returning its exit status.
    @discardableResult
    func shell(_ command: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// A disk that fills up during the second epoch's save, then a folder that turns read-only. As root the disk is a
    /// real 1.9 MB tmpfs (two LeNet-5 checkpoints with Adam's state fit, a third does not); otherwise the file size
    /// limit (`ulimit -f`) and the folder's mode bits stand in for them.
    @Test func aFullDiskAndAReadOnlyFolderAreReportedAndKeepThePreviousCheckpoints() throws {
        let directory = scratch("full-disk")
        let mounted = try getuid() == 0 && shell("mount -t tmpfs -o size=1900k cnn-e2e-full '\(directory)'") == 0
        defer { if mounted { _ = try? shell("umount '\(directory)'") } }
        let last = directory + "/last.safetensors", best = directory + "/best.safetensors"
        let arguments = ["train", "lenet5", "--steps-per-epoch", "20", "--validation-steps", "2",
                         "--checkpoint-dir", directory, "--data-dir", try sharedDataRoot()]

        let first = try cnn(arguments + ["--epochs", "1"])
        try #require(first.status == 0, "\(first.error)")
        let lastBefore = try #require(contents(last)), bestBefore = try #require(contents(best))
        #expect(lastBefore.count > 700_000 && lastBefore.count < 800_000, "the tmpfs size assumes 0.74 MB checkpoints")

        // Epoch 2 trains, then its checkpoint does not fit.
        let full: Run
        if mounted {
            full = try cnn(arguments + ["--epochs", "2", "--resume"])
        } else {
            let executable = try cnnExecutable().path
            let quoted = (arguments + ["--epochs", "2", "--resume"]).map { "'\($0)'" }.joined(separator: " ")
            let status = try shell("ulimit -f 1000; exec '\(executable)' \(quoted) 2>'\(directory)/../full-disk.err'")
            full = Run(status: status, output: "",
                       error: (try? String(contentsOfFile: directory + "/../full-disk.err", encoding: .utf8)) ?? "")
        }
        expectCleanFailure(full, naming: last)
        #expect(full.error.contains(mounted ? "No space left on device" : "File too large"), "\(full.error)")
        #expect(contents(last) == lastBefore, "a failed save must leave the previous last.safetensors as it was")
        #expect(contents(best) == bestBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["best.safetensors", "last.safetensors"],
                "a failed save leaves no temporary file behind")

        // Read-only: refused before any training, with the folder named.
        if mounted {
            try #require(try shell("mount -o remount,ro '\(directory)'") == 0)
        } else {
            chmod(directory, 0o555)
        }
        defer { chmod(directory, 0o755) }
        let started = Date()
        let readOnly = try cnn(arguments + ["--epochs", "3", "--resume"])
        expectCleanFailure(readOnly, naming: directory)
        #expect(readOnly.error.contains("cannot be written"), "\(readOnly.error)")
        #expect(!readOnly.output.contains("Epoch 2/3"), "the folder must be checked before training starts")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(contents(last) == lastBefore && contents(best) == bestBefore)
    }
}
