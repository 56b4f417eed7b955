#!/usr/bin/env bash
# Regenerates Sources/ClassicCNN/Formats/ONNX/onnx.pb.swift from onnx.proto beside it. Run once when onnx.proto
# changes; the generated file is committed, so building the package needs neither protoc nor the plugin.
#
# onnx.proto is the file of that name in the `onnx` Python package (pip download onnx; onnx/onnx.proto, 1.23.2
# here). protoc comes from Debian's protobuf-compiler; protoc-gen-swift is built from the swift-protobuf checkout
# that SwiftPM resolved, at the version the package depends on (1.39.0):
#
#     apt-get install -y protobuf-compiler
#     swift package resolve
#     cp -r .build/checkouts/swift-protobuf /tmp/swift-protobuf
#     (cd /tmp/swift-protobuf && swift build -c release -j 1 --product protoc-gen-swift)
#     PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift Scripts/generate_onnx_proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
[ -x "$plugin" ] || { echo "set PROTOC_GEN_SWIFT to a protoc-gen-swift binary (see this script's header)" >&2; exit 1; }
folder=Sources/ClassicCNN/Formats/ONNX
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$folder" --swift_out="$folder" \
    --swift_opt=Visibility=Internal onnx.proto
echo "wrote $folder/onnx.pb.swift with $("$plugin" --version)"
