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

/// Synchronous, checksum-verified, resumable downloads.
public enum Downloader {
    /// What a download must hash to.
    public enum Checksum: Sendable {
        /// The SHA-256 as 64 hex digits (case-insensitive).
        case sha256(String)
        /// The first hex digits of the SHA-256, as torchvision's file names carry them (`vgg16-397923af.pth`): what
        /// torch.hub checks.
        case sha256Prefix(String)
    }

    /// Downloads `url` to the file `destination`, verifying its SHA-256 before it is put in place.
    ///
    /// The body is saved to `<destination>.part` (its folder created if missing), hashed, and renamed over
    /// `destination` only if the hash matches; otherwise the partial file is deleted and the destination is left as
    /// it was. A transfer that breaks off after some bytes leaves the `.part` file, and the next call resumes it
    /// with an HTTP range request (a server that ignores ranges sends the whole file again). The call blocks until
    /// the transfer ends.
    ///
    /// - Parameters:
    ///   - url: The resource to fetch; an HTTP(S) response must have status 200 (206 when resuming).
    ///   - destination: The file path to write.
    ///   - sha256: The expected SHA-256 as 64 hex digits (case-insensitive).
    ///   - timeout: Seconds the transfer may go without receiving data before it fails.
    ///   - progress: Called now and then with the bytes received so far and the total, when the server gives it.
    /// - Throws: `DownloadError` naming the URL: a malformed checksum, a transport error or timeout,
    ///   a status other than 200, a file-system failure, or a checksum mismatch (giving both sums).
    public static func fetch(_ url: URL, to destination: String, sha256: String, timeout: TimeInterval = 60,
                             progress: ((_ received: Int, _ total: Int?) -> Void)? = nil) throws {
        try fetch(url, to: destination, checksum: .sha256(sha256), timeout: timeout, progress: progress)
    }

    /// As `fetch(_:to:sha256:timeout:progress:)`, with the checksum given as a whole SHA-256 or its first digits.
    public static func fetch(_ url: URL, to destination: String, checksum: Checksum, timeout: TimeInterval = 60,
                             progress: ((_ received: Int, _ total: Int?) -> Void)? = nil) throws {
        func fail(_ reason: String) -> DownloadError { DownloadError(url: url.absoluteString, reason: reason) }

        let expected: String
        switch checksum {
        case .sha256(let hex):
            expected = hex.lowercased()
            guard expected.count == 64, expected.allSatisfy({ $0.isHexDigit }) else {
                throw fail("expected SHA-256 '\(hex)' is not 64 hex digits")
            }
        case .sha256Prefix(let hex):
            expected = hex.lowercased()
            guard (6...64).contains(expected.count), expected.allSatisfy({ $0.isHexDigit }) else {
                throw fail("expected SHA-256 prefix '\(hex)' is not 6 to 64 hex digits")
            }
        }

        let fileManager = FileManager.default
        let folder = URL(fileURLWithPath: destination).deletingLastPathComponent()
        do {
            try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw fail("cannot create folder \(folder.path): \(error.localizedDescription)")
        }
        let partPath = destination + ".part"
        // One download of a file at a time: a second process would append to the same partial file. The lock file
        // lives in the temporary folder, named by the destination, and stays: removing it would let a later process
        // lock a new file while this one still holds the old.
        let lockPath = NSTemporaryDirectory() + "/classiccnn-download-" + SHA256.hex(of: Array(destination.utf8)).prefix(24) + ".lock"
        let lock = open(lockPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw fail("cannot create \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { throw fail("another process is downloading \(destination)") }

        try download(url, to: partPath, timeout: timeout, progress: progress)

        let actual: String
        do {
            actual = try SHA256.hex(ofFileAt: partPath)
        } catch {
            try? fileManager.removeItem(atPath: partPath)
            throw fail("cannot hash the download: \(error)")
        }
        guard actual.hasPrefix(expected) else {
            try? fileManager.removeItem(atPath: partPath)
            throw fail("SHA-256 mismatch: expected \(expected)\(expected.count < 64 ? "..." : ""), got \(actual) (the file was removed)")
        }
        guard rename(partPath, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            throw fail("cannot move the download to \(destination): \(reason)")
        }
    }

    /// Downloads `url` into `partPath`, resuming what it holds; a failure before any byte arrived leaves nothing.
    private static func download(_ url: URL, to partPath: String, timeout: TimeInterval,
                                 progress: ((Int, Int?) -> Void)?) throws {
        if !FileManager.default.fileExists(atPath: partPath) {
            guard FileManager.default.createFile(atPath: partPath, contents: nil) else {
                throw DownloadError(url: url.absoluteString, reason: "cannot create \(partPath)")
            }
        }
        guard let handle = FileHandle(forUpdatingAtPath: partPath) else {
            throw DownloadError(url: url.absoluteString, reason: "cannot open \(partPath) for writing")
        }
        let already = Int((try? handle.seekToEnd()) ?? 0)
        let receiver = Receiver(handle: handle, resumingFrom: already, progress: progress)

        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration, delegate: receiver, delegateQueue: nil)
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        if already > 0 { request.setValue("bytes=\(already)-", forHTTPHeaderField: "Range") }
        session.dataTask(with: request).resume()
        receiver.done.wait()
        session.finishTasksAndInvalidate()
        try? handle.close()

        if let failure = receiver.failure {
            // Nothing worth resuming: leave no file behind.
            if receiver.received == 0 { try? FileManager.default.removeItem(atPath: partPath) }
            let kept = receiver.received > 0 ? " (\(receiver.received) bytes kept in \(partPath): run again to resume)" : ""
            throw DownloadError(url: url.absoluteString, reason: failure + kept)
        }
    }

    /// A transport error in words.
    fileprivate static func describe(_ error: Error, timeout: TimeInterval) -> String {
        guard let urlError = error as? URLError else { return "transfer failed: \(error.localizedDescription)" }
        switch urlError.code {
        case .timedOut: return "transfer failed: timed out (no data for \(timeout) s)"
        case .cannotConnectToHost: return "transfer failed: cannot connect to the host"
        case .cannotFindHost: return "transfer failed: cannot find the host"
        case .notConnectedToInternet: return "transfer failed: not connected to the network"
        case .networkConnectionLost: return "transfer failed: the connection was lost"
        default: return "transfer failed: \(urlError.localizedDescription) (URLError \(urlError.code.rawValue))"
        }
    }

    /// Writes the body into the partial file as it arrives; its fields are written by the session's delegate queue
    /// and read after `done` is signalled.
    private final class Receiver: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let handle: FileHandle
        let progress: ((Int, Int?) -> Void)?
        let done = DispatchSemaphore(value: 0)
        var received: Int
        var total: Int?
        var failure: String?

        init(handle: FileHandle, resumingFrom offset: Int, progress: ((Int, Int?) -> Void)?) {
            self.handle = handle
            self.received = offset
            self.progress = progress
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
            let status = (response as? HTTPURLResponse)?.statusCode ?? 200
            let length = response.expectedContentLength > 0 ? Int(response.expectedContentLength) : nil
            switch status {
            case 206 where received > 0:
                // "Content-Range: bytes START-END/TOTAL": the server continues where the partial file ends.
                let range = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Range") ?? ""
                let start = range.split(separator: " ").last?.split(separator: "-").first.flatMap { Int($0) }
                guard start == received else {
                    failure = "the server resumed at \(range.isEmpty ? "an unknown offset" : range), not at byte \(received)"
                    return completionHandler(.cancel)
                }
                total = range.split(separator: "/").last.flatMap { Int($0) } ?? length.map { $0 + received }
            case 200:
                // A fresh start (or a server that ignores ranges): the partial file starts over.
                do { try handle.truncate(atOffset: 0) } catch {
                    failure = "cannot rewrite the partial file: \(error.localizedDescription)"
                    return completionHandler(.cancel)
                }
                received = 0
                total = length
            case 416 where received > 0:
                // The partial file already holds everything: nothing more to fetch.
                total = received
                return completionHandler(.cancel)
            default:
                failure = "HTTP status \(status)"
                return completionHandler(.cancel)
            }
            progress?(received, total)
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            guard failure == nil else { return }
            do { try handle.write(contentsOf: data) } catch {
                failure = "cannot write the download: \(error.localizedDescription)"
                dataTask.cancel()
                return
            }
            received += data.count
            progress?(received, total)
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            if let error, failure == nil, !(total == received && (error as? URLError)?.code == .cancelled) {
                failure = Downloader.describe(error, timeout: task.originalRequest?.timeoutInterval ?? 0)
            }
            if failure == nil, let total, received < total {
                failure = "transfer failed: the connection closed after \(received) of \(total) bytes"
            }
            done.signal()
        }
    }
}
