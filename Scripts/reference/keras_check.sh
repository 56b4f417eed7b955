#!/usr/bin/env bash
# Our networks on Keras's files against Keras's own logits, for the files too large to commit
# (Scripts/reference/keras_files.py --large FOLDER writes them): cnn forward reads each .h5 for its network and
# prints the largest difference from Keras's logits, relative to the largest logit.
#
#     Scripts/reference/keras_check.sh FOLDER [PYTHON]     (PYTHON: one with numpy and safetensors)
set -euo pipefail
cd "$(dirname "$0")/../.."
folder="${1:?usage: keras_check.sh FOLDER [PYTHON]}"
python="${2:-python3}"
swift build -c release --product cnn >&2
for name in alexnet-cifar:99 vgg16:224 inception-v3:299; do
    model=${name%%:*}
    .build/release/cnn forward --model "$model" --classes 10 --weights "$folder/$model.h5" \
        --input "$folder/$model.safetensors" --output "$folder/$model.ours.safetensors" > /dev/null
    "$python" - "$folder/$model" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
theirs = load_file(sys.argv[1] + ".safetensors")["logits"]
ours = load_file(sys.argv[1] + ".ours.safetensors")["output"]
scale = np.abs(theirs).max()
print(f"{sys.argv[1].split('/')[-1]}: logits within {np.abs(ours - theirs).max() / scale:.2e} of the largest; "
      f"top-1 {'agrees' if (ours.argmax(1) == theirs.argmax(1)).all() else 'DIFFERS'}")
PY
done
