#!/usr/bin/env bash
# The CIFAR-10 result of the README, both sides: our vgg11-bn run (30 epochs; resumable, so run this again after an
# interruption and it continues) and PyTorch's first 3 epochs of the identical recipe, then one plot of both.
#
#   Scripts/cifar/run.sh [RUNS_DIR]      (default: ../runs, outside the work tree; CNN_DATA_DIR must hold the data)
#
# PyTorch comes from a venv (ANCHORS_VENV, default .venv-anchors) made on first use, as Scripts/anchors/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-../runs}"
data="${CNN_DATA_DIR:?set CNN_DATA_DIR to the folder holding cifar-10-batches-bin}"
mkdir -p "$runs/vgg11-bn-cifar10" "$runs/torch-vgg11-bn"
swift build -c release --product cnn
resume=()
[ -f "$runs/vgg11-bn-cifar10/checkpoints/last.safetensors" ] && resume=(--resume)
lscpu | grep -E "Model name|Flags" | sed 's/Flags:.*\(avx512f\).*/Flags: ... \1 .../' || true
.build/release/cnn train vgg11-bn --dataset cifar10 --input-size 32 --classes 10 \
    --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --lr-schedule onecycle \
    --augment crop --batch-size 128 --epochs 30 --seed 1 \
    --checkpoint-dir "$runs/vgg11-bn-cifar10/checkpoints" --log-dir "$runs/vgg11-bn-cifar10/logs" "${resume[@]}"
venv="${ANCHORS_VENV:-.venv-anchors}"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q torch numpy
if [ ! -s "$runs/torch-vgg11-bn/metrics.csv" ] || [ "$(wc -l < "$runs/torch-vgg11-bn/metrics.csv")" -lt 4 ]; then
    "$venv/bin/python" Scripts/cifar/vgg11_bn_torch.py --data "$data/cifar-10-batches-bin" --epochs 3 --total-epochs 30 \
        --out "$runs/torch-vgg11-bn/metrics.csv"
fi
.build/release/cnn plot "$runs/vgg11-bn-cifar10/logs" "$runs/torch-vgg11-bn/metrics.csv" --labels ours,pytorch \
    --output "$runs/cifar10-vgg11-bn.png"
"$venv/bin/python" Scripts/cifar/throughput.py --cnn .build/release/cnn --runs 5 --steps 20
