#!/usr/bin/env bash
# Fuzzes one reader of untrusted files with libFuzzer for a while (default 120 s):
#   Scripts/fuzz.sh safetensors|checkpoint|idx|mnist|cifar|image|torch [SECONDS]
# Builds the Fuzz/ package with --sanitize=fuzzer, starts from the committed cases in Tests/Corpus/TARGET (and the
# inputs it found before, kept in .build/fuzz-corpus/TARGET), and writes any input that crashes, leaks or times out
# to Tests/Corpus/TARGET/found-*. Commit such a file with the fix: the test suite replays every file there.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: Scripts/fuzz.sh safetensors|checkpoint|idx|mnist|cifar|image|torch [SECONDS]}"
seconds="${2:-120}"
[ -d "Tests/Corpus/$target" ] || { echo "no such target: $target (see Tests/Corpus)" >&2; exit 64; }
# SwiftPM does not notice files added to a path dependency (the library, here) in a cached build plan: drop the plan.
(cd Fuzz && rm -f .build/release/description.json .build/release.yaml && swift build -c release --sanitize=fuzzer)
work=".build/fuzz-corpus/$target"
mkdir -p "$work"
# Inputs up to 64 kB; 10 s per input is a hang; 3 GB is a runaway allocation.
CNN_FUZZ_TARGET="$target" Fuzz/.build/release/cnn-fuzz "$work" "Tests/Corpus/$target" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=3072 -malloc_limit_mb=3072 \
    -artifact_prefix="Tests/Corpus/$target/found-" -print_final_stats=1
