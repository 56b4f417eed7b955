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
ISA = None  # --isa: the instruction set every side is held to (ours through `cnn bench --isa`, theirs by environment)


# The networks beside LeNet-5, as ANCHORS.md measured them: name -> (our registry name and options, input size).
BIG = {
    "alexnet-cifar": (["alexnet-cifar"], 224),
    "vgg16": (["vgg16", "--classes", "10"], 224),
    "googlenet-torchvision": (["googlenet-torchvision"], 224),
}


def ours(cnn, model, batch, mode, steps):
    arguments = BIG[model][0] if model in BIG else [model]
    warmup = 1 if model in BIG else 5
    isa = ["--isa", ISA] if ISA else []
    out = subprocess.run([cnn, "bench", *arguments, "--batch-size", str(batch), f"--{mode}", "--steps", str(steps),
                          "--warmup", str(warmup), "--threads", str(THREADS), "--json", *isa],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_second"]


def settle(seconds=2.0):
    time.sleep(seconds)


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


def torch_alexnet_cifar():
    """The reference Keras CIFAR-10 AlexNet at 224 (46,787,978 parameters), as `cnn summary alexnet-cifar` lists it."""
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10))


def torch_model(model):
    import torchvision
    if model == "lenet5":
        return torch_lenet5(), (1, 32, 32), 10
    if model == "alexnet-cifar":
        return torch_alexnet_cifar(), (3, 224, 224), 10
    if model == "vgg16":
        return torchvision.models.vgg16(num_classes=10), (3, 224, 224), 10
    if model == "googlenet-torchvision":
        # With its two auxiliary heads in training (weighted 0.3, as in the paper), as ours.
        return torchvision.models.googlenet(num_classes=1000, aux_logits=True, init_weights=True), (3, 224, 224), 1000
    raise ValueError(model)


def torch_bench(model_name, batch, mode, steps, channels_last=False):
    import torch
    torch.set_num_threads(THREADS)
    model, shape, classes = torch_model(model_name)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    big = model_name in BIG
    warmup = 1 if big else 5
    if mode == "train":
        model.train()
        # LeNet-5 with Adam (as `cnn train`); the big networks with SGD and momentum (as `cnn bench`).
        optimizer = (torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9) if big
                     else torch.optim.Adam(model.parameters(), lr=1e-3))
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            if isinstance(out, tuple):  # GoogLeNet's (logits, aux2, aux1)
                loss = loss_fn(out[0], y) + 0.3 * (loss_fn(out[1], y) + loss_fn(out[2], y))
            else:
                loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
    return batch / timed_median(step, steps, warmup)


def tf_model(model):
    """Keras models, or None where ANCHORS.md has no TensorFlow figure (GoogLeNet)."""
    from tensorflow import keras
    layers = keras.layers
    if model == "lenet5":
        return keras.Sequential([
            keras.Input((32, 32, 1)),
            layers.Conv2D(6, 5, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(120, 5, activation="relu"), layers.Flatten(),
            layers.Dense(84, activation="relu"), layers.Dense(10, activation="softmax")]), (32, 32, 1), 10
    if model == "alexnet-cifar":
        return keras.Sequential([
            keras.Input((224, 224, 3)),
            layers.Conv2D(96, 11, strides=4, activation="relu"), layers.MaxPooling2D(3, 2),
            layers.Conv2D(256, 5, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
            layers.Conv2D(384, 3, padding="same", activation="relu"), layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(256, 3, padding="same", activation="relu"), layers.MaxPooling2D(3, 2), layers.Flatten(),
            layers.Dense(4096, activation="relu"), layers.Dropout(0.5), layers.Dense(4096, activation="relu"),
            layers.Dropout(0.5), layers.Dense(10, activation="softmax")]), (224, 224, 3), 10
    if model == "vgg16":
        return keras.applications.VGG16(weights=None, classes=10), (224, 224, 3), 10
    return None


def tf_bench(model_name, batch, mode, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from tensorflow import keras
    keras.backend.clear_session()
    built = tf_model(model_name)
    if built is None:
        return None
    model, shape, classes = built
    big = model_name in BIG
    optimizer = keras.optimizers.SGD(1e-4, momentum=0.9) if big else keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x = np.random.rand(batch, *shape).astype("float32")
    y = np.random.randint(0, classes, batch)
    if mode == "train":
        step = lambda: model.train_on_batch(x, y)
    else:
        step = lambda: model.predict_on_batch(x)
    return batch / timed_median(step, steps, 1 if big else 5)


def gemm_torch(n, threads, repeats=10):
    import torch
    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    seconds = timed_median(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * n ** 3 / seconds / 1e9


def gemm_torch_shape(m, n, k, transpose_a, transpose_b, threads):
    """torch.mm at a layer's shape, with A and B stored as our benchmark stores them (a transposed operand is a
    transposed view, which MKL takes without a copy)."""
    import torch
    torch.set_num_threads(threads)
    a = torch.rand(k, m).t() if transpose_a else torch.rand(m, k)
    b = torch.rand(n, k).t() if transpose_b else torch.rand(k, n)
    once = timed_median(lambda: torch.mm(a, b), 3, warmup=1)
    repeats = max(3, min(1000, int(0.05 / max(once, 1e-7))))
    return 2 * m * n * k / timed_median(lambda: torch.mm(a, b), repeats, warmup=1) / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn", required=True)
    parser.add_argument("--kernel-bench", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tensorflow", action="store_true")
    parser.add_argument("--models", default="lenet5",
                        help="comma-separated: lenet5, alexnet-cifar, vgg16, googlenet-torchvision, all, or none (GEMM only)")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM rows")
    parser.add_argument("--gemm-models", default="lenet5,alexnet-cifar,vgg16",
                        help="whose layer GEMMs to measure beside torch.mm (kernel-bench --models)")
    parser.add_argument("--isa", choices=["avx2"], help="hold every side to AVX2 on a wider machine: ours with `cnn bench "
                        "--isa`, PyTorch with ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA, TensorFlow with ONEDNN_MAX_CPU_ISA "
                        "and MKL_ENABLE_INSTRUCTIONS (set before either is imported)")
    args = parser.parse_args()
    global ISA
    if args.isa:
        ISA = args.isa
        os.environ.update({"CNN_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                           "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"})
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if line.startswith("Model name")), "unknown CPU")
    flags = open("/proc/cpuinfo").read()
    native = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "portable"
    import torch
    print(f"CPU: {cpu}, native {native}; held to {ISA or native}; PyTorch {torch.__version__} runs {torch.backends.cpu.get_cpu_capability()}")
    chosen = ["lenet5", *BIG] if args.models == "all" else args.models.split(",")

    workloads = [  # model, batch, mode, timed steps (the table)
        ("lenet5", 32, "train", 300), ("lenet5", 128, "train", 100),
        ("lenet5", 1000, "infer", 30), ("lenet5", 1, "infer", 500),
        ("alexnet-cifar", 32, "train", 4), ("alexnet-cifar", 32, "infer", 6),
        ("vgg16", 16, "train", 2), ("vgg16", 16, "infer", 3),
        ("googlenet-torchvision", 16, "train", 4), ("googlenet-torchvision", 16, "infer", 6),
    ]
    columns = ["ours", "pytorch", "torch-CL", "tensorflow"]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {THREADS} threads, medians of {args.runs} runs; images/s (batch 1: ms)")
    print(f"{'workload':34}" + "".join(f"{c:>12}" for c in columns) + f"{'ratio':>8}")
    for model, batch, mode, steps in workloads:
        if model not in chosen:
            continue
        figures = {c: [] for c in columns}
        for _ in range(args.runs):  # interleaved, so noise hits all alike
            # Each measurement starts after a pause: the frameworks' OpenMP and Eigen workers spin for a while after
            # their last step, and would otherwise take a core from whatever is measured next.
            settle()
            figures["ours"].append(ours(args.cnn, model, batch, mode, steps))
            settle()
            figures["pytorch"].append(torch_bench(model, batch, mode, steps))
            if model in BIG:  # channels_last: the better PyTorch layout for the big networks in ANCHORS.md
                settle()
                figures["torch-CL"].append(torch_bench(model, batch, mode, steps, channels_last=True))
            if args.tensorflow:
                settle()
                figure = tf_bench(model, batch, mode, steps)
                if figure is not None:
                    figures["tensorflow"].append(figure)
        med = {k: statistics.median(v) for k, v in figures.items() if v}
        best = max(v for k, v in med.items() if k != "ours")
        def show(k):
            if k not in med:
                return f"{'-':>12}"
            if batch == 1:
                return f"{1000 / med[k]:>10.3f}ms"
            return f"{med[k]:>12,.0f}" if med[k] >= 100 else f"{med[k]:>12.2f}"
        print(f"{model + ' ' + mode + ' b' + str(batch):34}" + "".join(show(c) for c in columns) + f"{med['ours'] / best:>8.2f}x")
        sys.stdout.flush()
    if args.no_gemm:
        return

    # Ours from --runs kernel-bench runs, theirs from --runs torch.mm measurements of every shape, interleaved run by
    # run (after a pause, as for the networks), each row's median reported.
    ours_runs, theirs_runs = [], []
    for _ in range(args.runs):
        settle()
        ours_runs.append(json.loads(subprocess.run([args.kernel_bench, "--json", "--quick", "--models", args.gemm_models],
                                                   check=True, capture_output=True, text=True).stdout))
        settle()
        theirs_runs.append([gemm_torch(r["m"], r["threads"]) if r["shape"].startswith("square") else
                            gemm_torch_shape(r["m"], r["n"], r["k"], r["transpose_a"], r["transpose_b"], r["threads"])
                            for r in ours_runs[0]])
    def key(r):
        return r["shape"], r["m"], r["n"], r["k"], r["transpose_a"], r["transpose_b"], r["threads"]
    for run in ours_runs[1:]:
        if [key(r) for r in run] != [key(r) for r in ours_runs[0]]:
            sys.exit("kernel-bench listed other products in another run")
    rows = [dict(r, gflops=statistics.median(run[i]["gflops"] for run in ours_runs),
                 theirs=statistics.median(run[i] for run in theirs_runs)) for i, r in enumerate(ours_runs[0])]
    print(f"\n{'GEMM GFLOP/s':28}{'ours':>12}{'torch.mm':>12}{'ratio':>8}")
    for r in rows:
        if r["shape"].startswith("square"):
            print(f"{r['m']}^3, {r['threads']} thread(s)".ljust(28) + f"{r['gflops']:>12.1f}{r['theirs']:>12.1f}{r['gflops'] / r['theirs']:>8.2f}x")
    # The GEMMs that the LeNet-5, AlexNet and VGG16 layers send in the goal table's workloads, as kernel-bench traces
    # them: each layer's distinct products forward and backward, their share of the workload's GEMM work, the threads
    # the layer gave them. A workload's GEMM ratio weighs each product by its work: the time torch.mm would take for
    # the workload's products over the time ours take, at the layers' thread counts.
    print(f"\n{'GEMM GFLOP/s at layer shapes':48}{'op M x N x K':>24}{'work':>7}{'layer':>6}{'threads':>8}{'ours':>9}{'torch.mm':>10}{'ratio':>8}")
    ratios, at_layer, workloads = [], [], {}
    for r in rows:
        if r["shape"].startswith("square"):
            continue
        theirs = r["theirs"]
        ratio = r["gflops"] / theirs
        ratios.append(ratio)
        if r["threads"] == r["layer_threads"]:
            at_layer.append(ratio)
            work = r["m"] * r["n"] * r["k"] * r["calls"]
            mine_time, their_time = workloads.get(r["workload"], (0.0, 0.0))
            workloads[r["workload"]] = (mine_time + work / r["gflops"], their_time + work / theirs)
        op = ("T" if r["transpose_a"] else "N") + ("T" if r["transpose_b"] else "N")
        shape = f"{op} {r['m']} x {r['n']} x {r['k']}"
        print(f"{r['shape']:48}{shape:>24}{100 * r['share']:>6.1f}%{str(r['layer_threads']) + 't':>6}{r['threads']:>8}"
              f"{r['gflops']:>9.1f}{theirs:>10.1f}{ratio:>8.2f}x")
    if ratios:
        print(f"all layer shapes, 1 and 2 threads: median ratio {statistics.median(ratios):.2f}x, lowest {min(ratios):.2f}x, "
              f"{sum(x >= 0.9 for x in ratios)} of {len(ratios)} at 0.9x or more")
        print(f"at the layers' own thread counts: median ratio {statistics.median(at_layer):.2f}x, lowest {min(at_layer):.2f}x, "
              f"{sum(x >= 0.9 for x in at_layer)} of {len(at_layer)} at 0.9x or more")
        for name, (mine_time, their_time) in workloads.items():
            print(f"{name}: its GEMMs take {their_time / mine_time:.2f}x as long in torch.mm as in ours (work-weighted)")

if __name__ == "__main__":
    main()
