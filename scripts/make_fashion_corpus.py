#!/usr/bin/env python3
"""Writes Fashion-MNIST images as PNG files, one folder per class, for the
planner benchmark (benches/planner.rs) and as a labelled corpus:

    python3 scripts/make_fashion_corpus.py --out bench-data/fashion --split test --count 2000

Reads the idx files (gzipped or not) of Debian's dataset-fashion-mnist
package (/usr/share/datasets/fashion-mnist). The first N images in file
order, so the corpus is the same every time. Needs numpy and Pillow.
"""
import argparse
import gzip
import os

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path):
    """An idx file, gzipped or not: `path` may name either form."""
    if not os.path.exists(path) and path.endswith(".gz"):
        path = path[:-3]
    elif not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz"))
    return images, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", choices=["train", "test"], default="test")
    ap.add_argument("--count", type=int, default=2000)
    a = ap.parse_args()
    from PIL import Image  # only here: the training script imports load() without Pillow

    images, labels = load(a.split)
    n = min(a.count, len(images))
    for c in CLASSES:
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    for i in range(n):
        path = os.path.join(a.out, CLASSES[labels[i]], f"{a.split}_{i:05d}.png")
        Image.fromarray(images[i], mode="L").save(path)
    print(f"{n} images of Fashion-MNIST {a.split} in {a.out}")


if __name__ == "__main__":
    main()
