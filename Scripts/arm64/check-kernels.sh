#!/usr/bin/env bash
# Builds the C kernels for arm64 with the toolchain's clang and runs gemm_check.c under qemu-aarch64: the NEON
# micro-kernel against the naive product. This checks the arithmetic, not the speed (qemu emulates). Needs, on Debian:
#     apt-get install qemu-user libc6-dev-arm64-cross libgcc-12-dev-arm64-cross
set -euo pipefail
cd "$(dirname "$0")/../.."
kernels=Sources/CNNKernels
out="${TMPDIR:-/tmp}/classiccnn-arm64-$$"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
gcc_dir=$(ls -d /usr/lib/gcc-cross/aarch64-linux-gnu/* | sort -V | tail -1)
clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -isystem /usr/aarch64-linux-gnu/include \
    -B"$gcc_dir" -L"$gcc_dir" -fuse-ld=lld -static -O2 -Wall -I"$kernels/include" -I"$kernels" \
    Scripts/arm64/gemm_check.c "$kernels/gemm.c" "$kernels/parallel.c" -lpthread -lm -o "$out/gemm_check"
qemu-aarch64 "$out/gemm_check"
