// Download.swift
//
// Fetching data sets and weights over HTTP(S), verified by SHA-256 before they are put in place:
// the body goes to a temp file beside the destination and is renamed only once its checksum
// matches, so a partial or corrupted download never sits at the destination path.

import Foundation
import ClassicCNNEngine
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A failed download: which URL, and what went wrong.
public struct DownloadError: Error, CustomStringConvertible {
    /// The URL that was being fetched.
    public let url: String
    /// The problem, in words (for example `"HTTP status 404"` or a checksum mismatch).
    public let reason: String

    /// Creates an error for `url` with the given `reason`.
    public init(url: String, reason: String) {
        self.url = url
        self.reason = reason
    }

    /// `"<url>: <reason>"`.
    public var description: String { "\(url): \(reason)" }
}

/// Synchronous, checksum-verified downloads.
public enum Downloader {
    /// Downloads `url` to the file `destination`, verifying its SHA-256 before it is put in place.
    ///
    /// The body is saved to a temp file in the destination's folder (created if missing), hashed,
    /// and renamed over `destination` only if the hash matches; otherwise the temp file is deleted
    /// and the destination is left as it was. The call blocks until the transfer ends.
    ///
    /// - Parameters:
    ///   - url: The resource to fetch; an HTTP(S) response must have status 200.
    ///   - destination: The file path to write.
    ///   - sha256: The expected SHA-256 as 64 hex digits (case-insensitive).
    ///   - timeout: Seconds the transfer may go without receiving data before it fails.
    /// - Throws: `DownloadError` naming the URL: a malformed checksum, a transport error or timeout,
    ///   a status other than 200, a file-system failure, or a checksum mismatch (giving both sums).
    public static func fetch(_ url: URL, to destination: String, sha256: String, timeout: TimeInterval = 60) throws {
        func fail(_ reason: String) -> DownloadError { DownloadError(url: url.absoluteString, reason: reason) }

        let expected = sha256.lowercased()
        guard expected.count == 64, expected.allSatisfy({ $0.isHexDigit }) else {
            throw fail("expected SHA-256 '\(sha256)' is not 64 hex digits")
        }

        let fileManager = FileManager.default
        let destinationURL = URL(fileURLWithPath: destination)
        let folder = destinationURL.deletingLastPathComponent()
        do {
            try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw fail("cannot create folder \(folder.path): \(error.localizedDescription)")
        }
        let tempPath = folder.appendingPathComponent(
            ".\(destinationURL.lastPathComponent).download-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
        ).path

        try download(url, to: tempPath, timeout: timeout)

        let actual: String
        do {
            actual = try SHA256.hex(ofFileAt: tempPath)
        } catch {
            try? fileManager.removeItem(atPath: tempPath)
            throw fail("cannot hash the download: \(error)")
        }
        guard actual == expected else {
            try? fileManager.removeItem(atPath: tempPath)
            throw fail("SHA-256 mismatch: expected \(expected), got \(actual)")
        }
        guard rename(tempPath, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fileManager.removeItem(atPath: tempPath)
            throw fail("cannot move the download to \(destination): \(reason)")
        }
    }

    /// Downloads `url` into the file `tempPath`, checking the HTTP status; nothing is left on failure.
    private static func download(_ url: URL, to tempPath: String, timeout: TimeInterval) throws {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }

        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let task = session.downloadTask(with: request) { location, response, error in
            defer { done.signal() }
            if let error {
                outcome.failure = describe(error, timeout: timeout)
                return
            }
            if let http = response as? HTTPURLResponse, http.statusCode != 200 {
                outcome.failure = "HTTP status \(http.statusCode)"
                return
            }
            guard let location else {
                outcome.failure = "transfer failed: no file was received"
                return
            }
            // The system deletes `location` once this handler returns: move it now.
            do {
                try? FileManager.default.removeItem(atPath: tempPath)
                try FileManager.default.moveItem(at: location, to: URL(fileURLWithPath: tempPath))
            } catch {
                try? FileManager.default.removeItem(atPath: tempPath)
                outcome.failure = "cannot save the download to \(tempPath): \(error.localizedDescription)"
            }
        }
        task.resume()
        done.wait()
        if let failure = outcome.failure {
            throw DownloadError(url: url.absoluteString, reason: failure)
        }
    }

    /// A transport error in words.
    private static func describe(_ error: Error, timeout: TimeInterval) -> String {
        guard let urlError = error as? URLError else { return "transfer failed: \(error.localizedDescription)" }
        switch urlError.code {
        case .timedOut: return "transfer failed: timed out (no data for \(timeout) s)"
        case .cannotConnectToHost: return "transfer failed: cannot connect to the host"
        case .cannotFindHost: return "transfer failed: cannot find the host"
        case .notConnectedToInternet: return "transfer failed: not connected to the network"
        default: return "transfer failed: \(urlError.localizedDescription) (URLError \(urlError.code.rawValue))"
        }
    }

    /// The completion handler's verdict, written once before the semaphore is signalled.
    private final class Outcome: @unchecked Sendable {
        var failure: String?
    }
}
