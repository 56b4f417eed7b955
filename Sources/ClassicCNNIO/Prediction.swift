// Classifying pictures with a trained model, as `cnn predict` does: each picture prepared as the model's training
// images were (MNIST's digits as MNIST was made), the softmax's most probable classes, named.
//
//     let (model, info, _) = try Checkpoint.load(path: "checkpoints/best.safetensors")
//     let best = model.predict(try Image.load(path: "digit.png"), top: 3, classNames: info.knownClassNames,
//                              preparation: info.imagePreparation)
//     print(best.map { "\($0.name) \($0.probability)" })
import ClassicCNNEngine

/// One class of a prediction.
public struct ClassPrediction: Codable, Equatable, Sendable {
    /// The class's name, or its index as text when the model's classes have no names.
    public let name: String
    public let index: Int
    public let probability: Double
}

/// How a picture becomes a model's input.
public enum ImagePreparation: Equatable, Sendable {
    /// Converted to the model's channels (grey by luma, or grey repeated in R, G and B), then fitted to its input and
    /// scaled as the loader fits a dataset's images.
    case fitted
    /// As MNIST was made (`mnistStyleDigit`): dark ink on light paper inverted, the digit cropped, scaled into 20x20
    /// and centred by its centre of mass in 28x28, then placed in the middle of the input.
    case mnistDigit
    /// As torchvision evaluates ImageNet models: resized (antialiased) so that the shorter side is `shorterSide`
    /// (256 for a 224 input), then the input's square cut from the centre.
    case resizedAndCentreCropped(shorterSide: Int)
}

extension Model {
    /// The input values of one picture, [channels, size, size], prepared as `preparation` says.
    public func input(for picture: Image, preparation: ImagePreparation = .fitted) -> [Float] {
        let size = configuration.inputSize
        switch preparation {
        case .mnistDigit:
            let digit = mnistStyleDigit(picture), offset = (size - 28) / 2
            var plane = [Float](repeating: inputFormat.offset[0], count: size * size)
            for y in 0..<28 where y + offset >= 0 && y + offset < size {
                for x in 0..<28 where x + offset >= 0 && x + offset < size {
                    plane[(y + offset) * size + x + offset] = digit[y * 28 + x] * inputFormat.scale[0] + inputFormat.offset[0]
                }
            }
            return (0..<configuration.inputChannels).flatMap { _ in plane }
        case .resizedAndCentreCropped(let shorterSide):
            let resized = (try? picture.resized(shorterSide: max(shorterSide, size))) ?? picture
            let cropped = (try? resized.centreCropped(width: size, height: size)) ?? resized
            return input(for: cropped, preparation: .fitted)
        case .fitted:
            let channels = configuration.inputChannels
            let source = picture.converted(toChannels: channels)
            let dataset = ImageDataset(name: "picture", channels: channels, height: source.height, width: source.width,
                                       pixels: source.planarPixels, labels: [0], classNames: [])
            let loader = BatchLoader(dataset: dataset, batchSize: 1, inputSize: size, format: inputFormat, shuffleSeed: nil)
            defer { loader.stop() }
            return loader.next()!.images.values
        }
    }

    /// The `top` most probable classes of each picture, most probable first, named by `classNames` (by index where
    /// it has too few names). The pictures go through the network as one batch, in inference mode.
    public func predict(_ pictures: [Image], top: Int = 5, classNames: [String] = [],
                        preparation: ImagePreparation = .fitted) -> [[ClassPrediction]] {
        guard !pictures.isEmpty else { return [] }
        let inputs = pictures.map { input(for: $0, preparation: preparation) }
        let batch = Tensor(shape: [inputs.count] + inputShape, values: inputs.flatMap { $0 })
        let names = classNames.count == configuration.classes ? classNames : []
        return loss.probabilities(output: forward(batch)).map { row in
            row.enumerated().sorted { $0.element > $1.element }.prefix(max(top, 1)).map {
                ClassPrediction(name: $0.offset < names.count ? names[$0.offset] : String($0.offset), index: $0.offset,
                                probability: Double($0.element))
            }
        }
    }

    /// The `top` most probable classes of one picture, most probable first.
    public func predict(_ picture: Image, top: Int = 5, classNames: [String] = [],
                        preparation: ImagePreparation = .fitted) -> [ClassPrediction] {
        predict([picture], top: top, classNames: classNames, preparation: preparation)[0]
    }
}

/// The class names a dataset is known to have: MNIST's digits, CIFAR-10's names, ImageNet's for 1,000 classes;
/// otherwise none.
public func knownClassNames(dataset: String, classes: Int) -> [String] {
    switch (dataset, classes) {
    case ("mnist", 10): return MNIST.classNames
    case ("cifar10", 10): return CIFAR10.defaultClassNames
    case (_, 1000): return ImageNet.classNames
    default: return []
    }
}

extension CheckpointInfo {
    /// The names of the model's classes: the checkpoint's own (an image folder's), else its dataset's known ones.
    public var knownClassNames: [String] {
        classNames.count == configuration.classes ? classNames
            : ClassicCNNIO.knownClassNames(dataset: dataset, classes: configuration.classes)
    }

    /// How pictures are prepared for the checkpoint's model: as MNIST's digits for a model trained on MNIST.
    public var imagePreparation: ImagePreparation { dataset == "mnist" ? .mnistDigit : .fitted }
}
