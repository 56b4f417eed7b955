"""Reference logits for the networks built in torchvision's layout, small enough to commit: instead of the weights
(up to 530 MB), the fixture holds only the logits, because the weights and the input come from a formula that the
Swift test (Tests/ClassicCNNTests/ReferenceLogitsTests.swift) computes bit for bit the same way.

The formula: every state_dict tensor named NAME gets u[i] in [0, 1) from SplitMix64 of
FNV-1a-64(NAME) ^ (i * 0x9E3779B97F4A7C15), u = (x >> 11) / 2^53, then, in float64 and rounded once to float32:
  weights (rank >= 2):  (2u - 1) * sqrt(3 / fan_in)      (variance 1 / fan_in, fan_in = the product of shape[1:])
  running_var:          0.5 + 1.5u                        running_mean: 0.3 (2u - 1)
  other rank-1 weight:  0.5 + u (batch-norm scale)         rank-1 bias:  0.1 (2u - 1)
The input, named "input", is 2u - 1 with shape [1, 3, S, S].

Usage: python3 Scripts/reference/zoo_logits.py   (needs torch and torchvision; writes Tests/Fixtures/zoo/*.json)
"""
import json
import os

import numpy as np
import torch
import torchvision

MASK = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def uniforms(name, count):
    i = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(fnv1a64(name)) ^ (i * np.uint64(0x9E3779B97F4A7C15))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def formula(name, shape):
    count = int(np.prod(shape)) if len(shape) else 1
    u = uniforms(name, count)
    if len(shape) >= 2:
        values = (2 * u - 1) * np.sqrt(3.0 / float(np.prod(shape[1:])))
    elif name.endswith("running_var"):
        values = 0.5 + 1.5 * u
    elif name.endswith("running_mean"):
        values = 0.3 * (2 * u - 1)
    elif name.endswith("weight"):
        values = 0.5 + u
    elif name.endswith("bias"):
        values = 0.1 * (2 * u - 1)
    else:
        raise ValueError(f"no formula for {name}")
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


NETWORKS = {
    "alexnet-torchvision": (lambda: torchvision.models.alexnet(), 224),
    "vgg11": (lambda: torchvision.models.vgg11(), 224),
    "googlenet-torchvision": (lambda: torchvision.models.googlenet(aux_logits=True, transform_input=False, init_weights=False), 224),
    "inception-v3": (lambda: torchvision.models.inception_v3(aux_logits=True, transform_input=False, init_weights=False), 299),
}


def main():
    torch.set_num_threads(2)
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "zoo")
    os.makedirs(folder, exist_ok=True)
    for name, (build, size) in NETWORKS.items():
        model = build()
        state = model.state_dict()
        with torch.no_grad():
            for key, tensor in state.items():
                if not key.endswith("num_batches_tracked"):
                    tensor.copy_(formula(key, tuple(tensor.shape)))
        model.eval()
        x = torch.from_numpy((2 * uniforms("input", x.numel()) - 1).astype(np.float32).reshape(1, 3, size, size))
        with torch.no_grad():
            logits = model(x)[0].double().tolist()
        fixture = {"model": name, "input_size": size, "torch": torch.__version__, "torchvision": torchvision.__version__,
                   "made_by": "Scripts/reference/zoo_logits.py", "logits": [float(f"{v:.9g}") for v in logits]}
        path = os.path.join(folder, f"{name}.json")
        with open(path, "w") as f:
            json.dump(fixture, f, indent=0)
        print(f"{path}: {len(logits)} logits, max |logit| {max(abs(v) for v in logits):.4g}, first {logits[:3]}")


if __name__ == "__main__":
    main()
