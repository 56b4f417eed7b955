#!/usr/bin/env bash
# Inference beside the engines people deploy with (issue #20): ClassicCNN's `cnn bench --infer` against ONNX Runtime
# and OpenVINO running our own `cnn export` of the same network, 2 threads, float32, medians of interleaved runs.
#
#     Scripts/engines/run.sh [--runs 5] [--models lenet5,googlenet-torchvision|all] [--batches 1,16] [--no-fold] [--no-fusion]
#
# Makes a venv (.venv-engines, or $ENGINES_VENV) and installs onnxruntime and openvino from PyPI the first time.
# `--models all --runs 5` takes about 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${ENGINES_VENV:-.venv-engines}"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q onnxruntime openvino numpy
swift build -c release --product cnn >&2
exec "$venv/bin/python" Scripts/engines/engines.py --cnn .build/release/cnn "$@"
