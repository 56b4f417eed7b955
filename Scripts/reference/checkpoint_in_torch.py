"""Checks that a ClassicCNN checkpoint loads in PyTorch and gives our logits: trains a few steps of a network built
in torchvision's layout with the built `cnn`, loads the checkpoint's parameters into torchvision's model with
strict=True (the optimizer state `optimizer.*` left out), runs one input through both (`cnn forward` on our side)
and prints the largest difference relative to the largest logit.

Usage: python3 Scripts/reference/checkpoint_in_torch.py [MODEL]   (default googlenet-torchvision; also
alexnet-torchvision, vgg11, inception-v3). Needs torch, torchvision, safetensors and a release build of cnn.
"""
import os
import subprocess
import sys
import tempfile

import torch
import torchvision
from safetensors.torch import load_file, save_file

BUILDERS = {
    "googlenet-torchvision": (lambda n: torchvision.models.googlenet(num_classes=n, aux_logits=True, transform_input=False,
                                                                     init_weights=False), 224),
    "alexnet-torchvision": (lambda n: torchvision.models.alexnet(num_classes=n), 224),
    "vgg11": (lambda n: torchvision.models.vgg11(num_classes=n), 224),
    "inception-v3": (lambda n: torchvision.models.inception_v3(num_classes=n, aux_logits=True, transform_input=False,
                                                               init_weights=False), 299),
}


def main(name):
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    cnn = os.path.join(root, ".build", "release", "cnn")
    data = os.environ.get("CNN_DATA_DIR", os.path.join(root, "..", "shared", "data"))
    build, size = BUILDERS[name]
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([cnn, "train", name, "--dataset", "cifar10", "--classes", "10", "--epochs", "1", "--steps-per-epoch", "2",
                        "--validation-steps", "1", "--batch-size", "4", "--checkpoint-dir", folder, "--data-dir", data, "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        checkpoint = os.path.join(folder, "last.safetensors")
        state = {k: v for k, v in load_file(checkpoint).items() if not k.startswith("optimizer.")}
        model = build(10)
        missing = model.load_state_dict(state, strict=False)
        # strict, except for num_batches_tracked, which ours does not keep.
        assert not missing.unexpected_keys, missing.unexpected_keys
        assert all(k.endswith("num_batches_tracked") for k in missing.missing_keys), missing.missing_keys
        model.eval()
        torch.manual_seed(0)
        x = torch.randn(2, 3, size, size)
        save_file({"input": x}, os.path.join(folder, "x.safetensors"))
        subprocess.run([cnn, "forward", "--model", name, "--classes", "10", "--weights", checkpoint,
                        "--input", os.path.join(folder, "x.safetensors"), "--output", os.path.join(folder, "y.safetensors")], check=True)
        ours = load_file(os.path.join(folder, "y.safetensors"))["output"]
        with torch.no_grad():
            theirs = model(x)
        worst = (ours - theirs).abs().max().item() / theirs.abs().max().item()
        print(f"{name}: {len(state)} tensors loaded strictly into torchvision {torchvision.__version__}; "
              f"logits within {worst:.2e} of the largest")
        return worst


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1] if len(sys.argv) > 1 else "googlenet-torchvision") <= 1e-4 else 1)
