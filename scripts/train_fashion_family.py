#!/usr/bin/python3
"""Trains the smaller members of the Fashion-MNIST model family in
tests/data/models/ (the 28-pixel member is fashion_mnist_cnn.onnx, from
train_fashion_mnist.py) with Debian's python3-torch (CPU):

    apt-get install python3-torch dataset-fashion-mnist
    /usr/bin/python3 scripts/train_fashion_family.py

Each member is trained on the images as spectradb hands them to it: the
28x28 photo decoded in the DCT domain at scale s/8 (the top-left s x s
coefficients of each 8x8 block through an s-point inverse DCT), which gives
14 pixels at s4, 7 at s2 and 4 at s1 (DC only). Same network, input and
output as the 28-pixel member: `input` float32 [N, 3, H, W] RGB x/255,
`logits` [N, 10]. Fixed seed.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from make_fashion_corpus import load  # noqa: E402
from train_fashion_mnist import Net  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "models")
MEMBERS = [(4, 14), (2, 7), (1, 4)]  # (scale s, pixels)


def dct_matrix(n):
    """Orthonormal DCT-II matrix: rows are frequencies."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def dct_downscale(images, s):
    """`images` [N, 28, 28] uint8 decoded at scale s/8 as a JPEG decoder
    does: blocks padded by edge replication, top-left s x s coefficients,
    s-point inverse DCT, cropped to ceil(28 * s / 8)."""
    n, h, w = images.shape
    bh, bw = -(-h // 8), -(-w // 8)
    x = np.pad(images.astype(np.float64) - 128.0,
               ((0, 0), (0, bh * 8 - h), (0, bw * 8 - w)), mode="edge")
    blocks = x.reshape(n, bh, 8, bw, 8).transpose(0, 1, 3, 2, 4)
    c8, cs = dct_matrix(8), dct_matrix(s)
    coef = c8 @ blocks @ c8.T
    small = cs.T @ (coef[..., :s, :s] * (s / 8.0)) @ cs
    out = small.transpose(0, 1, 3, 2, 4).reshape(n, bh * s, bw * s) + 128.0
    oh, ow = -(-h * s // 8), -(-w * s // 8)
    return np.clip(np.round(out[:, :oh, :ow]), 0, 255).astype(np.uint8)


def as_input(images):
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0
    return x.repeat(1, 3, 1, 1)


def train(s, px, xs, ys, xt, yt):
    torch.manual_seed(s)
    x, t = as_input(dct_downscale(xs, s)), as_input(dct_downscale(xt, s))
    assert x.shape[-1] == px, (x.shape, px)
    y = torch.tensor(ys, dtype=torch.long)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    epochs = 4
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * (len(x) // 128 + 1))
    start = time.time()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"s{s} {px}px epoch {epoch + 1}: loss {loss.item():.3f} ({time.time() - start:.0f} s)")
    net.eval()
    with torch.no_grad():
        acc = (net(t).argmax(1).numpy() == yt).mean()
    print(f"s{s} {px}px: test accuracy {acc:.4f}, trained in {time.time() - start:.0f} s")
    path = os.path.join(OUT, f"fashion_mnist_cnn_{px}.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, px, px), path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                      opset_version=13)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    np.random.seed(0)
    torch.set_num_threads(2)
    xs, ys = load("train")
    xt, yt = load("test")
    print(f"torch {torch.__version__}")
    for s, px in MEMBERS:
        train(s, px, xs, ys, xt, yt)


if __name__ == "__main__":
    main()
