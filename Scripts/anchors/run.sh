#!/usr/bin/env bash
# Side-by-side benchmark: ClassicCNN against PyTorch (and TensorFlow with --tensorflow) on this machine, the same
# models at the same shapes, 2 threads, medians of repeated runs, printed with the ratio ours / best anchor.
#
#     Scripts/anchors/run.sh [--tensorflow] [--runs 5] [--models lenet5|alexnet-cifar|vgg16|googlenet-torchvision|all|none] [--no-gemm] [--isa avx2]
#
# --isa avx2 holds every side to AVX2 on an AVX-512 machine (ours: cnn bench --isa; PyTorch: ATEN_CPU_CAPABILITY and
# ONEDNN_MAX_CPU_ISA; TensorFlow: ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS); the header names the CPU.
#
# The GEMM rows compare torch.mm at 512, 1024 and 2048 square and at every product that kernel-bench traces in the
# layers of LeNet-5, AlexNet and VGG16 (--gemm-models chooses), ours and theirs both medians of --runs (about 15 minutes
# for 5).
#
# LeNet-5 takes about 2 minutes with TensorFlow; `--models all` about 40 (VGG16 training steps take 6-15 s each).
#
# Makes a venv (.venv-anchors, or $ANCHORS_VENV) and installs torch (and tensorflow-cpu) from PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${ANCHORS_VENV:-.venv-anchors}"
packages=(torch torchvision numpy)
for argument in "$@"; do [ "$argument" = "--tensorflow" ] && packages+=(tensorflow-cpu); done
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q "${packages[@]}"
swift build -c release --product cnn >&2
swift build -c release --product kernel-bench >&2
exec "$venv/bin/python" Scripts/anchors/anchors.py --cnn .build/release/cnn --kernel-bench .build/release/kernel-bench "$@"
