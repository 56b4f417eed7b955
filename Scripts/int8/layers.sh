#!/usr/bin/env bash
# The int8 path one layer at a time (Scripts/int8/layers.c over Sources/CNNKernels, built with clang -O2): VGG16's
# and GoogLeNet's layer shapes, quantisation, lowering and GEMM apart, one thread; and the VNNI instruction's peak.
#     Scripts/int8/layers.sh            # the widest instruction set; CNN_ISA=avx2 Scripts/int8/layers.sh holds it to AVX2
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${TMPDIR:-/tmp}/classiccnn-int8-layers-$$"
trap 'rm -f "$out"' EXIT
k=Sources/CNNKernels
clang -O2 -I"$k/include" -I"$k" Scripts/int8/layers.c "$k/int8.c" "$k/gemm.c" "$k/parallel.c" -lpthread -lm -o "$out"
lscpu | grep -E "^Model name" || true
"$out" peak
for shape in "64 224 64 3" "128 112 128 3" "256 56 256 3" "512 28 512 3" "512 14 512 3" "512 7 512 3" "256 8 256 3" "192 28 64 1" "480 14 192 1"; do
    "$out" $shape
done
