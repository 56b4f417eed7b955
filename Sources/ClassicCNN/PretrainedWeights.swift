// torchvision's published ImageNet weights for the networks in the registry, fetched by name: downloaded once into a
// cache folder (resumed if interrupted, checked against the SHA-256 digits torchvision puts in the file name),
// converted to safetensors (one tensor in memory at a time) and kept. Here, in the umbrella, because it joins the zoo
// (which network takes the file) and the formats (the download and the PyTorch reader).
//
//     let vgg16 = try PretrainedWeights.named("vgg16").model()          // fetched on first use
//     let best = vgg16.predict(try Image.load(path: "photo.jpg"), top: 5, classNames: ImageNet.classNames,
//                              preparation: PretrainedWeights.named("vgg16").preparation)
import ClassicCNNEngine
import ClassicCNNIO
import ClassicCNNZoo
import Foundation

/// One published set of weights: where it is, what it scored, how its images must be prepared.
public struct PretrainedWeights: Sendable {
    /// The registry's network that takes these weights (also the name `--pretrained` and `pretrained:` use).
    public let model: String
    /// torchvision's name of the weights (`VGG16_Weights.IMAGENET1K_V1`).
    public let torchvisionName: String
    public let url: URL
    /// The first hex digits of the file's SHA-256, from its name (`vgg16-397923af.pth`), as torch.hub checks them.
    public let sha256Prefix: String
    /// The file's size in MiB (2^20 bytes), as torchvision's `_file_size` gives it (vgg19's 548.051 MiB are 574.7 MB).
    public let mebibytes: Double
    /// torchvision 0.29's ImageNet-1K validation accuracy, single 224 (Inception v3: 299) centre crop.
    public let top1: Double
    public let top5: Double
    /// The shorter side the image is resized to before the centre crop of the network's input size.
    public let resize: Int
    /// How pixels become input values: ImageNet's mean and standard deviation, or for Google's GoogLeNet and
    /// Inception v3 weights (torchvision's `transform_input`) pixels scaled to [-1, 1].
    public let inputFormat: InputFormat

    /// The file name in the cache: torchvision's own.
    public var fileName: String { url.lastPathComponent }
    /// The converted file in the cache.
    public var convertedFileName: String { "\(model)-\(sha256Prefix).safetensors" }
    /// How `predict` prepares a picture for these weights: resized so the shorter side is `resize`, centre-cropped.
    public var preparation: ImagePreparation { .resizedAndCentreCropped(shorterSide: resize) }
    /// The preprocessing, in words.
    public var preprocessing: String {
        let crop = model == "inception-v3" ? 299 : 224
        let scaling = inputFormat == .imageNet ? "ImageNet mean and std" : "pixels to [-1, 1] (transform_input)"
        return "resize \(resize), centre crop \(crop), \(scaling)"
    }

    package init(_ model: String, _ torchvisionName: String, _ file: String, mebibytes: Double, top1: Double, top5: Double,
         resize: Int = 256, google: Bool = false) {
        self.model = model
        self.torchvisionName = torchvisionName
        self.url = URL(string: "https://download.pytorch.org/models/" + file)!
        self.sha256Prefix = String(file.split(separator: "-").last!.split(separator: ".").first!)
        self.mebibytes = mebibytes
        self.top1 = top1
        self.top5 = top5
        self.resize = resize
        self.inputFormat = google ? .normalized(mean: [0.5, 0.5, 0.5], standardDeviation: [0.5, 0.5, 0.5]) : .imageNet
    }

    /// Every set, as torchvision 0.29 publishes it (its weights enums: URL, `_file_size`, `_metrics`, transforms).
    public static let all: [PretrainedWeights] = [
        .init("alexnet-torchvision", "AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", mebibytes: 233.087, top1: 56.522, top5: 79.066),
        .init("vgg11", "VGG11_Weights.IMAGENET1K_V1", "vgg11-8a719046.pth", mebibytes: 506.84, top1: 69.02, top5: 88.628),
        .init("vgg11-bn", "VGG11_BN_Weights.IMAGENET1K_V1", "vgg11_bn-6002323d.pth", mebibytes: 506.881, top1: 70.37, top5: 89.81),
        .init("vgg13", "VGG13_Weights.IMAGENET1K_V1", "vgg13-19584684.pth", mebibytes: 507.545, top1: 69.928, top5: 89.246),
        .init("vgg13-bn", "VGG13_BN_Weights.IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", mebibytes: 507.59, top1: 71.586, top5: 90.374),
        .init("vgg16", "VGG16_Weights.IMAGENET1K_V1", "vgg16-397923af.pth", mebibytes: 527.796, top1: 71.592, top5: 90.382),
        .init("vgg16-bn", "VGG16_BN_Weights.IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", mebibytes: 527.866, top1: 73.36, top5: 91.516),
        .init("vgg19", "VGG19_Weights.IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", mebibytes: 548.051, top1: 72.376, top5: 90.876),
        .init("vgg19-bn", "VGG19_BN_Weights.IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", mebibytes: 548.143, top1: 74.218, top5: 91.842),
        .init("googlenet-torchvision", "GoogLeNet_Weights.IMAGENET1K_V1", "googlenet-1378be20.pth", mebibytes: 49.731, top1: 69.778, top5: 89.53, google: true),
        .init("inception-v3", "Inception_V3_Weights.IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth", mebibytes: 103.903, top1: 77.294, top5: 93.45, resize: 342, google: true),
    ]

    /// The weights for a registry network.
    /// - Throws: `ConfigurationError` naming the networks that have published weights.
    public static func named(_ model: String) throws -> PretrainedWeights {
        guard let weights = all.first(where: { $0.model == model }) else {
            let names = all.map(\.model)
            let suggestion = closestName(to: model, among: names).map { " (did you mean \($0)?)" } ?? ""
            throw ConfigurationError("no published weights for '\(model)'\(suggestion); there are weights for \(names.joined(separator: ", "))")
        }
        return weights
    }

    /// Where weights are kept: `$CNN_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/classiccnn/weights`, else
    /// `~/.cache/classiccnn/weights`.
    public static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let folder = environment["CNN_WEIGHTS_DIR"], !folder.isEmpty { return folder }
        let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache").path
        return cache + "/classiccnn/weights"
    }

    /// Where the file is fetched from: `url`, or the same file name under `$CNN_WEIGHTS_MIRROR` (a folder URL) when set.
    public var sourceURL: URL {
        guard let mirror = ProcessInfo.processInfo.environment["CNN_WEIGHTS_MIRROR"], !mirror.isEmpty,
              let base = URL(string: mirror.hasSuffix("/") ? mirror : mirror + "/") else { return url }
        return base.appendingPathComponent(fileName)
    }

    /// The converted safetensors file, fetched and converted first if the cache does not hold it: the `.pth` is
    /// downloaded (or taken from the folder, where it can be put by hand on a machine without network), checked,
    /// converted against the network's layout, then removed. Returns the converted file's path.
    /// - Parameters:
    ///   - folder: The cache folder (default ``cacheDirectory``).
    ///   - source: Where to download from (default ``sourceURL``).
    ///   - timeout: Seconds the download may go without receiving data before it fails.
    ///   - progress: Download progress: bytes received and the total when known.
    ///   - converted: Told what the conversion did, once it is done.
    /// - Throws: `DownloadError` (saying where to put the file by hand when the network fails), `FileError` or
    ///   `ConfigurationError` when the file is not what it should be.
    @discardableResult
    public func fetch(into folder: String = PretrainedWeights.cacheDirectory, from source: URL? = nil, timeout: TimeInterval = 60,
                      progress: ((_ received: Int, _ total: Int?) -> Void)? = nil,
                      converted: ((WeightFile.Conversion) -> Void)? = nil) throws -> String {
        let target = folder + "/" + convertedFileName
        if FileManager.default.fileExists(atPath: target) { return target }
        let original = folder + "/" + fileName
        if !FileManager.default.fileExists(atPath: original) {
            let from = source ?? sourceURL
            do {
                try Downloader.fetch(from, to: original, checksum: .sha256Prefix(sha256Prefix), timeout: timeout, progress: progress)
            } catch let error as DownloadError where error.reason.hasPrefix("transfer failed") {
                throw DownloadError(url: error.url, reason: error.reason + ". Without a network: download \(url.absoluteString) "
                    + "elsewhere and put it in \(folder)/ (as \(fileName)), then run again")
            }
        } else {
            // Put there by hand, or left by an earlier run that stopped before converting: check it all the same.
            let actual = try SHA256.hex(ofFileAt: original)
            guard actual.hasPrefix(sha256Prefix) else {
                throw FileError(path: original, reason: "SHA-256 \(actual) does not start with \(sha256Prefix), as \(fileName) must; remove it and fetch again")
            }
        }
        let layout = try ModelZoo.descriptor(named: model).make().parameterLayout
        let conversion = try WeightFile.convert(original, to: target, fitting: layout)
        converted?(conversion)
        try? FileManager.default.removeItem(atPath: original)
        return target
    }

    /// The network with these weights loaded and their input format, fetched first if need be.
    public func model(folder: String = PretrainedWeights.cacheDirectory) throws -> Model {
        let path = try fetch(into: folder)
        let network = try ModelZoo.descriptor(named: model).make()
        try network.loadWeights(path: path)
        network.inputFormat = inputFormat
        return network
    }
}
