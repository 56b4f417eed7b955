#!/usr/bin/env python3
"""Int8 against float32 inference (issue #20): `cnn bench --infer` and `cnn bench --infer --int8` on the same network
and batch, interleaved, medians of --runs, and their ratio. Prints the CPU (lscpu), the instruction set and the int8
kernel beside the figures.

    Scripts/int8/bench.py --cnn .build/release/cnn [--runs 5] [--isa avx2] [--models vgg16:16,googlenet-torchvision:1]

A model is NAME:BATCH; networks of the 224/299 registry run with 10 classes. The int8 run calibrates on the
benchmark's own random batch (the speed does not depend on the values); `cnn quantize` does it on real images.
"""
import argparse, re, statistics, subprocess

DEFAULT = ("lenet5:1000,alexnet-cifar:32,vgg16:1,vgg16:16,googlenet-torchvision:1,googlenet-torchvision:16,"
           "inception-v3:1,inception-v3:16,inception-v4:16")

def bench(cnn, model, batch, int8, isa, steps):
    command = [cnn, "bench", model, "--infer", "--batch-size", str(batch), "--steps", str(steps), "--warmup", "3"]
    if model not in ("lenet5", "lenet5-1998", "alexnet-cifar"):
        command += ["--classes", "10"]
    if int8:
        command.append("--int8")
    if isa:
        command += ["--isa", isa]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    kernels = re.search(r"threads, (.*), median", out).group(1)
    return float(re.search(r"([\d.]+) images/s", out).group(1)), kernels

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cnn", default=".build/release/cnn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--isa", help="hold the kernels to this instruction set (avx2, portable)")
    parser.add_argument("--models", default=DEFAULT)
    args = parser.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    print(next((l for l in cpu.splitlines() if l.startswith("Model name")), "Model name: ?"))
    flags = next((l for l in cpu.splitlines() if l.startswith("Flags")), "")
    print("CPU has:", " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags))
    print(f"| network, batch | float32 images/s | int8 images/s | int8 / float32 | kernels |")
    print("|---|---|---|---|---|")
    for item in args.models.split(","):
        model, batch = item.split(":")
        steps = 30 if int(batch) > 1 else 100
        if model == "lenet5":
            steps = 200
        floats, int8s, kernels = [], [], ""
        for _ in range(args.runs):
            floats.append(bench(args.cnn, model, int(batch), False, args.isa, steps)[0])
            value, kernels = bench(args.cnn, model, int(batch), True, args.isa, steps)
            int8s.append(value)
        f, q = statistics.median(floats), statistics.median(int8s)
        print(f"| {model}, {batch} | {f:,.1f} | {q:,.1f} | {q / f:.2f}x | {kernels} |", flush=True)

if __name__ == "__main__":
    main()
