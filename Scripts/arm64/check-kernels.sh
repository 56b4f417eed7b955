#!/usr/bin/env bash
# Builds the C kernels for arm64 with the toolchain's clang and runs two checks under qemu-aarch64:
#   gemm_check.c     the GEMM's NEON micro-kernel against the naive product, and A packed once against A packed per
#                    call;
#   kernels_check.c  every other kernel (built from all of Sources/CNNKernels), which on arm64 runs its portable C,
#                    compiled with arm64's FMA contraction: Winograd F(4x4, 3x3) and F(2x2, 5x5) (forward, 1 against
#                    2 threads, fused ReLU, prepared filter, folded scale and shift, input and weight gradients), the
#                    direct convolution (not offered on arm64; its portable path), im2col + GEMM and col2im, max pooling
#                    (values and indices, with ties, NaN, infinities and signed zeros; its backward pass), average
#                    pooling, batch norm's sums, LRN, the element-wise kernels (scale and shift, bias, ReLU, softmax
#                    cross-entropy with label smoothing, dropout, SGD, Adam), each against its naive twin or a plain
#                    loop, on the shapes and with the tolerances of the Swift tests (the same bits where they demand
#                    them).
# This checks the arithmetic, not the speed (qemu emulates; about half a minute). Each prints its failures and a summary;
# the script fails if either does.
# Then gemm_check and kernels_check are built for this x86 machine and run once per instruction set it has
# (CNN_ISA=portable, avx2, and the widest), so that the GEMM and the kernels which follow the active instruction set
# (Winograd's transforms, dropout, ...) have each of their paths checked, not only the widest one that the Swift tests
# take. Needs, on Debian:
#     apt-get install qemu-user libc6-dev-arm64-cross libgcc-12-dev-arm64-cross
set -euo pipefail
cd "$(dirname "$0")/../.."
kernels=Sources/CNNKernels
out="${TMPDIR:-/tmp}/classiccnn-arm64-$$"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
gcc_dir=$(ls -d /usr/lib/gcc-cross/aarch64-linux-gnu/* | sort -V | tail -1)
build() {  # build OUTPUT SOURCES...
    local output=$1
    shift
    clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -isystem /usr/aarch64-linux-gnu/include \
        -B"$gcc_dir" -L"$gcc_dir" -fuse-ld=lld -static -O2 -Wall -I"$kernels/include" -I"$kernels" \
        "$@" -lpthread -lm -o "$out/$output"
}
build gemm_check Scripts/arm64/gemm_check.c "$kernels/gemm.c" "$kernels/parallel.c"
build kernels_check Scripts/arm64/kernels_check.c "$kernels"/*.c
status=0
qemu-aarch64 "$out/gemm_check" || status=1
qemu-aarch64 "$out/kernels_check" || status=1
if [ "$(uname -m)" = x86_64 ]; then
    clang -O2 -Wall -I"$kernels/include" -I"$kernels" Scripts/arm64/kernels_check.c "$kernels"/*.c -lpthread -lm \
        -o "$out/kernels_check_native"
    clang -O2 -Wall -I"$kernels/include" -I"$kernels" Scripts/arm64/gemm_check.c "$kernels/gemm.c" "$kernels/parallel.c" \
        -lpthread -lm -o "$out/gemm_check_native"
    for isa in portable avx2 avx512; do
        CNN_ISA=$isa "$out/gemm_check_native" || status=1
        if CNN_ISA=$isa "$out/kernels_check_native" > "$out/native.log" 2>&1; then
            grep "^kernels on" "$out/native.log"
        else
            cat "$out/native.log"
            status=1
        fi
    done
fi
exit $status
