"""Fixtures for reading Keras's weight files (Tests/ClassicCNNTests/KerasFileTests.swift): the seed's LeNet-5 as a
Keras Sequential model with seeded random weights, saved as `model.save("x.h5")` (what ModelCheckpoint writes),
`model.save("x.keras")` and `model.save_weights("x.weights.h5")`, with Keras's logits for a random input; and the
same network at a 36x36 input, where the first dense layer reads a 2x2x120 map (so the NHWC-to-NCHW reordering of its
rows is exercised).

  lenet5.h5, lenet5.keras, lenet5.weights.h5, lenet5-36.h5, keras.json (inputs in NCHW, logits)
  lying.h5                a Keras-shaped file whose kernel claims 2^32 values and stores none (HDF5 allocates
                          late): the reader must refuse it before allocating 16 GB

With --large FOLDER it also writes, outside the repository (too large to commit), the seed's AlexNet for CIFAR-10 at
99x99 (its dense layer reads 2x2x256), keras.applications' VGG16 (10 classes) at 224 and InceptionV3 (10 classes) at
299, each as NAME.h5 with NAME.safetensors holding `input` (NCHW) and Keras's `logits`: `cnn forward` on the .h5 must
give the same logits (Scripts/reference/keras_check.sh).

Usage: python3 Scripts/reference/keras_files.py [--large FOLDER]   (needs tensorflow-cpu 2.21 / keras 3; h5py)
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "keras")


def lenet5(size):
    return keras.Sequential([
        keras.Input((size, size, 1)),
        layers.Conv2D(6, 5, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(120, 5, activation="relu"), layers.Flatten(),
        layers.Dense(84, activation="relu"), layers.Dense(10)])


def alexnet_cifar(size):
    return keras.Sequential([
        keras.Input((size, size, 3)),
        layers.Conv2D(96, 11, strides=4, activation="relu"), layers.MaxPooling2D(3, 2),
        layers.Conv2D(256, 5, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
        layers.Conv2D(384, 3, padding="same", activation="relu"),
        layers.Conv2D(384, 3, padding="same", activation="relu"),
        layers.Conv2D(256, 3, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
        layers.Flatten(),
        layers.Dense(4096, activation="relu"), layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10)])


def randomize_batch_norm(model):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            weights = layer.get_weights()
            channels = weights[-1].shape[0]
            rng = np.random.default_rng(len(layer.name))
            weights[-2] = rng.uniform(-0.2, 0.2, channels).astype(np.float32)
            weights[-1] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
            if len(weights) == 4:
                weights[0] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
            layer.set_weights(weights)


def logits(model, x_nhwc):
    return np.asarray(model(x_nhwc, training=False))


def main():
    keras.utils.set_random_seed(3)
    os.makedirs(OUT, exist_ok=True)
    fixture = {"made_by": "Scripts/reference/keras_files.py", "keras": keras.__version__}
    for size, name in [(32, "lenet5"), (36, "lenet5-36")]:
        model = lenet5(size)
        x = np.random.default_rng(size).random((2, size, size, 1), dtype=np.float32)
        model.save(f"{OUT}/{name}.h5")
        if size == 32:
            model.save(f"{OUT}/{name}.keras")
            model.save_weights(f"{OUT}/{name}.weights.h5")
        fixture[name] = {"input_shape": [2, 1, size, size],
                         "input": [round(float(v), 8) for v in x.transpose(0, 3, 1, 2).flatten()],
                         "logits": [round(float(v), 8) for v in logits(model, x).flatten()]}
    with open(f"{OUT}/keras.json", "w") as f:
        json.dump(fixture, f)
    import h5py
    with h5py.File(f"{OUT}/lying.h5", "w") as f:
        f.create_dataset("layers/conv2d/vars/0", shape=(65536, 65536), dtype="f4", chunks=(256, 256))
        f.create_dataset("layers/conv2d/vars/1", data=np.zeros(6, np.float32))
    if "--large" in sys.argv:
        from safetensors.numpy import save_file
        folder = sys.argv[sys.argv.index("--large") + 1]
        os.makedirs(folder, exist_ok=True)
        large = {
            "alexnet-cifar": (lambda: alexnet_cifar(99), 99),
            "vgg16": (lambda: keras.applications.VGG16(weights=None, classes=10, classifier_activation=None), 224),
            "inception-v3": (lambda: keras.applications.InceptionV3(weights=None, classes=10, classifier_activation=None), 299),
        }
        for name, (build, size) in large.items():
            model = build()
            randomize_batch_norm(model)
            x = np.random.default_rng(size).random((2, size, size, 3), dtype=np.float32) * 2 - 1
            model.save(f"{folder}/{name}.h5")
            save_file({"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "logits": logits(model, x)},
                      f"{folder}/{name}.safetensors")
            print(name, model.count_params())
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(f"{OUT}/{name}"))


if __name__ == "__main__":
    main()
