// Zip archives, read-only: what PyTorch's `torch.save` (1.6 and later) and Keras 3's `.keras` files are. The central
// directory is read and checked against the file's size before anything is allocated; entries are stored (method 0,
// as PyTorch writes them, read straight into their destination) or deflated (method 8, through zlib). Zip64 sizes
// and offsets are understood; encryption, multi-disk archives and other methods are refused by name.
import CCodecs
import ClassicCNNEngine
import Foundation

/// A file opened for reads at any offset, each checked against the file's size.
package final class ReadableFile {
    package let path: String
    package let size: Int
    private let descriptor: Int32

    package init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw FileError(path: path, reason: "not a regular file")
        }
        size = Int(status.st_size)
    }

    deinit { close(descriptor) }

    /// Fills `buffer` from `offset`; a range past the end of the file is an error naming `what`.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, what: String) throws {
        guard offset >= 0, buffer.count <= size, offset <= size - buffer.count else {
            throw FileError(path: path, reason: "truncated: \(what) needs bytes \(offset)..<\(offset + buffer.count), the file has \(size)")
        }
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw FileError(path: path, reason: "cannot read \(what): \(count < 0 ? String(cString: strerror(errno)) : "the file ended early")")
            }
            done += count
        }
    }

    /// `count` bytes from `offset`.
    package func bytes(at offset: Int, count: Int, what: String) throws -> [UInt8] {
        guard count >= 0, count <= size else {
            throw FileError(path: path, reason: "truncated: \(what) claims \(count) bytes, the file has \(size)")
        }
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset, what: what) }
            initialized = count
        }
    }
}

/// A zip archive's table of contents, and its entries' bytes on demand.
package struct ZipArchive {
    package struct Entry {
        package let name: String
        /// 0: stored; 8: deflated.
        package let method: Int
        package let compressedSize: Int
        package let size: Int
        /// Where the entry's (compressed) bytes start in the file.
        package let dataOffset: Int
    }

    package let file: ReadableFile
    /// The entries in the central directory's order.
    package let entries: [Entry]
    private let byName: [String: Int]

    /// The first four bytes of every zip file (a local file header) and of an empty one (the end record).
    package static func hasSignature(_ prefix: [UInt8]) -> Bool {
        prefix.count >= 4 && prefix[0] == 0x50 && prefix[1] == 0x4b && ((prefix[2] == 3 && prefix[3] == 4) || (prefix[2] == 5 && prefix[3] == 6))
    }

    /// Reads the central directory of the zip file at `path`.
    /// - Throws: `FileError` naming the file: no end record, a directory outside the file, an entry whose data lies
    ///   outside it, an encrypted or multi-disk archive, or a name that is absolute or climbs out of its folder.
    package init(path: String) throws {
        try self.init(file: ReadableFile(path: path))
    }

    package init(file: ReadableFile) throws {
        self.file = file
        let path = file.path
        func fail(_ reason: String) -> FileError { FileError(path: path, reason: "not a readable zip archive: \(reason)") }

        // The end of central directory record: 22 bytes and a comment of up to 65,535, at the very end.
        let tailLength = min(file.size, 22 + 65_535)
        let tail = try file.bytes(at: file.size - tailLength, count: tailLength, what: "the end of the zip archive")
        guard let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: { tail.u32($0) == 0x0605_4b50 }) else {
            throw fail("no end of central directory record")
        }
        let endOffset = file.size - tailLength + end
        guard tail.u16(end + 4) == 0, tail.u16(end + 6) == 0 else { throw fail("multi-disk archives are not supported") }
        var count = Int(tail.u16(end + 10))
        var directorySize = Int(tail.u32(end + 12))
        var directoryOffset = Int(tail.u32(end + 16))
        if count == 0xffff || directorySize == 0xffff_ffff || directoryOffset == 0xffff_ffff {
            // Zip64: a locator just before the end record points at the zip64 end record.
            guard endOffset >= 20 else { throw fail("zip64 sizes without a zip64 locator") }
            let locator = try file.bytes(at: endOffset - 20, count: 20, what: "the zip64 locator")
            guard locator.u32(0) == 0x0706_4b50 else { throw fail("zip64 sizes without a zip64 locator") }
            let recordOffset = try Self.checkedInt(locator.u64(8), fail)
            let record = try file.bytes(at: recordOffset, count: 56, what: "the zip64 end record")
            guard record.u32(0) == 0x0606_4b50 else { throw fail("the zip64 locator points at no zip64 end record") }
            count = try Self.checkedInt(record.u64(32), fail)
            directorySize = try Self.checkedInt(record.u64(40), fail)
            directoryOffset = try Self.checkedInt(record.u64(48), fail)
        }
        guard directoryOffset <= file.size, directorySize <= file.size - directoryOffset else {
            throw fail("the central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the file (\(file.size) bytes)")
        }
        // Each directory entry is at least 46 bytes: a count beyond that is a lie told before any allocation.
        guard count <= directorySize / 46 else { throw fail("\(count) entries cannot fit in a central directory of \(directorySize) bytes") }
        let directory = try file.bytes(at: directoryOffset, count: directorySize, what: "the central directory")

        var entries: [Entry] = []
        var byName: [String: Int] = [:]
        var position = 0
        for index in 0..<count {
            guard position + 46 <= directory.count, directory.u32(position) == 0x0201_4b50 else {
                throw fail("central directory entry \(index) is malformed")
            }
            let flags = directory.u16(position + 8)
            let method = Int(directory.u16(position + 10))
            var compressedSize = UInt64(directory.u32(position + 20))
            var size = UInt64(directory.u32(position + 24))
            let nameLength = Int(directory.u16(position + 28)), extraLength = Int(directory.u16(position + 30))
            let commentLength = Int(directory.u16(position + 32))
            var localOffset = UInt64(directory.u32(position + 42))
            let nameStart = position + 46, extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= directory.count else { throw fail("central directory entry \(index) runs past the directory") }
            let name = String(decoding: directory[nameStart..<extraStart], as: UTF8.self)
            // The zip64 extra field holds, in order, whichever of the three sizes are 0xffffffff above.
            var extra = extraStart
            while extra + 4 <= extraStart + extraLength {
                let id = directory.u16(extra), length = Int(directory.u16(extra + 2))
                guard extra + 4 + length <= extraStart + extraLength else { break }
                if id == 1 {
                    var field = extra + 4
                    func take(_ value: inout UInt64) throws {
                        guard value == 0xffff_ffff else { return }
                        guard field + 8 <= extra + 4 + length else { throw fail("entry '\(name)': a short zip64 field") }
                        value = directory.u64(field)
                        field += 8
                    }
                    try take(&size)
                    try take(&compressedSize)
                    try take(&localOffset)
                }
                extra += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("entry '\(name)' is encrypted") }
            guard !name.hasPrefix("/"), !name.contains("\\"), !name.split(separator: "/").contains("..") else {
                throw fail("entry '\(name)' points outside the archive's folder")
            }
            let local = try Self.checkedInt(localOffset, fail)
            let header = try file.bytes(at: local, count: 30, what: "entry '\(name)''s local header")
            guard header.u32(0) == 0x0403_4b50 else { throw fail("entry '\(name)' has no local header at \(local)") }
            let dataOffset = local + 30 + Int(header.u16(26)) + Int(header.u16(28))
            let stored = try Self.checkedInt(compressedSize, fail), inflated = try Self.checkedInt(size, fail)
            guard dataOffset <= file.size, stored <= file.size - dataOffset else {
                throw fail("entry '\(name)' claims \(stored) bytes at \(dataOffset), past the end of the file (\(file.size) bytes)")
            }
            guard method == 0 || method == 8 else { throw fail("entry '\(name)' uses compression method \(method) (only stored and deflated are read)") }
            guard method == 8 || stored == inflated else { throw fail("entry '\(name)' is stored but its two sizes differ") }
            byName[name] = entries.count
            entries.append(Entry(name: name, method: method, compressedSize: stored, size: inflated, dataOffset: dataOffset))
            position = next
        }
        self.entries = entries
        self.byName = byName
    }

    package func entry(named name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The whole entry, inflated if it was deflated; `limit` bounds what a deflated entry may claim.
    package func contents(of entry: Entry, limit: Int = 1 << 31) throws -> [UInt8] {
        if entry.method == 0 { return try file.bytes(at: entry.dataOffset, count: entry.size, what: "entry '\(entry.name)'") }
        // Deflate cannot expand more than about 1032 to 1: a larger claim is a lie told before any allocation.
        guard entry.size <= limit, entry.size <= entry.compressedSize * 1032 + 1024 else {
            throw FileError(path: file.path, reason: "entry '\(entry.name)' claims \(entry.size) bytes inflated from \(entry.compressedSize)")
        }
        let compressed = try file.bytes(at: entry.dataOffset, count: entry.compressedSize, what: "entry '\(entry.name)'")
        var error = [CChar](repeating: 0, count: 256)
        let output = [UInt8](unsafeUninitializedCapacity: entry.size) { buffer, initialized in
            let status = compressed.withUnsafeBufferPointer { input in
                ccodecs_inflate_raw(input.baseAddress, input.count, buffer.baseAddress, entry.size, &error, error.count)
            }
            initialized = status == 0 ? entry.size : 0
        }
        guard output.count == entry.size else {
            throw FileError(path: file.path, reason: "entry '\(entry.name)': \(String(cString: error))")
        }
        return output
    }

    /// Reads `buffer.count` bytes of the entry's content from `offset` into `buffer`: straight from the file for a
    /// stored entry, by inflating the whole entry otherwise.
    package func read(_ entry: Entry, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        guard offset >= 0, buffer.count <= entry.size, offset <= entry.size - buffer.count else {
            throw FileError(path: file.path, reason: "entry '\(entry.name)' has \(entry.size) bytes, not the \(offset + buffer.count) needed")
        }
        if entry.method == 0 {
            try file.read(into: buffer, at: entry.dataOffset + offset, what: "entry '\(entry.name)'")
        } else {
            let all = try contents(of: entry)
            all.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + buffer.count])) }
        }
    }

    private static func checkedInt(_ value: UInt64, _ fail: (String) -> FileError) throws -> Int {
        guard value <= UInt64(Int.max) else { throw fail("a size or offset of \(value) bytes") }
        return Int(value)
    }
}

extension Array where Element == UInt8 {
    /// Little-endian integers at a byte offset (callers check the range).
    func u16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}
