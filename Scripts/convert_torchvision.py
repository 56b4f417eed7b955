"""Turns a torchvision checkpoint (.pth, as torchvision downloads it: a state dict, or a dict holding one under
"state_dict" or "model") into a safetensors file that `cnn forward`, `cnn predict --model M --weights W` and the
ClassicCNN library load as they are: float32 tensors under torchvision's names, `num_batches_tracked` dropped.

Usage:
  python3 Scripts/convert_torchvision.py alexnet-owt-7be5be79.pth alexnet.safetensors
  cnn predict --model alexnet-torchvision --weights alexnet.safetensors photo.jpg

Which of our networks takes which torchvision weights: alexnet -> alexnet-torchvision, vgg11/13/16/19 -> vgg11,
vgg13, vgg16, vgg19 (without batch norm), googlenet -> googlenet-torchvision, inception_v3 -> inception-v3.
Needs torch and safetensors (pip install torch safetensors).
"""
import os
import sys

import torch
from safetensors.torch import save_file


def main(source, target):
    loaded = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if key in loaded and isinstance(loaded[key], dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        sys.exit(f"{source}: not a state dict of tensors")
    # DataParallel checkpoints prefix every name with "module.".
    tensors = {k.removeprefix("module."): v.detach().to(torch.float32).contiguous()
               for k, v in loaded.items() if not k.endswith("num_batches_tracked")}
    temporary = target + ".tmp"
    save_file(tensors, temporary, metadata={"source": os.path.basename(source)})
    os.replace(temporary, target)
    count = sum(v.numel() for k, v in tensors.items() if "running_" not in k)
    print(f"{target}: {len(tensors)} tensors, {count:,} parameters (batch-norm statistics not counted)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
