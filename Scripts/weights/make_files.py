"""torchvision networks with seeded random weights, saved as torchvision's own files are (torch.save of the state
dict; --legacy for the pre-1.6 format of the classic files), named NAME-SHA8.pth as torchvision names its files, with
the logits of a random input in eval mode beside them (NAME.safetensors: `input`, `logits`). For
Scripts/weights/measure.sh: the real files are 50-550 MB downloads that this machine cannot make.

    python Scripts/weights/make_files.py OUT_FOLDER vgg19 googlenet inception_v3 alexnet
"""
import hashlib
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

BUILD = {
    "alexnet": (lambda: torchvision.models.alexnet(), 224, False),
    "vgg19": (lambda: torchvision.models.vgg19(), 224, True),
    "vgg16": (lambda: torchvision.models.vgg16(), 224, True),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=True, init_weights=True), 224, False),
    "inception_v3": (lambda: torchvision.models.inception_v3(aux_logits=True, init_weights=True), 299, False),
}


def main(folder, names):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        build, size, legacy = BUILD[name]
        torch.manual_seed(0)
        model = build().eval()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.2, 0.2)
                    module.running_var.uniform_(0.5, 1.5)
        temporary = os.path.join(folder, name + ".tmp")
        torch.save(model.state_dict(), temporary, _use_new_zipfile_serialization=not legacy)
        digest = hashlib.sha256(open(temporary, "rb").read()).hexdigest()
        os.replace(temporary, os.path.join(folder, f"{name}-{digest[:8]}.pth"))
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            logits = model(x)
        save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(folder, name + ".safetensors"),
                  metadata={"torch": torch.__version__, "torchvision": torchvision.__version__})
        print(f"{name}-{digest[:8]}.pth", os.path.getsize(os.path.join(folder, f"{name}-{digest[:8]}.pth")))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
