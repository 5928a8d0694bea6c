#!/usr/bin/python3
"""recipe_parity.py - train the PyTorch model of an ONNX graph on Fashion-MNIST
with nasc's training recipe, and print its test accuracy.

    recipe_parity.py MODEL.onnx [--epochs E] [--seed S] [--threads T]
                     [--init torch|onnx] [--wd-on all|weights]
                     [--schedule step|epoch] [--lr LR] [--wd WD]
                     [--data DIR] [--train-subset K]

The recipe is `nasc train --warmup 0 --val-size 0`'s: SGD with Nesterov
momentum 0.9, weight decay WD (default 3e-4), batch 64 with the last partial
batch dropped, a fresh shuffle per epoch, cross-entropy averaged over the
batch, a cosine learning rate from LR (default 0.05) to 0 over all steps,
evaluated per step; images scaled to [0, 1] and normalised by the training
images' mean and standard deviation (one value each, over all pixels).
Batch norm uses PyTorch's momentum 0.1 and the graph's epsilon.

The switches change one element at a time, to find which one separates two
trainings: --init onnx starts from the graph's initializers (`nasc export`
writes the initialisation `nasc train` starts from) instead of PyTorch's
default initialisation; --wd-on weights decays only tensors of rank > 1, as
nasc does, instead of every parameter; --schedule epoch sets the learning
rate once per epoch (PyTorch's CosineAnnealingLR stepped per epoch).

Prints "key value" lines: the recipe, then per epoch the training loss and
accuracy, and at the end test_acc (percent) and seconds. This is a benchmark
helper: no test imports it, and it needs python3-torch.
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_from_onnx import build_module_class, die, input_shape  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        die(f"{path}: {e}")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        die(f"{path}: not an IDX file of unsigned bytes")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    body = raw[4 + 4 * rank:]
    if len(body) != int(np.prod(dims)):
        die(f"{path}: {len(body)} bytes of data, the header says {int(np.prod(dims))}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def find(dirname, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(dirname, name)
        if os.path.exists(p):
            return p
    die(f"{dirname}: no {stem}[.gz]")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--init", choices=("torch", "onnx"), default="torch")
    p.add_argument("--wd-on", choices=("all", "weights"), default="all")
    p.add_argument("--schedule", choices=("step", "epoch"), default="step")
    p.add_argument("--train-subset", type=int, default=0)
    args = p.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = lambda k, v: print(f"{k} {v}", flush=True)

    xs = read_idx(find(args.data, "train-images-idx3-ubyte"))
    ys = read_idx(find(args.data, "train-labels-idx1-ubyte"))
    xt = read_idx(find(args.data, "t10k-images-idx3-ubyte"))
    yt = read_idx(find(args.data, "t10k-labels-idx1-ubyte"))
    if args.train_subset > 0:
        xs, ys = xs[:args.train_subset], ys[:args.train_subset]
    f = xs.astype(np.float64) / 255.0
    mean, std = float(f.mean()), float(f.std())
    norm = lambda a: torch.from_numpy(((a.astype(np.float32) / 255.0 - mean) / std)[:, None].astype(np.float32))
    x_train, y_train = norm(xs), torch.from_numpy(ys.astype(np.int64))
    x_test, y_test = norm(xt), torch.from_numpy(yt.astype(np.int64))

    model = onnx.load(args.model)
    OnnxTorch = build_module_class()
    net = OnnxTorch(model, load_weights=args.init == "onnx")
    if args.wd_on == "all":
        groups = [{"params": list(net.parameters()), "weight_decay": args.wd}]
    else:
        big = [q for q in net.parameters() if q.dim() > 1]
        small = [q for q in net.parameters() if q.dim() <= 1]
        groups = [{"params": big, "weight_decay": args.wd}, {"params": small, "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    n_params = sum(q.numel() for q in net.parameters())
    for k, v in (("torch_version", torch.__version__), ("threads", torch.get_num_threads()),
                 ("params", n_params), ("data_mean", f"{mean:.6f}"), ("data_std", f"{std:.6f}"),
                 ("init", args.init), ("wd_on", args.wd_on), ("schedule", args.schedule),
                 ("seed", args.seed), ("epochs", args.epochs), ("lr", args.lr), ("wd", args.wd)):
        out(k, v)

    n = x_train.shape[0]
    steps = n // args.batch
    total = steps * args.epochs
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    step = 0
    for e in range(args.epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        for s in range(steps):
            t = (e * steps if args.schedule == "epoch" else step) / total
            lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * t))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[s * args.batch:(s + 1) * args.batch]
            logits = net(x_train[idx])
            loss = F.cross_entropy(logits, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * args.batch
            correct += int((logits.argmax(1) == y_train[idx]).sum())
        seen = steps * args.batch
        out(f"epoch{e + 1}_train_loss", f"{loss_sum / seen:.4f}")
        out(f"epoch{e + 1}_train_acc", f"{100.0 * correct / seen:.2f}")
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x_test.shape[0], 500):
            correct += int((net(x_test[i:i + 500]).argmax(1) == y_test[i:i + 500]).sum())
    out("test_acc", f"{100.0 * correct / x_test.shape[0]:.2f}")
    out("seconds", f"{time.time() - t0:.0f}")


if __name__ == "__main__":
    main()
