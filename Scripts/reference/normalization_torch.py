"""Reference values for the LocalResponseNorm and BatchNorm2D tests (Tests/ClassicCNNTests/NewLayerTests.swift).

    python Scripts/reference/normalization_torch.py

Prints Swift array literals; the tests embed them. Inputs are exact in float32 (multiples of 1/4), so the Swift side
builds the same tensors from the same formulas.
"""
import torch
import torch.nn as nn

torch.set_printoptions(precision=8)


def literal(t):
    return "[" + ", ".join(f"{v:.8g}" for v in t.detach().flatten().tolist()) + "]"


# LocalResponseNorm: (name, size, alpha as PyTorch takes it, beta, k, input)
big = (torch.arange(24, dtype=torch.float32) - 11) * 2.5
small = (torch.arange(24, dtype=torch.float32) - 11) / 4
cases = [
    ("alexnet", 5, 1e-4, 0.75, 2.0, big),
    ("even", 4, 0.5, 0.6, 1.0, small),
    # The AlexNet paper's convention with alpha = 0.2: PyTorch's alpha is 0.2 * size.
    ("paper", 3, 0.2 * 3, 0.75, 2.0, small),
]
for name, size, alpha, beta, k, x in cases:
    y = nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(x.reshape(1, 6, 2, 2))
    print(f"lrn {name}: {literal(y)}")

# BatchNorm2D, training then inference, PyTorch's defaults (eps 1e-5, momentum 0.1).
x = ((torch.arange(24) * 7 % 11 - 5) / 4).float().reshape(3, 2, 2, 2).requires_grad_()
r = ((torch.arange(24) % 5 - 2) / 2).float().reshape(3, 2, 2, 2)
bn = nn.BatchNorm2d(2)
with torch.no_grad():
    bn.weight.copy_(torch.tensor([1.5, -0.5]))
    bn.bias.copy_(torch.tensor([0.25, -1.0]))
bn.train()
y = bn(x)
(y * r).sum().backward()
print("bn train y:", literal(y))
print("bn dx:", literal(x.grad))
print("bn dweight:", literal(bn.weight.grad), "dbias:", literal(bn.bias.grad))
print("bn running after 1:", literal(bn.running_mean), literal(bn.running_var))
bn(x.detach() * 2 + 1)
print("bn running after 2:", literal(bn.running_mean), literal(bn.running_var))
bn.eval()
print("bn eval y:", literal(bn(x.detach())))
