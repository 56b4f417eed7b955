#!/usr/bin/env python3
"""The cost of MPI on one machine (issue #16): training images/s of 2 ranks x 1 thread against 1 process x 2 threads,
interleaved, medians of --runs; and for the 2-rank runs the allreduce's bytes per step, its time alone, the time
ranks waited for it after backward, and the share of the step that wait is.

    Scripts/mpi/bench.py --cnn .build-mpi/release/cnn [--runs 3] [--models lenet5,alexnet-cifar,...]

Each run is `cnn train MODEL --epochs 2 --steps-per-epoch N`; the figure is the second epoch's (the first includes
the buffers' allocation). Needs CNN_DATA_DIR. Prints the CPU (lscpu) first: quote it beside the figures.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile

SETTINGS = {  # model: (dataset, input size, global batch, steps per epoch)
    "lenet5": ("mnist", 32, 32, 300),
    "alexnet-cifar": ("cifar10", 32, 32, 60),
    "vgg16": ("cifar10", 224, 32, 3),
    "googlenet": ("cifar10", 224, 32, 6),
    "inception-v3": ("cifar10", 299, 32, 3),
}

def run(cnn, model, ranks, work, extra=()):
    dataset, size, batch, steps = SETTINGS[model]
    folder = tempfile.mkdtemp(dir=work)
    command = [cnn, "train", model, "--dataset", dataset, "--input-size", str(size), "--classes", "10",
               "--batch-size", str(batch), "--steps-per-epoch", str(steps), "--epochs", "2", "--validation-steps", "1",
               "--optimizer", "sgd", "--lr", "0.001", "--momentum", "0.9", "--seed", "1", "--checkpoint-dir", folder]
    if ranks == 1:
        command += ["--threads", "2"]
    elif ranks == "apart":
        # What 2 ranks compute without communicating: 2 processes of half the batch on 1 thread each, at once.
        half = list(command) + ["--threads", "1"]
        half[half.index("--batch-size") + 1] = str(batch // 2)
        second = half[:-4] + ["--checkpoint-dir", tempfile.mkdtemp(dir=work), "--threads", "1"]
        other = subprocess.Popen(second, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command = half
    else:
        command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks)] + command + ["--threads", "1"] + list(extra)
    output = subprocess.run(command, capture_output=True, text=True)
    if ranks == "apart":
        other.wait()
        shutil.rmtree(second[second.index("--checkpoint-dir") + 1], ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # a VGG16 checkpoint is 1.6 GB
    text = output.stdout.replace("\r", "\n")
    if output.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{text[-2000:]}\n{output.stderr[-2000:]}")
    speeds = [float(x.replace(",", "")) for x in re.findall(r"([\d,]+) img/s", text)]
    waits = re.findall(r"allreduce wait ([\d.]+)s \(([\d.]+)%\)", text)
    seconds = re.findall(r" - ([\d.]+)s - [\d,]+ img/s", text)
    alone = re.search(r"Gradient allreduce: ([\d.]+) MB per step in (\d+) bucket.*alone it takes ([\d.]+) ms", text)
    # cnn prints whole images/s and seconds to 0.1: the more precise of the two.
    speed = speeds[-1]
    if seconds and float(seconds[-1]) >= 2:
        speed = steps * (batch // 2 if ranks == "apart" else batch) / float(seconds[-1])
    result = {"speed": speed * (2 if ranks == "apart" else 1)}
    if waits:
        result["wait_ms"] = float(waits[-1][0]) * 1000 / steps
        result["wait_share"] = float(waits[-1][1])
        result["step_ms"] = float(seconds[-1]) * 1000 / steps if seconds else None
    if alone:
        result["mb"], result["buckets"], result["alone_ms"] = float(alone.group(1)), int(alone.group(2)), float(alone.group(3))
    return result

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default=",".join(SETTINGS))
    args = parser.parse_args()
    print(subprocess.run("lscpu | grep -E 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    flags = subprocess.run("lscpu", capture_output=True, text=True).stdout
    print("ISA:", "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "other")
    work = tempfile.mkdtemp(prefix="cnn-mpi-bench-")
    print("| network | 1 process x 2 threads | 2 ranks x 1 thread | ratio | 2 processes apart (no communication) | "
          "2 ranks, sums after backward | allreduce MB/step (buckets) | alone ms | wait after backward ms/step (share of step) | "
          "communication's cost ms/step, overlapped / not |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        one, two, apart, late = [], [], [], []
        for _ in range(args.runs):
            one.append(run(args.cnn, model, 1, work))
            two.append(run(args.cnn, model, 2, work))
            apart.append(run(args.cnn, model, "apart", work))
            late.append(run(args.cnn, model, 2, work, ["--no-overlap"]))
        m = lambda rows, key: statistics.median(r[key] for r in rows)
        batch = SETTINGS[model][2]
        step = lambda rows: batch / m(rows, "speed") * 1000
        f = lambda x: f"{x:,.0f}" if x >= 100 else f"{x:.2f}"
        print(f"| {model} | {f(m(one, 'speed'))} | {f(m(two, 'speed'))} | {m(two, 'speed') / m(one, 'speed'):.2f}x "
              f"| {f(m(apart, 'speed'))} | {f(m(late, 'speed'))} "
              f"| {two[0]['mb']:.2f} ({two[0]['buckets']}) | {m(two, 'alone_ms'):.2f} | {m(two, 'wait_ms'):.2f} ({m(two, 'wait_share'):.1f}%) "
              f"| {step(two) - step(apart):.1f} / {step(late) - step(apart):.1f} |", flush=True)

main()
