// Weight files of any kind the tool takes, told apart by their first bytes rather than their names: safetensors
// (ours and everyone's), PyTorch's `.pth` / `.pt` in either of torch.save's formats, and Keras's HDF5 and `.keras`
// files (which name Keras's layers, not our parameters, so they are read for a given network: KerasFile.swift).
//
//     let network = try ModelZoo.make("vgg16")
//     let report = try network.loadWeights(path: "vgg16-397923af.pth")   // torchvision's file, as downloaded
import ClassicCNNEngine

/// Reading and converting weight files.
public enum WeightFile {
    /// What a file holds, judged by its first bytes.
    public enum Kind: String, Sendable {
        case safetensors = "safetensors"
        case torch = "PyTorch"
        case kerasHDF5 = "Keras HDF5"
        case kerasArchive = "Keras 3 .keras archive"
    }

    /// The kind of weight file at `path`.
    /// - Throws: `FileError` for a file that cannot be read or is none of the kinds.
    public static func kind(of path: String) throws -> Kind {
        let file = try ReadableFile(path: path)
        let prefix = try file.bytes(at: 0, count: min(file.size, 16), what: "the header")
        if prefix.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) { return .kerasHDF5 }
        if ZipArchive.hasSignature(prefix), (try? ZipArchive(file: file))?.entry(named: "model.weights.h5") != nil { return .kerasArchive }
        if TorchFile.hasSignature(prefix) { return .torch }
        // safetensors: an 8-byte little-endian header length, then the JSON header.
        if prefix.count >= 9 && prefix[8] == UInt8(ascii: "{") { return .safetensors }
        throw FileError(path: path, reason: "not a weights file: neither safetensors, nor PyTorch's .pth (zip or legacy), nor Keras's HDF5")
    }

    /// The tensors of a safetensors or PyTorch file, converted to float32, under the file's names; a Keras file's
    /// under `model`'s parameter names (Keras files name their layers, not the network's parameters, so they need it).
    /// - Throws: `FileError` naming the file and the problem; `ConfigurationError` when a Keras file does not fit `model`.
    public static func read(path: String, for model: Model? = nil) throws -> ForeignWeights {
        switch try kind(of: path) {
        case .safetensors:
            let file = try SafeTensors.read(path: path)
            return ForeignWeights(tensors: file.tensors, dtypes: file.dtypes, format: "safetensors")
        case .torch:
            return try TorchFile.read(path: path)
        case let kind:
            guard let model else {
                throw FileError(path: path, reason: "a \(kind.rawValue) file names Keras's layers, not a network's parameters: say which network it is for (--model)")
            }
            let tensors = try KerasFile.tensors(path: path, for: model)
            return ForeignWeights(tensors: tensors, dtypes: Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, "F32") }), format: kind.rawValue)
        }
    }

    /// What `convert` did.
    public struct Conversion: Sendable {
        public var format: String
        public var tensorCount: Int
        /// Values written, PyTorch's integer bookkeeping (`num_batches_tracked`) left out.
        public var valueCount: Int
        /// With a model: its auxiliary heads' parameters the file did not have.
        public var missingAuxiliary: [String] = []
    }

    /// Converts a PyTorch (or safetensors) file of weights to a safetensors file of float32 tensors under the same
    /// names (`num_batches_tracked` dropped, DataParallel's `module.` removed), one tensor in memory at a time.
    /// Given a model's layout, every one of its parameters must be in the file with its shape (its auxiliary heads
    /// may be absent), and the file may hold nothing else: what `loadParameters` will demand, checked before writing.
    /// - Throws: `FileError` naming the input or output file; `ConfigurationError` when the file does not fit.
    @discardableResult
    public static func convert(_ path: String, to output: String, fitting layout: ParameterLayout? = nil) throws -> Conversion {
        var conversion: Conversion
        let names: [String], shapes: [[Int]], values: (Int) throws -> [Float]
        switch try kind(of: path) {
        case .kerasHDF5, .kerasArchive:
            throw FileError(path: path, reason: "a Keras file names Keras's layers, not a network's parameters: convert it for a network (--model)")
        case .safetensors:
            let file = try SafeTensors.read(path: path)
            let kept = file.tensors.filter { !$0.name.hasSuffix("num_batches_tracked") }
            (names, shapes, values) = (kept.map(\.name), kept.map(\.shape), { kept[$0].values })
            conversion = Conversion(format: "safetensors", tensorCount: kept.count, valueCount: 0)
        case .torch:
            let file = try TorchFile.open(path: path)
            let kept = file.names.indices.filter { !file.names[$0].hasSuffix("num_batches_tracked") }
            (names, shapes, values) = (kept.map { file.names[$0] }, kept.map { file.shapes[$0] }, { try file.values(at: kept[$0]) })
            conversion = Conversion(format: file.format, tensorCount: kept.count, valueCount: 0)
        }
        if let layout {
            conversion.missingAuxiliary = try layout.check(names: names, shapes: shapes)
        }
        conversion.valueCount = shapes.reduce(0) { $0 + $1.reduce(1, *) }
        let source = path.split(separator: "/").last.map(String.init) ?? path
        var metadata = ["source": source, "source_format": conversion.format]
        if let layout { metadata["model"] = layout.model }
        try SafeTensors.write(names: names, shapes: shapes, metadata: metadata, to: output, values: values)
        return conversion
    }
}

extension WeightFile {
    /// Converts a Keras file (or any other `read(path:for:)` takes) to a safetensors file under `model`'s parameter
    /// names. The file and the network are both in memory while it runs.
    /// - Throws: as `read(path:for:)`, and `FileError` naming `output` when it cannot be written.
    @discardableResult
    public static func convert(_ path: String, to output: String, for model: Model) throws -> Conversion {
        let weights = try read(path: path, for: model)
        var conversion = Conversion(format: weights.format, tensorCount: weights.tensors.count, valueCount: 0)
        conversion.missingAuxiliary = try model.parameterLayout.check(names: weights.tensors.map(\.name), shapes: weights.tensors.map(\.shape))
        let kept = weights.tensors.filter { !$0.name.hasSuffix("num_batches_tracked") }
        conversion.tensorCount = kept.count
        conversion.valueCount = kept.reduce(0) { $0 + $1.values.count }
        let source = path.split(separator: "/").last.map(String.init) ?? path
        try SafeTensors.write(kept, metadata: ["source": source, "source_format": weights.format, "model": model.name], to: output)
        return conversion
    }
}

extension Model {
    /// Sets every parameter from a weights file (safetensors, PyTorch's `.pth` in either format, or Keras's `.h5` /
    /// `.keras`), as
    /// `loadParameters` does, except that the auxiliary heads may be absent (torchvision saves GoogLeNet and
    /// Inception v3 without them when `aux_logits=False`): they keep their initialisation, and their names are
    /// returned. They matter only for training.
    /// - Throws: `FileError` for a file that cannot be read; `ConfigurationError` when it does not fit the model.
    @discardableResult
    public func loadWeights(path: String) throws -> [String] {
        let weights = try WeightFile.read(path: path, for: self)
        let missing = try parameterLayout.check(names: weights.tensors.map(\.name), shapes: weights.tensors.map(\.shape))
        let missingSet = Set(missing)
        try loadParameters(weights.tensors + parameters.filter { missingSet.contains($0.name) }.map {
            NamedTensor(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.values)
        })
        return missing
    }
}
