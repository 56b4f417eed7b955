// Image folders as datasets: one sub-folder per class (the class names are the sub-folder names, sorted) holding PNG
// and JPEG files of any size and kind, as torchvision's ImageFolder reads them; or `train/` and `val/` (or `test/`)
// folders each laid out so. Every file's header is checked when the folder is listed, so that a bad image stops a run
// before training starts; pixels are decoded only when the loader needs them, so memory does not grow with the folder.
import Foundation
import ClassicCNNEngine

public enum ImageFolder {
    /// The file name extensions read (any case); other files, and hidden ones, are ignored.
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The checked files of one folder of class folders.
    public struct Listing: Sendable {
        public let root: String
        public let classNames: [String]
        /// The usable images, sorted by class then name, and their labels.
        public var paths: [String] = []
        public var labels: [Int32] = []
        /// Files named as images that are not usable ones (not an image, truncated, no pixels, too large).
        public var badImages: [ImageError] = []
    }

    /// Bad images found while listing a folder, when they are not to be skipped.
    public struct BadImages: Error, CustomStringConvertible {
        public let images: [ImageError]
        public var description: String {
            "\(images[0])" + (images.count > 1 ? " (and \(images.count - 1) more bad images)" : "")
        }
    }

    /// The training and validation folders of a folder laid out as `train/` and `val/` (or `test/`), each holding
    /// class folders; nil for a folder of class folders.
    public static func splitFolders(of root: String) -> (training: String, validation: String)? {
        func holdsFolders(_ path: String) -> Bool {
            (try? subfolders(of: path))?.isEmpty == false
        }
        guard holdsFolders("\(root)/train") else { return nil }
        for name in ["val", "test"] where holdsFolders("\(root)/\(name)") { return ("\(root)/train", "\(root)/\(name)") }
        return nil
    }

    /// The class names of an image folder as `load` reads them (the sub-folders of `train/`, or of the folder), without
    /// reading any image: what `cnn train` takes the number of classes from.
    public static func classNames(of root: String) throws -> [String] {
        let folder = splitFolders(of: root)?.training ?? root
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(path: folder, reason: "not a folder (an image folder holds one sub-folder per class)")
        }
        return try subfolders(of: folder)
    }

    /// Lists and checks a folder of class folders. With `classNames` (a validation folder's, given the training
    /// folder's classes) every class folder must be one of them; otherwise the classes are the sub-folders, sorted.
    ///
    /// - Throws: `DataError` naming the folder if it is missing, holds no class folders, or holds an empty class folder
    ///   (or, with `classNames`, a class not among them). Bad image files are not thrown but listed in `badImages`.
    public static func list(_ root: String, classNames given: [String]? = nil) throws -> Listing {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(path: root, reason: "not a folder (an image folder holds one sub-folder per class)")
        }
        let folders = try subfolders(of: root)
        guard !folders.isEmpty else {
            let images = (try? imageFiles(in: root).count) ?? 0
            throw DataError(path: root, reason: "no class folders: expected one sub-folder per class holding PNG or JPEG files"
                + (images > 0 ? " (it holds \(images) images directly)" : ""))
        }
        let classNames = given ?? folders
        var listing = Listing(root: root, classNames: classNames)
        for folder in folders {
            guard let label = classNames.firstIndex(of: folder) else {
                throw DataError(path: "\(root)/\(folder)", reason: "class '\(folder)' is not among the training classes (\(classNames.joined(separator: ", ")))")
            }
            let files = try imageFiles(in: "\(root)/\(folder)")
            guard !files.isEmpty else {
                throw DataError(path: "\(root)/\(folder)", reason: "empty class folder: no PNG or JPEG files (.png, .jpg, .jpeg)")
            }
            for name in files {
                let path = "\(root)/\(folder)/\(name)"
                do {
                    _ = try Image.info(path: path)
                    listing.paths.append(path)
                    listing.labels.append(Int32(label))
                } catch let error as ImageError {
                    listing.badImages.append(error)
                }
            }
        }
        return listing
    }

    /// A seeded split of each class: `fraction` of its images (rounded, at least one left for training) go to
    /// validation. Which ones depends on the seed and the file names only. Returns indices into `labels`, ascending.
    public static func split(labels: [Int32], validationFraction fraction: Double, seed: UInt64) -> (training: [Int], validation: [Int]) {
        var byClass: [Int32: [Int]] = [:]
        for (index, label) in labels.enumerated() { byClass[label, default: []].append(index) }
        var rng = RandomGenerator(seed: seed ^ 0x5EED_0F_5B11_7000)
        var training: [Int] = [], validation: [Int] = []
        for label in byClass.keys.sorted() {
            var indices = byClass[label]!
            for i in Swift.stride(from: indices.count - 1, to: 0, by: -1) { indices.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            let count = Swift.min(Int((fraction * Double(indices.count)).rounded()), indices.count - 1)
            validation += indices[..<count]
            training += indices[count...]
        }
        return (training.sorted(), validation.sorted())
    }

    /// The training and validation sets of an image folder: its `train/` and `val/` (or `test/`) folders if it has
    /// them, else a seeded split of its classes (`validationFraction` 0: no validation set). Images are produced with
    /// `channels` channels (grey and colour converted), each at its own size, decoded on the loader's thread.
    ///
    /// - Parameters:
    ///   - root: the folder, holding one folder per class (or `train/` and `val/` ones that do).
    ///   - channels: 1 (grey) or 3 (RGB).
    ///   - validationFraction: the share of each class kept for validation when the folder has no `val/`.
    ///   - seed: seeds that split.
    ///   - skipBadImages: leave out files that are not valid images instead of refusing the folder.
    ///   - onBadImage: called for each bad image file found, in order.
    /// - Throws: `DataError` for a folder that is not laid out as one, `BadImages` unless `skipBadImages`.
    public static func load(_ root: String, channels: Int, validationFraction: Double, seed: UInt64, skipBadImages: Bool,
                            onBadImage: (ImageError) -> Void = { _ in }) throws -> (training: ImageDataset, validation: ImageDataset?) {
        guard channels == 1 || channels == 3 else {
            throw DataError(path: root, reason: "image folders give 1- or 3-channel images, not \(channels)")
        }
        let root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        var training: Listing, validation: Listing?
        if let folders = splitFolders(of: root) {
            training = try list(folders.training)
            validation = try list(folders.validation, classNames: training.classNames)
        } else {
            training = try list(root)
        }
        let bad = training.badImages + (validation?.badImages ?? [])
        bad.forEach(onBadImage)
        if !bad.isEmpty && !skipBadImages { throw BadImages(images: bad) }
        for listing in [training] + (validation.map { [$0] } ?? []) where listing.paths.isEmpty {
            throw DataError(path: listing.root, reason: "no usable images (all \(listing.badImages.count) are bad)")
        }
        // Named by the folder's absolute path, which checkpoints keep: `cnn evaluate` then finds it from any folder.
        let absolute = URL(fileURLWithPath: root).standardized.path
        func dataset(_ name: String, _ paths: [String], _ labels: [Int32]) -> ImageDataset {
            ImageDataset(name: "\(absolute)-\(name)", channels: channels, labels: labels, classNames: training.classNames,
                         source: ImageFiles(paths: paths, channels: channels))
        }
        if let validation {
            return (dataset("train", training.paths, training.labels), dataset("validation", validation.paths, validation.labels))
        }
        let parts = split(labels: training.labels, validationFraction: validationFraction, seed: seed)
        let trainingSet = dataset("train", parts.training.map { training.paths[$0] }, parts.training.map { training.labels[$0] })
        guard !parts.validation.isEmpty else { return (trainingSet, nil) }
        return (trainingSet, dataset("validation", parts.validation.map { training.paths[$0] }, parts.validation.map { training.labels[$0] }))
    }

    /// The visible sub-folders of a folder, sorted.
    static func subfolders(of path: String) throws -> [String] {
        try contents(of: path).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(path)/\(name)", isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    /// The visible files of a folder whose extension names an image, sorted.
    static func imageFiles(in path: String) throws -> [String] {
        try contents(of: path).filter { name in
            var isDirectory: ObjCBool = false
            return imageExtensions.contains((name as NSString).pathExtension.lowercased())
                && FileManager.default.fileExists(atPath: "\(path)/\(name)", isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }

    private static func contents(of path: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw DataError(path: path, reason: "cannot be listed (\(error.localizedDescription))")
        }
    }
}

/// Image files decoded on demand into planar bytes with a fixed number of channels (grey to RGB by repeating the
/// level, RGB to grey by luma), each at its own size.
struct ImageFiles: ImageSource {
    let paths: [String]
    let channels: Int

    func image(at index: Int) throws -> (height: Int, width: Int, pixels: [UInt8]) {
        let image = try Image.load(path: paths[index]).converted(toChannels: channels)
        return (image.height, image.width, image.planarPixels)
    }
}
