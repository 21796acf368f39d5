#!/usr/bin/python3
"""Trains the small Fashion-MNIST classifier in tests/data/models/ with
Debian's python3-torch (CPU) and exports it to ONNX:

    apt-get install python3-torch dataset-fashion-mnist
    /usr/bin/python3 scripts/train_fashion_mnist.py

Input `input` float32 [N, 3, 28, 28], RGB, x/255 (no mean/std): the model
turns RGB into grey (the channel mean) itself, so spectradb feeds it like
any RGB model. Output `logits` [N, 10], classes in the order of
fashion_mnist_classes.txt. Fixed seed; 4 epochs take a few minutes on 2 cores.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from make_fashion_corpus import CLASSES, load  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "models")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())
        self.features = nn.Sequential(
            block(1, 32), nn.MaxPool2d(2),      # 14
            block(32, 64), nn.MaxPool2d(2),     # 7
            block(64, 64), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        grey = x.mean(dim=1, keepdim=True)
        z = (grey - 0.286) / 0.353
        return self.head(torch.flatten(self.features(z), 1))


def main():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)
    xs, ys = load("train")
    xt, yt = load("test")
    x = torch.tensor(xs, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 255.0
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
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} ({time.time() - start:.0f} s)")
    net.eval()
    with torch.no_grad():
        t = torch.tensor(xt, dtype=torch.float32).unsqueeze(1).repeat(1, 3, 1, 1) / 255.0
        acc = (net(t).argmax(1).numpy() == yt).mean()
    print(f"test accuracy {acc:.4f}, trained in {time.time() - start:.0f} s, torch {torch.__version__}")
    path = os.path.join(OUT, "fashion_mnist_cnn.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, 28, 28), path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                      opset_version=13)
    with open(os.path.join(OUT, "fashion_mnist_classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
