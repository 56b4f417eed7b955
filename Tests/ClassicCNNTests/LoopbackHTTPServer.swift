// LoopbackHTTPServer.swift
//
// A tiny HTTP/1.1 server for tests: listens on 127.0.0.1 on an ephemeral port, answers GET
// requests from a fixed [path: body] table (404 otherwise), one connection at a time, closing
// each after its response; "stalling" paths get no answer at all, to exercise client timeouts. It runs on a background thread, stops when asked (or by itself after
// `lifetime` seconds), and every wait in it is bounded, so it can never spin on after a test.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback-only HTTP server serving fixed bodies, for tests.
final class LoopbackHTTPServer: @unchecked Sendable {
    /// Failures to set up the listening socket.
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// The port the server listens on (127.0.0.1).
    let port: UInt16
    /// The bodies served, by request path (e.g. "/data.bin").
    let files: [String: [UInt8]]
    /// Paths whose requests are never answered: the connection is held open (at most
    /// `stallLimit` seconds, or until `stop()`) and then closed without a response.
    let stalls: Set<String>
    /// Paths whose first response promises the whole body but sends only this many bytes before closing (a
    /// transfer that breaks off); later requests get the whole body.
    let truncations: [String: Int]
    private var requests: [(path: String, range: String?)] = []
    /// The longest a stalled connection is held.
    let stallLimit: TimeInterval = 5

    private let listener: Int32
    private let lock = NSLock()
    private var stopRequested = false
    private var served = 0
    private let finished = DispatchSemaphore(value: 0)
    private let deadline: Date

    /// Starts serving `files` at once on a background thread.
    /// - Parameters:
    ///   - files: The bodies to serve, by request path.
    ///   - stalls: Paths whose requests get no response.
    ///   - lifetime: Seconds after which the server stops by itself, whatever happens.
    init(files: [String: [UInt8]], stalls: Set<String> = [], truncations: [String: Int] = [:], lifetime: TimeInterval = 60) throws {
        self.files = files
        self.stalls = stalls
        self.truncations = truncations
        self.deadline = Date().addingTimeInterval(lifetime)

        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw SetupError(description: "bind/listen: \(reason)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw SetupError(description: "getsockname: \(String(cString: strerror(errno)))")
        }
        self.listener = fd
        self.port = UInt16(bigEndian: address.sin_port)

        let thread = Thread { [self] in
            self.run()
            self.finished.signal()
        }
        thread.start()
    }

    /// The URL of `path` on this server.
    func url(_ path: String) -> URL {
        URL(string: "http://127.0.0.1:\(port)\(path)")!
    }

    /// Request paths with their Range header, in order (for tests of resumed downloads).
    var requestLog: [(path: String, range: String?)] {
        lock.lock()
        defer { lock.unlock() }
        return requests
    }

    /// How many requests have been answered so far.
    var requestCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return served
    }

    /// Stops the server and waits (at most a few seconds) for its thread to end. Safe to call twice.
    func stop() {
        lock.lock()
        let already = stopRequested
        stopRequested = true
        lock.unlock()
        guard !already else { return }
        _ = finished.wait(timeout: .now() + 5)
    }

    deinit {
        stop()
    }

    private var shouldStop: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopRequested || Date() >= deadline
    }

    /// The accept loop: polls in 50 ms steps so a stop is noticed promptly.
    private func run() {
        defer { close(listener) }
        while !shouldStop {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 50)
            guard ready > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            close(client)
        }
    }

    /// Reads one request (bounded in size and time) and writes the response.
    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        var request = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while request.count < 64 * 1024 {
            let got = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard got > 0 else { break }
            request.append(contentsOf: chunk[0..<got])
            if containsSubsequence(request, terminator) { break }
        }

        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        if parts.count >= 2, stalls.contains(String(parts[1])) {
            let giveUp = Date().addingTimeInterval(stallLimit)
            while !shouldStop && Date() < giveUp {
                usleep(20_000)
            }
            return
        }
        let path = parts.count >= 2 ? String(parts[1]) : ""
        let headers = String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n")
        let range = headers.first { $0.lowercased().hasPrefix("range: bytes=") }.map { String($0.dropFirst("range: bytes=".count)) }
        lock.lock()
        let earlier = requests.filter { $0.path == path }.count
        requests.append((path, range))
        lock.unlock()
        var status: String
        var body: [UInt8]
        var extraHeaders = ""
        var promised: Int? = nil
        if parts.count >= 2, parts[0] == "GET", let file = files[path] {
            status = "200 OK"
            body = file
            // "Range: bytes=N-": the rest from N (206), or 416 when N is at or past the end.
            if let range, let start = Int(range.split(separator: "-").first ?? "") {
                if start >= file.count {
                    status = "416 Range Not Satisfiable"
                    body = []
                    extraHeaders = "Content-Range: bytes */\(file.count)\r\n"
                } else {
                    status = "206 Partial Content"
                    body = Array(file[start...])
                    extraHeaders = "Content-Range: bytes \(start)-\(file.count - 1)/\(file.count)\r\n"
                }
            }
            if earlier == 0, let cut = truncations[path], cut < body.count {
                promised = body.count
                body = Array(body.prefix(cut))
            }
        } else {
            status = "404 Not Found"
            body = Array("not found\n".utf8)
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: application/octet-stream\r\n" + extraHeaders
            + "Content-Length: \(promised ?? body.count)\r\nConnection: close\r\n\r\n"
        var response = Array(head.utf8)
        response.append(contentsOf: body)
        body = []
        sendAll(client, response)
        shutdown(client, Int32(SHUT_WR))

        lock.lock()
        served += 1
        lock.unlock()
    }

    /// Sends every byte, giving up on the first error (the client may have gone away).
    private func sendAll(_ client: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                #if canImport(Glibc)
                let flags = Int32(MSG_NOSIGNAL)
                #else
                let flags: Int32 = 0
                #endif
                let sent = send(client, raw.baseAddress! + offset, raw.count - offset, flags)
                guard sent > 0 else { return }
                offset += sent
            }
        }
    }

    private func containsSubsequence(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}
