// HDF5 files through the HDF5 C library, loaded when first needed (dlopen) rather than linked: the package builds and
// the tool runs without it, and reading an HDF5 file on a machine without it says what to install. Only what Keras's
// weight files need: walking groups and reading numeric datasets as float32.
import ClassicCNNEngine
import Foundation

/// One numeric dataset of an HDF5 file, read as float32.
package struct HDF5Dataset {
    /// The path inside the file, as `group/subgroup/name`.
    package let path: String
    package let shape: [Int]
    package let values: [Float]
}

/// The HDF5 C library's functions this reader uses (1.10 or later: `hid_t` is 64-bit).
private final class HDF5Library: @unchecked Sendable {
    typealias ID = Int64
    let open: @convention(c) (UnsafePointer<CChar>, UInt32, ID) -> ID
    let close: @convention(c) (ID) -> Int32
    let openGroup: @convention(c) (ID, UnsafePointer<CChar>, ID) -> ID
    let closeGroup: @convention(c) (ID) -> Int32
    let linkName: @convention(c) (ID, UnsafePointer<CChar>, Int32, Int32, UInt64, UnsafeMutablePointer<CChar>?, Int, ID) -> Int
    let openDataset: @convention(c) (ID, UnsafePointer<CChar>, ID) -> ID
    let closeDataset: @convention(c) (ID) -> Int32
    let space: @convention(c) (ID) -> ID
    let rank: @convention(c) (ID) -> Int32
    let dimensions: @convention(c) (ID, UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<UInt64>?) -> Int32
    let closeSpace: @convention(c) (ID) -> Int32
    let datasetType: @convention(c) (ID) -> ID
    let typeClass: @convention(c) (ID) -> Int32
    let closeType: @convention(c) (ID) -> Int32
    let read: @convention(c) (ID, ID, ID, ID, ID, UnsafeMutableRawPointer?) -> Int32
    let nativeFloat: ID
    /// Turns off the library's printing of errors to standard error, for the calling thread (a thread-safe build
    /// keeps that setting per thread); errors are reported here, as FileError.
    let silence: () -> Void

    /// The library, or why it could not be loaded.
    static let shared: Result<HDF5Library, FileError> = load()

    private init(_ handle: UnsafeMutableRawPointer) throws {
        func symbol<T>(_ name: String, as _: T.Type = T.self) throws -> T {
            guard let pointer = dlsym(handle, name) else { throw FileError(path: "libhdf5", reason: "has no \(name)") }
            return unsafeBitCast(pointer, to: T.self)
        }
        typealias Status = @convention(c) () -> Int32
        typealias Version = @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Int32
        typealias Silence = @convention(c) (ID, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        _ = try symbol("H5get_libversion", as: Version.self)(&major, &minor, &release)
        guard (major, minor) >= (1, 10) else {
            throw FileError(path: "libhdf5", reason: "version \(major).\(minor).\(release) is older than 1.10, which this reader needs")
        }
        guard try symbol("H5open", as: Status.self)() >= 0 else { throw FileError(path: "libhdf5", reason: "H5open failed") }
        let setAutomaticReporting = try symbol("H5Eset_auto2", as: Silence.self)
        silence = { _ = setAutomaticReporting(0, nil, nil) }
        open = try symbol("H5Fopen")
        close = try symbol("H5Fclose")
        openGroup = try symbol("H5Gopen2")
        closeGroup = try symbol("H5Gclose")
        linkName = try symbol("H5Lget_name_by_idx")
        openDataset = try symbol("H5Dopen2")
        closeDataset = try symbol("H5Dclose")
        space = try symbol("H5Dget_space")
        rank = try symbol("H5Sget_simple_extent_ndims")
        dimensions = try symbol("H5Sget_simple_extent_dims")
        closeSpace = try symbol("H5Sclose")
        datasetType = try symbol("H5Dget_type")
        typeClass = try symbol("H5Tget_class")
        closeType = try symbol("H5Tclose")
        read = try symbol("H5Dread")
        nativeFloat = try symbol("H5T_NATIVE_FLOAT_g", as: UnsafePointer<ID>.self).pointee
    }

    private static func load() -> Result<HDF5Library, FileError> {
        // Debian's libhdf5-103-1 (HDF5 1.10, bookworm), then the development package's and other systems' names.
        let names = ["libhdf5_serial.so.103", "libhdf5.so.103", "libhdf5_serial.so", "libhdf5.so", "libhdf5.so.310",
                     "libhdf5.so.320", "libhdf5.so.200", "libhdf5.dylib", "/opt/homebrew/lib/libhdf5.dylib", "/usr/local/lib/libhdf5.dylib"]
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            do { return .success(try HDF5Library(handle)) } catch let error as FileError { return .failure(error) } catch {
                return .failure(FileError(path: "libhdf5", reason: "\(error)"))
            }
        }
        return .failure(FileError(path: "libhdf5", reason: "the HDF5 library is not installed; Keras's .h5 and .keras files need it "
            + "(Debian and Ubuntu: apt-get install libhdf5-103-1 or libhdf5-dev; macOS: brew install hdf5)"))
    }
}

package enum HDF5 {
    /// The library as Debian builds it is not thread-safe: one call into it at a time, from any thread.
    private static let lock = NSLock()

    /// Every numeric dataset in the file, with its path, depth first in the library's name order.
    /// - Throws: `FileError` naming the file (or the library, when it is missing): not an HDF5 file, a dataset that
    ///   is not numeric, a shape the file cannot hold.
    package static func datasets(path: String) throws -> [HDF5Dataset] {
        lock.lock()
        defer { lock.unlock() }
        let library = try HDF5Library.shared.get()
        library.silence()
        let file = try ReadableFile(path: path)
        let id = library.open(path, 0, 0)   // H5F_ACC_RDONLY, H5P_DEFAULT
        guard id >= 0 else { throw FileError(path: path, reason: "not an HDF5 file the HDF5 library can open") }
        defer { _ = library.close(id) }
        var found: [HDF5Dataset] = []
        // Values read in all: a file's datasets cannot add up to more than the file holds (Keras does not compress).
        var budget = file.size
        // Links can make groups loop (a group linked into itself twice is 2^32 walks at depth 32): a file of weights
        // has hundreds of groups, so the walk stops at 100,000.
        var groups = 0
        try walk(library, id, prefix: "", depth: 0, into: &found, budget: &budget, groups: &groups, path: path)
        return found
    }

    private static func walk(_ library: HDF5Library, _ group: Int64, prefix: String, depth: Int, into found: inout [HDF5Dataset],
                             budget: inout Int, groups: inout Int, path: String) throws {
        guard depth < 32 else { throw FileError(path: path, reason: "groups nested deeper than 32 at \(prefix)") }
        groups += 1
        guard groups <= 100_000 else { throw FileError(path: path, reason: "more than 100,000 groups (links that loop?)") }
        var index: UInt64 = 0
        while true {
            var buffer = [CChar](repeating: 0, count: 1024)
            let length = library.linkName(group, ".", 0, 0, index, &buffer, buffer.count, 0)   // by name, increasing
            guard length >= 0 else { break }
            index += 1
            guard length < buffer.count else { throw FileError(path: path, reason: "a name longer than 1023 bytes in \(prefix)") }
            let name = String(cString: buffer)
            let full = prefix.isEmpty ? name : prefix + "/" + name
            let subgroup = library.openGroup(group, name, 0)
            if subgroup >= 0 {
                defer { _ = library.closeGroup(subgroup) }
                try walk(library, subgroup, prefix: full, depth: depth + 1, into: &found, budget: &budget, groups: &groups, path: path)
                continue
            }
            let dataset = library.openDataset(group, name, 0)
            guard dataset >= 0 else { continue }   // a dangling or external link: not weights
            defer { _ = library.closeDataset(dataset) }
            found.append(try read(library, dataset, name: full, budget: &budget, path: path))
        }
    }

    private static func read(_ library: HDF5Library, _ dataset: Int64, name: String, budget: inout Int, path: String) throws -> HDF5Dataset {
        func fail(_ reason: String) -> FileError { FileError(path: path, reason: "dataset \(name): \(reason)") }
        let type = library.datasetType(dataset)
        defer { _ = library.closeType(type) }
        let typeClass = library.typeClass(type)
        guard typeClass == 0 || typeClass == 1 else { throw fail("not numbers (HDF5 type class \(typeClass))") }
        let space = library.space(dataset)
        defer { _ = library.closeSpace(space) }
        let rank = Int(library.rank(space))
        guard (0...8).contains(rank) else { throw fail("rank \(rank)") }
        var dimensions = [UInt64](repeating: 0, count: max(rank, 1))
        guard library.dimensions(space, &dimensions, nil) >= 0 else { throw fail("no readable shape") }
        var shape: [Int] = [], count = 1
        for dimension in dimensions.prefix(rank) {
            guard dimension <= UInt64(Int32.max) else { throw fail("a dimension of \(dimension)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dimension))
            guard !overflow else { throw fail("shape \(dimensions) overflows") }
            shape.append(Int(dimension))
            count = product
        }
        guard count <= budget / 4 else { throw fail("shape \(shape) claims more values than the file holds") }
        budget -= count * 4
        var values = [Float](repeating: 0, count: count)
        if count > 0 {
            let status = values.withUnsafeMutableBytes { library.read(dataset, library.nativeFloat, 0, 0, 0, $0.baseAddress) }
            guard status >= 0 else { throw fail("the HDF5 library could not read it") }
        }
        return HDF5Dataset(path: name, shape: shape, values: values)
    }
}
