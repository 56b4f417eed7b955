"""A reference fixture for inception-v3 (Sources/ClassicCNN/Models/InceptionV3.swift): torchvision's Inception3 with
seeded random weights and batch-norm statistics, one 1x3x299x299 input and its logits in eval mode.

    python Scripts/reference/inception_v3_torch.py [/tmp/inception_v3_fixture.safetensors]

The file (about 109 MB: every state_dict tensor except num_batches_tracked, plus `input` and `logits`) is not
committed. The Swift side loads the tensors by name into `ModelZoo.make("inception-v3").parameters`, runs the input
and compares the logits.
"""
import sys

import torchvision

from fixture import write_fixture

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/inception_v3_fixture.safetensors"
model, _ = write_fixture(lambda: torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False),
                         path, {"torchvision": torchvision.__version__})
print(f"{sum(p.numel() for p in model.AuxLogits.parameters()):,} of them in AuxLogits (not used at inference)")
