"""The CIFAR-10 recipe of the README in PyTorch, identical to ours: vgg11-bn at 32x32 (torchvision's vgg11_bn features,
no adaptive pooling, the classifier 512 -> 4096 -> 4096 -> 10 with dropout 0.5, torchvision's initialisation), SGD with
momentum 0.9 and weight decay 5e-4 on every parameter, one-cycle to 0.1 (cosine, pct_start 0.3, div 25, final div 1e4,
no momentum cycling) stepped every batch, batch 128, RandomCrop(32, padding=4) and RandomHorizontalFlip, ImageNet's mean
and standard deviation.

    python Scripts/cifar/vgg11_bn_torch.py --data ../shared/data/cifar-10-batches-bin --epochs 3 --total-epochs 30 \
        --out runs/torch-vgg11-bn.csv

It reads CIFAR-10's binary batches directly (no torchvision download), prints one line per epoch and writes a CSV
(epoch, loss, accuracy, val_loss, val_accuracy, lr, images_per_second, seconds) in the columns of our metrics.csv, so
that Scripts/cifar/plot.py can draw both runs. `--total-epochs` sets the schedule's length, so that 3 epochs of a
30-epoch run follow the same learning rates as ours.
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(folder, names):
    images, labels = [], []
    for name in names:
        raw = np.fromfile(os.path.join(folder, name), dtype=np.uint8).reshape(-1, 3073)
        labels.append(raw[:, 0].astype(np.int64))
        images.append(raw[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


def vgg11_bn():
    layers, channels = [], 3
    for entry in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, entry, 3, padding=1), nn.BatchNorm2d(entry), nn.ReLU(inplace=True)]
            channels = entry
    model = nn.Sequential(
        nn.Sequential(*layers), nn.Flatten(),
        nn.Sequential(nn.Linear(512, 4096), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(True),
                      nn.Dropout(0.5), nn.Linear(4096, 10)))
    # torchvision's VGG initialisation.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return model


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_input(pixels):
    return (torch.from_numpy(pixels).float() / 255 - MEAN) / STD


def augment(pixels, rng):
    """RandomCrop(32, padding=4) then RandomHorizontalFlip, on uint8 planar images."""
    n = pixels.shape[0]
    padded = np.zeros((n, 3, 40, 40), dtype=np.uint8)
    padded[:, :, 4:36, 4:36] = pixels
    out = np.empty_like(pixels)
    ys, xs, flips = rng.integers(0, 9, n), rng.integers(0, 9, n), rng.integers(0, 2, n)
    for i in range(n):
        crop = padded[i, :, ys[i]:ys[i] + 32, xs[i]:xs[i] + 32]
        out[i] = crop[:, :, ::-1] if flips[i] else crop
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/cifar-10-batches-bin")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--total-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="torch-vgg11-bn.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_x, train_y = load(args.data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    test_x, test_y = load(args.data, ["test_batch.bin"])
    model = vgg11_bn()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = (len(train_y) + args.batch_size - 1) // args.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.total_epochs * steps_per_epoch,
                                                    cycle_momentum=False)
    with open(args.out, "w") as csv:
        csv.write("epoch,loss,accuracy,val_loss,val_accuracy,lr,images_per_second,seconds\n")
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = rng.permutation(len(train_y))
            start, loss_sum, correct, seen, lr = time.time(), 0.0, 0, 0, 0.0
            for step in range(steps_per_epoch):
                index = order[step * args.batch_size:(step + 1) * args.batch_size]
                x, y = to_input(augment(train_x[index], rng)), torch.from_numpy(train_y[index])
                lr = optimizer.param_groups[0]["lr"]
                optimizer.zero_grad(set_to_none=True)
                out = model(x)
                loss = F.cross_entropy(out, y)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += loss.item() * len(index)
                correct += (out.argmax(1) == y).sum().item()
                seen += len(index)
                if step % 50 == 0:
                    print(f"  epoch {epoch} step {step}/{steps_per_epoch} loss {loss_sum / seen:.4f} "
                          f"{seen / (time.time() - start):.1f} img/s", flush=True)
            seconds = time.time() - start
            model.eval()
            val_loss, val_correct = 0.0, 0
            with torch.no_grad():
                for i in range(0, len(test_y), 500):
                    x, y = to_input(test_x[i:i + 500]), torch.from_numpy(test_y[i:i + 500])
                    out = model(x)
                    val_loss += F.cross_entropy(out, y, reduction="sum").item()
                    val_correct += (out.argmax(1) == y).sum().item()
            row = (epoch, loss_sum / seen, correct / seen, val_loss / len(test_y), val_correct / len(test_y), lr, seen / seconds, seconds)
            print("epoch %d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f lr %.4g %.1f img/s %.0f s" % row, flush=True)
            csv.write(",".join(str(v) for v in row) + "\n")
            csv.flush()


if __name__ == "__main__":
    main()
