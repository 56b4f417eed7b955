"""ClassicCNN beside PyTorch and TensorFlow, measured in the same run on the same machine.

Each workload runs `--runs` times per framework (each run: warm-up steps, then timed steps; the run's figure is the
median step), and the table shows the median over runs, our figure, the best anchor's, and the ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

THREADS = 2


def ours(cnn, model, batch, mode, steps):
    out = subprocess.run([cnn, "bench", model, "--batch-size", str(batch), f"--{mode}", "--steps", str(steps),
                          "--threads", str(THREADS), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_second"]


def timed_median(step, steps, warmup=5):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_lenet5():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def torch_bench(batch, mode, steps):
    import torch
    torch.set_num_threads(THREADS)
    model = torch_lenet5()
    x = torch.rand(batch, 1, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if mode == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
    return batch / timed_median(step, steps)


def tf_bench(batch, mode, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from tensorflow import keras
    model = keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(6, 5, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(120, 5, activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(84, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.rand(batch, 32, 32, 1).astype("float32")
    y = np.random.randint(0, 10, batch)
    if mode == "train":
        step = lambda: model.train_on_batch(x, y)
    else:
        step = lambda: model.predict_on_batch(x)
    return batch / timed_median(step, steps)


def gemm_torch(n, threads, repeats=10):
    import torch
    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    seconds = timed_median(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * n ** 3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn", required=True)
    parser.add_argument("--kernel-bench", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tensorflow", action="store_true")
    args = parser.parse_args()

    workloads = [  # model, batch, mode, timed steps
        ("lenet5", 32, "train", 300), ("lenet5", 128, "train", 100),
        ("lenet5", 1000, "infer", 30), ("lenet5", 1, "infer", 500),
    ]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {THREADS} threads, medians of {args.runs} runs; images/s (batch 1: ms)")
    print(f"{'workload':28}{'ours':>12}{'pytorch':>12}{'tensorflow':>12}{'ratio':>8}")
    for model, batch, mode, steps in workloads:
        figures = {"ours": [], "pytorch": [], "tensorflow": []}
        for _ in range(args.runs):  # interleaved, so noise hits all alike
            figures["ours"].append(ours(args.cnn, model, batch, mode, steps))
            figures["pytorch"].append(torch_bench(batch, mode, steps))
            if args.tensorflow:
                figures["tensorflow"].append(tf_bench(batch, mode, steps))
        med = {k: statistics.median(v) for k, v in figures.items() if v}
        best = max(v for k, v in med.items() if k != "ours")
        def show(k):
            if k not in med:
                return f"{'-':>12}"
            return f"{1000 / med[k]:>10.3f}ms" if batch == 1 else f"{med[k]:>12,.0f}"
        print(f"{model + ' ' + mode + ' b' + str(batch):28}{show('ours')}{show('pytorch')}{show('tensorflow')}"
              f"{med['ours'] / best:>8.2f}x")
        sys.stdout.flush()

    ours_gemm = json.loads(subprocess.run([args.kernel_bench, "--json", "--quick"], check=True,
                                          capture_output=True, text=True).stdout)
    print(f"\n{'GEMM GFLOP/s':28}{'ours':>12}{'torch.mm':>12}{'ratio':>8}")
    for n in (512, 1024, 2048):
        for threads in (1, 2):
            mine = next(r["gflops"] for r in ours_gemm if r["shape"] == f"square {n}" and r["threads"] == threads)
            theirs = statistics.median(gemm_torch(n, threads) for _ in range(args.runs))
            print(f"{f'{n}^3, {threads} thread(s)':28}{mine:>12.1f}{theirs:>12.1f}{mine / theirs:>8.2f}x")


if __name__ == "__main__":
    main()
