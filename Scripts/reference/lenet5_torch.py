"""The reference LeNet-5 trained in PyTorch on the same MNIST files, to compare accuracy distributions with ours.

    python Scripts/reference/lenet5_torch.py --data Data/mnist --seeds 0 1 2 3 4 --epochs 5

Same network as `cnn train lenet5` (32x32 input, MNIST padded by 2, pixels / 255), Adam 1e-3, batch 32, shuffled
every epoch, Keras's Glorot-uniform weights and zero biases; prints the test accuracy after each epoch per seed.
"""
import argparse
import gzip
import statistics

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    data = gzip.open(path).read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(directory, split):
    prefix = "train" if split == "train" else "t10k"
    images = idx(f"{directory}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255
    labels = idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None]
    return torch.from_numpy(images), torch.from_numpy(labels)


def lenet5():
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="Data/mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load(args.data, "train")
    xt, yt = load(args.data, "test")
    table = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = lenet5()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss_fn = nn.CrossEntropyLoss()
        accuracies = []
        for _ in range(args.epochs):
            model.train()
            order = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                batch = order[i:i + 32]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x[batch]), y[batch]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracies.append((model(xt).argmax(1) == yt).float().mean().item())
        table.append(accuracies)
        print(seed, " ".join(f"{a:.4f}" for a in accuracies), flush=True)
    for epoch in range(args.epochs):
        column = [row[epoch] for row in table]
        print(f"epoch {epoch + 1}: median {statistics.median(column):.4f} mean {statistics.mean(column):.4f} "
              f"min {min(column):.4f} max {max(column):.4f}")


if __name__ == "__main__":
    main()
