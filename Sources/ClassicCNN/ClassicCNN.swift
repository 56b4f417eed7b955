// The umbrella: `import ClassicCNN` gives the engine, the model zoo and the formats.
//
//     CNNKernels (C) ──> ClassicCNNEngine ──> ClassicCNNZoo ──┐
//                              │                              ├──> ClassicCNN ──> cnn
//     CCodecs (C), SwiftProtobuf ──> ClassicCNNIO ────────────┘
@_exported import ClassicCNNEngine
@_exported import ClassicCNNIO
@_exported import ClassicCNNZoo
