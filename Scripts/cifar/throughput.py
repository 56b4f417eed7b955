"""Training throughput of the CIFAR-10 recipe, ours against PyTorch, interleaved in one run on one machine:
`cnn bench vgg11-bn --input-size 32 --classes 10 --train --batch-size 128` against the identical PyTorch network
(Scripts/cifar/vgg11_bn_torch.py) doing forward, loss, backward and an SGD step on the same batch size.

    python Scripts/cifar/throughput.py --cnn .build/release/cnn --runs 5 --steps 20

Prints the CPU, our instruction set, each run's images/s and the medians with their ratio; the time to a given
accuracy follows from it, since both reach the same accuracy per epoch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))


def cpu():
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), "unknown")
    flags = open("/proc/cpuinfo").read()
    isa = "avx512" if " avx512f " in flags else "avx2" if " avx2 " in flags else "other"
    return model, isa


def ours(cnn, batch, steps, threads):
    out = subprocess.run([cnn, "bench", "vgg11-bn", "--input-size", "32", "--classes", "10", "--train", "--batch-size", str(batch),
                          "--steps", str(steps), "--warmup", "2", "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def torch_run(batch, steps, threads):
    import torch
    import torch.nn.functional as F
    from vgg11_bn_torch import vgg11_bn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = vgg11_bn().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn", default=".build/release/cnn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    model, isa = cpu()
    print(f"CPU: {model}; instruction set: {isa}; torch {torch.__version__}; {args.threads} threads; batch {args.batch_size}", flush=True)
    mine, theirs = [], []
    for run in range(args.runs):
        report = ours(args.cnn, args.batch_size, args.steps, args.threads)
        mine.append(report["images_per_second"])
        time.sleep(2)
        theirs.append(torch_run(args.batch_size, args.steps, args.threads))
        print(f"run {run + 1}: ours {mine[-1]:.1f} img/s ({report.get('isa', isa)}), PyTorch {theirs[-1]:.1f} img/s", flush=True)
        time.sleep(2)
    a, b = statistics.median(mine), statistics.median(theirs)
    print(f"median: ours {a:.1f} img/s, PyTorch {b:.1f} img/s, ratio {a / b:.2f}x")


if __name__ == "__main__":
    main()
