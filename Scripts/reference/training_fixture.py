"""Fixtures for the training options of issue 14, made with PyTorch: RMSprop and AdamW steps, the learning-rate
schedules of torch.optim.lr_scheduler, cross-entropy with label smoothing and clip_grad_norm_.

Run: python Scripts/reference/training_fixture.py Tests/Fixtures/training/torch.json  (torch 2.x; the version is
recorded in the file). Everything is float32 except the schedules, which PyTorch computes in Python floats.
"""
import json
import sys

import torch

torch.manual_seed(0)
out = {"torch": torch.__version__}

# Optimizer steps: one 3x4 weight and a 4-vector bias, three steps with fixed gradients.
w0 = torch.randn(3, 4)
b0 = torch.randn(4)
grads = [(torch.randn(3, 4), torch.randn(4)) for _ in range(3)]
out["weight0"] = w0.flatten().tolist()
out["bias0"] = b0.flatten().tolist()
out["grads"] = [[g.flatten().tolist(), h.flatten().tolist()] for g, h in grads]


def run(make, name):
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = make([w, b])
    steps = []
    for g, h in grads:
        w.grad = g.clone()
        b.grad = h.clone()
        opt.step()
        steps.append([w.detach().flatten().tolist(), b.detach().flatten().tolist()])
    out[name] = steps


run(lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-3), "rmsprop_momentum")
run(lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8), "rmsprop_plain")
run(lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), "adamw")
# Weight decay on the weight only (the bias, a vector, excluded): two parameter groups.
run(lambda p: torch.optim.SGD([{"params": [p[0]], "weight_decay": 0.05}, {"params": [p[1]], "weight_decay": 0.0}],
                              lr=0.1, momentum=0.9), "sgd_decay_weights_only")


def rates(make, steps):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return values


S = torch.optim.lr_scheduler
out["schedules"] = {
    # per step, 7 epochs of 10 steps
    "onecycle": rates(lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=70, cycle_momentum=False), 70),
    "onecycle_pct_0.25_div_10_final_100": rates(lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=70, pct_start=0.25, div_factor=10,
                                                                         final_div_factor=100, cycle_momentum=False), 70),
    "cosine_min_0.001": rates(lambda o: S.CosineAnnealingLR(o, T_max=70, eta_min=0.001), 70),
    # per epoch, 7 epochs
    "step_every_3_factor_0.5": rates(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 7),
    "multistep_2_5_factor_0.1": rates(lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.1), 7),
}

# Cross-entropy with label smoothing: mean over the batch, and its gradient with respect to the logits.
logits = torch.randn(4, 5, requires_grad=True)
labels = torch.tensor([0, 3, 4, 1])
loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
loss.backward()
out["smoothing"] = {"logits": logits.detach().flatten().tolist(), "labels": labels.tolist(), "epsilon": 0.1,
                    "loss": loss.item(), "gradient": logits.grad.flatten().tolist()}

# clip_grad_norm_ over two tensors.
a, b = torch.randn(3, 4) * 3, torch.randn(4) * 3
pa, pb = torch.zeros(3, 4, requires_grad=True), torch.zeros(4, requires_grad=True)
pa.grad, pb.grad = a.clone(), b.clone()
norm = torch.nn.utils.clip_grad_norm_([pa, pb], max_norm=2.0)
out["clip"] = {"gradients": [a.flatten().tolist(), b.flatten().tolist()], "max_norm": 2.0, "norm": norm.item(),
               "clipped": [pa.grad.flatten().tolist(), pb.grad.flatten().tolist()]}

with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
print("wrote", sys.argv[1], "with torch", torch.__version__)
