"""Fixtures for reading PyTorch's own files (Tests/ClassicCNNTests/TorchFileTests.swift): state dicts written by
torch.save in both of its formats, the zip archive (PyTorch 1.6 and later) and the legacy one (a pickle followed by
raw storages, which most of torchvision's classic weights use), with what they must read as.

  lenet5-legacy-f32.pth   our lenet5 (names conv1..fc2) with seeded random weights, legacy format, float32
  lenet5-zip-f16.pth      the same weights in float16, zip format
  lenet5.json             the input, and torch's logits for each file's weights (float16 weights run in float32)
  tensors-zip.pth, tensors-legacy.pth
                          a training checkpoint's shape: {"epoch", "model": {"module."-prefixed state dict}, ...}
                          with a transposed view, a row view at an offset, float16, bfloat16, float64, int64 and
                          a scalar; tensors.json holds the values every tensor must read as (in float32)

Usage: python3 Scripts/reference/torch_files.py   (needs torch; writes Tests/Fixtures/torch/*)
"""
import collections
import json
import os

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "torch")


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.conv3 = nn.Conv2d(16, 120, 5)
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x)).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(5)
    model = LeNet5().eval()
    x = torch.rand(2, 1, 32, 32)
    state = model.state_dict()
    torch.save(state, f"{OUT}/lenet5-legacy-f32.pth", _use_new_zipfile_serialization=False)
    half = collections.OrderedDict((k, v.half()) for k, v in state.items())
    torch.save(half, f"{OUT}/lenet5-zip-f16.pth")
    with torch.no_grad():
        logits32 = model(x)
        model.load_state_dict({k: v.float() for k, v in half.items()})
        logits16 = model(x)
    with open(f"{OUT}/lenet5.json", "w") as f:
        json.dump({"made_by": "Scripts/reference/torch_files.py", "torch": torch.__version__,
                   "input_shape": list(x.shape), "input": [round(float(v), 9) for v in x.flatten()],
                   "logits_f32": [round(float(v), 9) for v in logits32.flatten()],
                   "logits_f16": [round(float(v), 9) for v in logits16.flatten()]}, f)

    base = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5
    inner = collections.OrderedDict([
        ("module.a", base),
        ("module.b", base.t()),                                 # a transposed view of a's storage
        ("module.c", base[1]),                                  # a row of it: storage offset 3
        ("module.d", torch.tensor([0.5, -2.0, 65504.0, 1e-4], dtype=torch.float16)),
        ("module.e", torch.tensor([[1.5, -3.25], [1e30, 7.0]], dtype=torch.bfloat16)),
        ("module.f", torch.tensor(7, dtype=torch.int64)),       # a scalar (as num_batches_tracked is)
        ("module.g", torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)),
    ])
    checkpoint = {"epoch": 3, "model": inner, "best": 0.875, "name": "x", "sizes": [1, 2, (3, 4)],
                  "flags": {"on": True, "off": False, "none": None}}
    torch.save(checkpoint, f"{OUT}/tensors-zip.pth")
    torch.save(checkpoint, f"{OUT}/tensors-legacy.pth", _use_new_zipfile_serialization=False)
    expected = {k.removeprefix("module."): {"shape": list(v.shape), "values": [float(t) for t in v.float().flatten()]}
                for k, v in inner.items()}
    with open(f"{OUT}/tensors.json", "w") as f:
        json.dump({"made_by": "Scripts/reference/torch_files.py", "torch": torch.__version__, "tensors": expected}, f, indent=1)
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(f"{OUT}/{name}"))


if __name__ == "__main__":
    main()
