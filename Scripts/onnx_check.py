#!/usr/bin/env python3
"""Runs an ONNX file in ONNX Runtime, as the ONNX export tests do (Tests/ClassicCNNTests/ONNXTests.swift).

    onnx_check.py MODEL.onnx INPUT OUTPUT [INPUT OUTPUT ...]

Each INPUT is a .safetensors file holding the float32 tensor `input` [N, C, H, W], or a .npy file; each OUTPUT
receives the graph's `output` for it, as a .safetensors file (tensor `output`) or a .npy file, by its extension.
Several inputs run through one session, so one file is checked at several batch sizes. Needs onnxruntime and numpy
(and safetensors for .safetensors files); exits with status 3 and says so when they are missing.
"""
import os
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as error:
    sys.stderr.write(f"onnx_check.py needs onnxruntime and numpy in {sys.executable}: {error}\n")
    sys.exit(3)


def load(path):
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    from safetensors.numpy import load_file
    return load_file(path)["input"].astype(np.float32)


def save(path, array):
    if path.endswith(".npy"):
        np.save(path, array)
    else:
        from safetensors.numpy import save_file
        save_file({"output": np.ascontiguousarray(array, dtype=np.float32)}, path)


def main(argv):
    if len(argv) < 4 or len(argv) % 2 != 0:
        sys.stderr.write(__doc__)
        return 2
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if os.environ.get("ONNX_CHECK_NO_OPTIMIZATION"):
        # The graph as written, node by node (ONNX Runtime otherwise fuses, e.g. QDQ pairs into integer kernels).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(argv[1], options, providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    (graph_output,) = session.get_outputs()
    if graph_input.name != "input" or graph_output.name != "output":
        sys.stderr.write(f"expected one input 'input' and one output 'output', got {graph_input.name}, {graph_output.name}\n")
        return 1
    for input_path, output_path in zip(argv[2::2], argv[3::2]):
        (result,) = session.run(["output"], {"input": load(input_path)})
        save(output_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
