"""A reference fixture for inception-resnet-v2 (Sources/ClassicCNN/Models/InceptionResNetV2.swift): timm's
InceptionResnetV2 with seeded random weights and batch-norm statistics, one 1x3x299x299 input and its logits in eval
mode.

    python Scripts/reference/inception_resnet_v2_timm.py [/tmp/inception_resnet_v2_fixture.safetensors]

The file (about 225 MB: every state_dict tensor except num_batches_tracked, plus `input` and `logits`) is not
committed. The Swift side loads the tensors by name into `ModelZoo.make("inception-resnet-v2").parameters`, runs the
input and compares the logits.
"""
import sys

import timm

from fixture import write_fixture

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/inception_resnet_v2_fixture.safetensors"
write_fixture(lambda: timm.create_model("inception_resnet_v2", pretrained=False), path, {"timm": timm.__version__})
