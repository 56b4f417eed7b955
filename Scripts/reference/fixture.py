"""Shared by the reference-fixture scripts: a network with seeded random weights and batch-norm statistics, one
random input and its logits in eval mode, saved with safetensors (every state_dict tensor except
num_batches_tracked, plus `input` and `logits`). The Swift side loads the tensors by name into the model's
parameters (`cnn forward` does the same), runs the input and compares the logits.
"""
import torch
from safetensors.torch import save_file


def randomize(model):
    """Weights drawn so that activations stay of order one through deep stacks: N(0, 1 / fan_in) for every weight,
    and for batch norm a scale near 1, a small shift and running statistics that are not the identity."""
    with torch.no_grad():
        for module in model.modules():
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


def write_fixture(build, path, metadata, input_shape=(1, 3, 299, 299)):
    """Seeds, builds the model with `build()`, randomizes it, runs one random input in eval mode and saves the
    fixture at `path`. Returns the model and the logits, for the caller's summary line."""
    torch.manual_seed(0)
    model = build()
    randomize(model)
    model.eval()
    x = torch.randn(*input_shape)
    with torch.no_grad():
        logits = model(x)
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tensors["input"] = x.contiguous()
    tensors["logits"] = logits.contiguous()
    save_file(tensors, path, metadata={"torch": torch.__version__, **metadata})
    print(f"{path}: {len(tensors) - 2} state_dict tensors, {sum(p.numel() for p in model.parameters()):,} parameters")
    print("logits[:5]", logits[0, :5].tolist(), "std", logits.std().item())
    return model, logits
