#!/usr/bin/env bash
# Time to fetch and convert torchvision's weight files, the peak memory while converting, and the agreement of our
# network on the converted weights with PyTorch's on the file: torchvision networks with seeded random weights
# (Scripts/weights/make_files.py; the classic files' legacy format for VGG) served from a local HTTP server, fetched
# by Benchmarks/WeightsBench, one process per file. The table in docs/reference.md (Weights from PyTorch and torchvision) comes from here.
#
#     Scripts/weights/measure.sh [FOLDER] [NAMES...]     (default: ../weights-measure; vgg19 googlenet inception_v3 alexnet)
set -euo pipefail
cd "$(dirname "$0")/../.."
folder="${1:-../weights-measure}"; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(vgg19 googlenet inception_v3 alexnet)
venv="${ANCHORS_VENV:-.venv-anchors}"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q torch torchvision safetensors numpy
swift build -c release --product weights-bench >&2
mkdir -p "$folder"
"$venv/bin/python" Scripts/weights/make_files.py "$folder" "${names[@]}" >&2
port=$((20000 + RANDOM % 20000))
"$venv/bin/python" -m http.server "$port" --bind 127.0.0.1 --directory "$folder" >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
sleep 1
lscpu | grep -E "Model name" || true
declare -A ours=([vgg19]=vgg19 [vgg16]=vgg16 [googlenet]=googlenet-torchvision [inception_v3]=inception-v3 [alexnet]=alexnet-torchvision)
for name in "${names[@]}"; do
    file=$(cd "$folder" && ls "$name"-*.pth | head -1)
    .build/release/weights-bench --model "${ours[$name]}" --url "http://127.0.0.1:$port/$file" --reference "$folder/$name.safetensors"
done
