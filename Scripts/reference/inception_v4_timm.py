"""A reference fixture for inception-v4 (Sources/ClassicCNN/Models/InceptionV4.swift): timm's InceptionV4 with seeded
random weights and batch-norm statistics, one 1x3x299x299 input and its logits in eval mode.

    python Scripts/reference/inception_v4_timm.py [/tmp/inception_v4_fixture.safetensors]

The file (about 171 MB: every state_dict tensor except num_batches_tracked, plus `input` and `logits`) is not
committed. The Swift side loads the tensors by name into `ModelZoo.make("inception-v4").parameters`, runs the input
and compares the logits.
"""
import sys

import timm
import torch
from safetensors.torch import save_file

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/inception_v4_fixture.safetensors"
torch.manual_seed(0)
model = timm.create_model("inception_v4", pretrained=False)

# Weights drawn so that activations stay of order one through the 149 convolutions: N(0, 1 / fan_in) for every
# weight, and for batch norm a scale near 1, a small shift and running statistics that are not the identity.
with torch.no_grad():
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0, fan_in ** -0.5)
            if module.bias is not None:
                module.bias.uniform_(-0.1, 0.1)
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)

model.eval()
x = torch.randn(1, 3, 299, 299)
with torch.no_grad():
    logits = model(x)

tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
tensors["input"] = x.contiguous()
tensors["logits"] = logits.contiguous()
save_file(tensors, path, metadata={"torch": torch.__version__, "timm": timm.__version__})
print(f"{path}: {len(tensors) - 2} state_dict tensors, {sum(p.numel() for p in model.parameters()):,} parameters")
print("logits[:5]", logits[0, :5].tolist(), "std", logits.std().item())
