// The Python that the interop tests run to check our files with the real tools (TensorBoard's reader, ...).
import Foundation

/// Why there is no Python for the interop tests.
public struct TestPythonError: Error, CustomStringConvertible {
    public let description: String
}

/// $CNN_TEST_PYTHON if set (and then only it); else the repository's .venv-ci, made on first use by
/// Scripts/make-test-venv.sh (Scripts/test-requirements.txt; it locks, so that parallel tests make it once), and
/// so `swift test` works on a fresh clone. Throws, saying what failed, when there is no such Python.
public func testPython() throws -> String {
    if let chosen = ProcessInfo.processInfo.environment["CNN_TEST_PYTHON"], !chosen.isEmpty {
        guard FileManager.default.isExecutableFile(atPath: chosen) else {
            throw TestPythonError(description: "CNN_TEST_PYTHON is \(chosen), which is not an executable")
        }
        return chosen
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: root + "/Scripts/make-test-venv.sh")
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestPythonError(description: "Scripts/make-test-venv.sh failed (exit \(process.terminationStatus)); set CNN_TEST_PYTHON to a "
            + "Python with Scripts/test-requirements.txt installed:\n\(message)")
    }
    return root + "/.venv-ci/bin/python"
}
