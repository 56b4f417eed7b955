// Keras's weight files mapped onto our networks: the HDF5 file `model.save("x.h5")` and `ModelCheckpoint` write (Keras
// 2 and 3: `model_weights/<layer>/.../kernel`), `save_weights`'s (`<layer>/<layer>/kernel:0`, or Keras 3's
// `layers/<layer>/vars/0`), and Keras 3's `.keras` archive (a zip holding `model.weights.h5`).
//
// Keras names its layers, not our parameters, so the layers are matched by kind and order: the file's convolutions,
// dense layers and batch normalisations, each kind in the natural order of their names (`conv2d`, `conv2d_1`, ...,
// `conv2d_10`; `block1_conv1`, `block1_conv2`, ...), onto the network's Conv2D, Linear and BatchNorm2D layers in the
// order it runs them. Kernels go from Keras's HWIO to OIHW and [in, out] to [out, in]; the first dense layer after the
// convolutions has its rows reordered from Keras's NHWC flattening to our NCHW one; a batch normalisation without
// scale (Keras's `scale=False`, as in InceptionV3) gets a scale of one.
import ClassicCNNEngine
import Foundation

/// Reads Keras's weight files.
public enum KerasFile {
    /// One Keras layer with weights: its name and variables in Keras's order (kernel, bias; gamma, beta, moving mean,
    /// moving variance).
    public struct Layer: Sendable {
        public let name: String
        public let variables: [(shape: [Int], values: [Float])]
    }

    /// The layers with weights in a Keras file (`.h5`, `.weights.h5` or `.keras`), in the natural order of their names.
    /// - Throws: `FileError` naming the file, or saying how to install the HDF5 library when it is missing.
    public static func layers(path: String) throws -> [Layer] {
        if try WeightFile.kind(of: path) == .kerasArchive {
            // The HDF5 library reads files, not memory: the archive's weights go to a temporary file first.
            let archive = try ZipArchive(path: path)
            guard let entry = archive.entry(named: "model.weights.h5") else { throw FileError(path: path, reason: "no model.weights.h5 in the archive") }
            let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("classiccnn-\(getpid())-\(UUID().uuidString).h5").path
            defer { try? FileManager.default.removeItem(atPath: temporary) }
            guard FileManager.default.createFile(atPath: temporary, contents: Data(try archive.contents(of: entry))) else {
                throw FileError(path: temporary, reason: "cannot write the archive's model.weights.h5 here")
            }
            do { return try layers(inHDF5: temporary) } catch let error as FileError where error.path == temporary {
                throw FileError(path: path, reason: "model.weights.h5: \(error.reason)")
            }
        }
        return try layers(inHDF5: path)
    }

    private static func layers(inHDF5 path: String) throws -> [Layer] {
        var byLayer: [String: [(order: String, shape: [Int], values: [Float])]] = [:]
        for dataset in try HDF5.datasets(path: path) {
            var parts = dataset.path.split(separator: "/").map(String.init)
            if parts.first == "model_weights" { parts.removeFirst() }
            // The optimizer's state is not weights.
            if ["optimizer_weights", "optimizer"].contains(parts.first ?? "") || parts.isEmpty { continue }
            let layer: String, order: String
            if let vars = parts.lastIndex(of: "vars"), vars > 0, vars + 1 < parts.count {
                // Keras 3: layers/<layer>/vars/<index>.
                layer = parts[vars - 1]
                order = String(repeating: "0", count: max(0, 8 - parts[vars + 1].count)) + parts[vars + 1]
            } else {
                // Keras 2 and Keras 3's legacy .h5: <layer>/.../<variable>(:0).
                layer = parts[0]
                let variable = String(parts.last!.split(separator: ":").first ?? "")
                let rank = ["kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"].firstIndex(of: variable) ?? 99
                order = String(format: "%02d", rank) + variable
            }
            byLayer[layer, default: []].append((order, dataset.shape, dataset.values))
        }
        return byLayer.keys.sorted(by: naturalOrder).map { name in
            Layer(name: name, variables: byLayer[name]!.sorted { $0.order < $1.order }.map { ($0.shape, $0.values) })
        }
    }

    /// `conv2d_2` before `conv2d_10`: runs of digits compare as numbers.
    package static func naturalOrder(_ a: String, _ b: String) -> Bool {
        func pieces(_ text: String) -> [(String, Int?)] {
            var result: [(String, Int?)] = [], current = "", digits = false
            for character in text {
                if character.isNumber != digits, !current.isEmpty { result.append((current, digits ? Int(current) : nil)); current = "" }
                digits = character.isNumber
                current.append(character)
            }
            if !current.isEmpty { result.append((current, digits ? Int(current) : nil)) }
            return result
        }
        let left = pieces(a), right = pieces(b)
        for (x, y) in zip(left, right) where x.0 != y.0 {
            if let m = x.1, let n = y.1 { return m < n }
            return x.0 < y.0
        }
        return left.count < right.count
    }

    /// The file's weights under the network's parameter names, matched as the file's header comment says.
    /// - Throws: `FileError` for an unreadable file; `ConfigurationError` when the file's layers do not fit the network
    ///   (another count of a kind, another shape), naming the first that does not.
    public static func tensors(path: String, for model: Model) throws -> [NamedTensor] {
        let layers = try layers(path: path)
        var names: [ObjectIdentifier: String] = [:]
        for (name, parameter) in model.parameters { names[ObjectIdentifier(parameter)] = name }
        func name(_ parameter: Parameter) -> String { names[ObjectIdentifier(parameter)] ?? "?" }

        // Keras's layers by kind.
        let convolutions = layers.filter { $0.variables.first?.shape.count == 4 }
        let denses = layers.filter { $0.variables.first?.shape.count == 2 }
        let norms = layers.filter { layer in (3...4).contains(layer.variables.count) && layer.variables.allSatisfy { $0.shape.count == 1 } }
        // Ours, in the order the network runs them, with the channels of the last feature map before each Linear;
        // without the auxiliary heads when the file has none (keras.applications' InceptionV3 has none).
        let auxiliary = Set(model.auxiliaries.flatMap { $0.allLayers.map { ObjectIdentifier($0 as AnyObject) } })
        let withHeads = model.network.allLayers.filter { $0 is Conv2D }.count == convolutions.count
        var ourConvolutions: [Conv2D] = [], ourDenses: [(Linear, channels: Int?)] = [], ourNorms: [BatchNorm2D] = []
        var channels: Int? = nil
        for layer in model.network.allLayers where withHeads || !auxiliary.contains(ObjectIdentifier(layer as AnyObject)) {
            switch layer {
            case let conv as Conv2D:
                ourConvolutions.append(conv)
                channels = conv.outputChannels
            case let linear as Linear:
                ourDenses.append((linear, channels))
                channels = nil
            case let norm as BatchNorm2D: ourNorms.append(norm)
            default: break
            }
        }
        func check(_ kind: String, _ theirs: [Layer], _ ours: Int) throws {
            guard theirs.count == ours else {
                throw ConfigurationError("the file has \(theirs.count) \(kind) layers (\(theirs.prefix(4).map(\.name).joined(separator: ", "))"
                    + "\(theirs.count > 4 ? ", ..." : "")), \(model.name) has \(ours)")
            }
        }
        try check("convolution", convolutions, ourConvolutions.count)
        try check("dense", denses, ourDenses.count)
        try check("batch normalisation", norms, ourNorms.count)
        guard convolutions.count + denses.count + norms.count == layers.count else {
            let other = layers.first { layer in !(convolutions + denses + norms).contains { $0.name == layer.name } }!
            throw ConfigurationError("the file's layer \(other.name) is of a kind this reader does not map (variables \(other.variables.map(\.shape)))")
        }

        var tensors: [NamedTensor] = []
        func add(_ parameter: Parameter?, _ shape: [Int], _ values: [Float], from layer: Layer) throws {
            guard let parameter else {
                throw ConfigurationError("the file's \(layer.name) has a variable of shape \(shape) where \(model.name)'s layer has none")
            }
            guard parameter.shape == shape else {
                throw ConfigurationError("the file's \(layer.name) gives \(name(parameter)) the shape \(shape), \(model.name) needs \(parameter.shape)")
            }
            tensors.append(NamedTensor(name: name(parameter), shape: shape, values: values))
        }
        for (layer, conv) in zip(convolutions, ourConvolutions) {
            let kernel = layer.variables[0], s = kernel.shape   // [KH, KW, I, O]
            var values = [Float](repeating: 0, count: kernel.values.count)
            for y in 0..<s[0] { for x in 0..<s[1] { for i in 0..<s[2] { for o in 0..<s[3] {
                values[((o * s[2] + i) * s[0] + y) * s[1] + x] = kernel.values[((y * s[1] + x) * s[2] + i) * s[3] + o]
            } } } }
            try add(conv.weight, [s[3], s[2], s[0], s[1]], values, from: layer)
            if layer.variables.count > 1 { try add(conv.bias, layer.variables[1].shape, layer.variables[1].values, from: layer) }
        }
        for (layer, (linear, channels)) in zip(denses, ourDenses) {
            let kernel = layer.variables[0], (inputs, outputs) = (kernel.shape[0], kernel.shape[1])
            // Keras flattened an H x W x C map; ours is C x H x W: row (h, w, c) of theirs is row (c, h, w) of ours.
            let c = max(channels ?? inputs, 1), area = inputs % c == 0 ? inputs / c : 1
            var values = [Float](repeating: 0, count: kernel.values.count)
            for row in 0..<inputs {
                let ours = area > 1 ? (row % c) * area + row / c : row
                for o in 0..<outputs { values[o * inputs + ours] = kernel.values[row * outputs + o] }
            }
            try add(linear.weight, [outputs, inputs], values, from: layer)
            if layer.variables.count > 1 { try add(linear.bias, layer.variables[1].shape, layer.variables[1].values, from: layer) }
        }
        for (layer, norm) in zip(norms, ourNorms) {
            // gamma, beta, moving mean, moving variance; without gamma (scale=False) the scale is one.
            var variables = layer.variables
            if variables.count == 3 { variables.insert(([norm.channels], [Float](repeating: 1, count: norm.channels)), at: 0) }
            try add(norm.weight, variables[0].shape, variables[0].values, from: layer)
            try add(norm.bias, variables[1].shape, variables[1].values, from: layer)
            try add(norm.runningMean, variables[2].shape, variables[2].values, from: layer)
            try add(norm.runningVar, variables[3].shape, variables[3].values, from: layer)
        }
        return tensors
    }
}
