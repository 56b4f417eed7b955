"""ClassicCNN's inference beside ONNX Runtime and OpenVINO on the very same graph and weights (issue #20).

Each network is exported once with `cnn export --model NAME --seed 0` (the weights do not change the speed); each
workload then runs --runs times per engine, interleaved (ours, ONNX Runtime, OpenVINO, ours, ...), each run warm-up
calls then timed calls whose median is the run's figure, and the table prints the median over runs: images/s, and
for batch 1 the latency in ms as well. All float32, --threads threads (2 by default).

    Scripts/engines/run.sh [--runs 5] [--models lenet5,googlenet-torchvision|all] [--batches 1,16] [--no-fold]

--no-fold and --no-fusion pass `--no-bn-folding` / `--no-fusion` to `cnn bench`, to show what each gains.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name -> (our registry name and options, input size, batch sizes of the table)
NETWORKS = {
    "lenet5": (["lenet5"], 32, [1, 1000]),
    "alexnet-cifar": (["alexnet-cifar"], 224, [1, 32]),
    "vgg16": (["vgg16", "--classes", "10"], 224, [1, 16]),
    "googlenet-torchvision": (["googlenet-torchvision", "--classes", "10"], 224, [1, 16]),
    "inception-v3": (["inception-v3", "--classes", "10"], 299, [1, 16]),
    "inception-v4": (["inception-v4", "--classes", "10"], 299, [1, 16]),
}


def calls_for(model, batch):
    """Timed calls per run: about a second of work or more, at least 3."""
    heavy = {"lenet5": 0.0002, "alexnet-cifar": 0.01, "vgg16": 0.1, "googlenet-torchvision": 0.03,
             "inception-v3": 0.06, "inception-v4": 0.12}[model] * batch
    return max(3, min(500, int(2.0 / max(heavy, 1e-4))))


def ours(cnn, model, batch, calls, threads, extra):
    arguments = NETWORKS[model][0]
    out = subprocess.run([cnn, "bench", *arguments, "--batch-size", str(batch), "--infer", "--steps", str(calls),
                          "--warmup", "2", "--threads", str(threads), "--json", *extra],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ms_per_step"] / 1000


def timed_median(call, calls, warmup=2):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def seconds(self, x, calls):
        return timed_median(lambda: self.session.run(["output"], {"input": x}), calls)


class OpenVINO:
    name = "openvino"

    def __init__(self, path, threads):
        import openvino as ov
        core = ov.Core()
        self.compiled = core.compile_model(path, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1})
        self.request = self.compiled.create_infer_request()

    def seconds(self, x, calls):
        return timed_median(lambda: self.request.infer({0: x}), calls)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cnn", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="all", help="comma-separated names, or all: " + ", ".join(NETWORKS))
    parser.add_argument("--batches", help="comma-separated batch sizes instead of each network's own (1 and 16 or 32 or 1000)")
    parser.add_argument("--no-fold", action="store_true", help="ours without batch-norm folding (cnn bench --no-bn-folding)")
    parser.add_argument("--no-fusion", action="store_true", help="ours without ReLU fusion (cnn bench --no-fusion)")
    parser.add_argument("--keep", help="folder for the ONNX files (default: a temporary one)")
    args = parser.parse_args()
    import numpy as np
    import onnxruntime
    import openvino
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if line.startswith("Model name")), "unknown CPU")
    flags = open("/proc/cpuinfo").read()
    native = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "portable"
    vnni = " + VNNI" if "avx512_vnni" in flags or "avx_vnni" in flags else ""
    print(f"CPU: {cpu}, {native}{vnni}; ONNX Runtime {onnxruntime.__version__}, OpenVINO {openvino.__version__}; "
          f"{args.threads} threads, float32, medians of {args.runs} interleaved runs; {time.strftime('%Y-%m-%d %H:%M')}")
    extra = (["--no-bn-folding"] if args.no_fold else []) + (["--no-fusion"] if args.no_fusion else [])
    if extra:
        print("ours with " + " ".join(extra))
    chosen = list(NETWORKS) if args.models == "all" else args.models.split(",")
    folder = args.keep or tempfile.mkdtemp(prefix="cnn-engines-")
    os.makedirs(folder, exist_ok=True)
    print(f"{'network, batch':30}{'ours':>11}{'onnxruntime':>13}{'openvino':>11}{'ours/best':>11}   batch 1: ms ours / best")
    rows = []
    for model in chosen:
        arguments, size, batches = NETWORKS[model]
        path = os.path.join(folder, f"{model}.onnx")
        if not os.path.exists(path):
            subprocess.run([args.cnn, "export", "--model", *arguments, "--seed", "0", "--output", path], check=True,
                           capture_output=True)
        channels = 1 if model == "lenet5" else 3
        engines = [OnnxRuntime(path, args.threads), OpenVINO(path, args.threads)]
        for batch in ([int(b) for b in args.batches.split(",")] if args.batches else batches):
            x = np.random.default_rng(1).random((batch, channels, size, size), dtype=np.float32)
            calls = calls_for(model, batch)
            times = {"ours": [], "onnxruntime": [], "openvino": []}
            for _ in range(args.runs):
                times["ours"].append(ours(args.cnn, model, batch, calls, args.threads, extra))
                for engine in engines:
                    times[engine.name].append(engine.seconds(x, calls))
            median = {k: statistics.median(v) for k, v in times.items()}
            rate = {k: batch / v for k, v in median.items()}
            best = max(rate["onnxruntime"], rate["openvino"])
            latency = f"   {median['ours'] * 1000:.2f} / {batch / best * 1000:.2f}" if batch == 1 else ""
            print(f"{model + ', ' + str(batch):30}{rate['ours']:11.1f}{rate['onnxruntime']:13.1f}{rate['openvino']:11.1f}"
                  f"{rate['ours'] / best:10.2f}x{latency}", flush=True)
            rows.append({"network": model, "batch": batch, **{k + "_images_per_second": v for k, v in rate.items()},
                         "ratio": rate["ours"] / best})
    print(json.dumps({"cpu": cpu, "isa": native + vnni, "rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
