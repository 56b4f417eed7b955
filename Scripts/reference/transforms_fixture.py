"""Reference values for the image transforms (Tests/ClassicCNNTests/TransformTests.swift), from torchvision and
TensorFlow, written as small JSON files to Tests/Fixtures/transforms/.

    /work/venv/bin/python Scripts/reference/transforms_fixture.py

The input is a 37x29 RGB image (width 37, height 29) made by a formula that the Swift test computes too, with sharp
edges (the modulo wraps) so that antialiasing matters. Arrays are stored as base64: uint8 as bytes, float32 as
little-endian bytes, always in height x width x channels order (the layout of the Swift `Image`).
"""
import base64
import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

WIDTH, HEIGHT = 37, 29
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "transforms")


def formula_image():
    """pixel(y, x, c) = (29 x + 47 y + 80 c + (7 x y mod 31)) mod 256, as uint8 [H, W, 3]."""
    y, x, c = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), np.arange(3), indexing="ij")
    return ((29 * x + 47 * y + 80 * c + (7 * x * y) % 31) % 256).astype(np.uint8)


def b64(array, dtype):
    data = np.ascontiguousarray(array, dtype=dtype)
    if dtype == np.float32:
        data = data.astype("<f4")
    return base64.b64encode(data.tobytes()).decode("ascii")


def chw(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1).contiguous()


def hwc(tensor):
    return tensor.permute(1, 2, 0).contiguous().numpy()


def write(name, fields):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(fields, f, indent=1)
        f.write("\n")
    print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    image = formula_image()
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "tensorflow": tf.__version__}

    # Antialiased bilinear resize, shrinking: torchvision on float32 (the exact reference) and on uint8 (its
    # fixed-point path, which rounds after each pass).
    as_float = chw(image).float()
    as_uint8 = chw(image)
    small_float = hwc(TF.resize(as_float, [12, 16], interpolation=TF.InterpolationMode.BILINEAR, antialias=True))
    small_uint8 = hwc(TF.resize(as_uint8, [12, 16], interpolation=TF.InterpolationMode.BILINEAR, antialias=True))
    print("16x12 uint8 path vs float path: max |difference|", np.abs(small_uint8 - small_float).max())
    write("resize_16x12.json", {
        "call": "torchvision.transforms.functional.resize(x, [12, 16], BILINEAR, antialias=True)",
        "width": 16, "height": 12, **versions,
        "float32": b64(small_float, np.float32), "uint8": b64(small_uint8, np.uint8),
    })
    # Enlarging: antialiasing changes nothing; the float output is stored rounded (to keep the file small).
    large_float = hwc(TF.resize(as_float, [47, 61], interpolation=TF.InterpolationMode.BILINEAR, antialias=True))
    large_uint8 = hwc(TF.resize(as_uint8, [47, 61], interpolation=TF.InterpolationMode.BILINEAR, antialias=True))
    print("61x47 uint8 path vs float path: max |difference|", np.abs(large_uint8 - large_float).max())
    write("resize_61x47.json", {
        "call": "torchvision.transforms.functional.resize(x, [47, 61], BILINEAR, antialias=True) on float32, rounded",
        "width": 61, "height": 47, **versions,
        "rounded_float": b64(np.round(large_float), np.uint8),
    })
    # Shorter side: torchvision's resize(x, 20) gives height 20, width int(20 * 37 / 29) = 25.
    short = hwc(TF.resize(as_float, [20], interpolation=TF.InterpolationMode.BILINEAR, antialias=True))
    write("resize_shorter_20.json", {
        "call": "torchvision.transforms.functional.resize(x, [20], BILINEAR, antialias=True) on float32",
        "width": short.shape[1], "height": short.shape[0], **versions, "float32": b64(short, np.float32),
    })

    # TensorFlow's resize_with_pad: shrinking the RGB image into 20x20, and enlarging its first channel into 40x40.
    for name, source, target_height, target_width in [
        ("resize_with_pad_20x20.json", image, 20, 20),
        ("resize_with_pad_grey_40x40.json", image[:, :, :1], 40, 40),
    ]:
        padded = tf.image.resize_with_pad(tf.constant(source), target_height, target_width,
                                          method=tf.image.ResizeMethod.BILINEAR, antialias=False).numpy()
        write(name, {
            "call": f"tf.image.resize_with_pad(x, {target_height}, {target_width}, method=BILINEAR, antialias=False)",
            "width": target_width, "height": target_height, "channels": source.shape[2], **versions,
            "float32": b64(padded, np.float32),
        })

    # Ten crops of 16 wide x 12 high: both margins odd (21 and 17), so the centre crop shows Python's
    # round-half-to-even, and the mirrored centre crop is not the mirror of the centre crop.
    crops = TF.ten_crop(as_uint8, [12, 16])
    write("ten_crop_16x12.json", {
        "call": "torchvision.transforms.functional.ten_crop(x, [12, 16])",
        "width": 16, "height": 12, **versions,
        "uint8": [b64(hwc(crop), np.uint8) for crop in crops],
    })


if __name__ == "__main__":
    main()
