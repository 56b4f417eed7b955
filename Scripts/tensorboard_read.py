#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own EventAccumulator and prints its scalars as JSON:
{"tag": [[step, wall_time, value], ...], ...}. The end-to-end tests run it on the logs of `cnn train --log-dir`.

Usage: tensorboard_read.py LOG_DIR   (needs `pip install tensorboard`)
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard_read.py LOG_DIR")
    # 0: keep every scalar (the default keeps a sample of 10,000 per tag).
    accumulator = event_accumulator.EventAccumulator(sys.argv[1], size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    scalars = {
        tag: [[event.step, event.wall_time, event.value] for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }
    json.dump(scalars, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
