#!/usr/bin/python3
"""charlm.py - PyTorch's side of the character language model benchmark.

    /usr/bin/python3 bench/peers/charlm.py [--steps N] [--hidden H] [--input E]
        [--batch B] [--bptt T] [--threads K] [--data fortunes|FILE] [--seed S]

The same model, text, split, batching and recipe as
`nasc train models/lstm.yaml --max-steps N` (bench/peers/charlm.sh runs
both): an embedding of the 256 byte values (E), one LSTM layer (H), a
linear decoder to 256 classes; the text read as bytes (fortunes: every file
of /usr/share/games/fortunes without a '.' in its name, in name order, as
nasc's corpus loader reads it), split 90/5/5 as nasc_corpus_split does;
the training split cut into B streams, T characters per step, the state
carried from step to step; Adam at 0.002 with the cosine schedule of one
epoch, gradient norm clipped to 5. It prints the training characters per
second (after the first 5 steps) and the validation bits per character
after N steps, evaluated as nasc_evaluate_lm does (B streams from a zero
state). Used only by benchmarks, never by tests.
"""
import argparse
import math
import os
import sys
import time


def corpus(spec):
    if spec != "fortunes":
        with open(spec, "rb") as f:
            return f.read()
    d = "/usr/share/games/fortunes"
    names = sorted(n for n in os.listdir(d) if "." not in n and os.path.isfile(os.path.join(d, n))
                   and not os.path.islink(os.path.join(d, n)))
    return b"".join(open(os.path.join(d, n), "rb").read() for n in names)


def split(n):
    train_end = n // 20 * 18 + n % 20 * 18 // 20
    return train_end, train_end + (n - train_end) // 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="fortunes")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"charlm: skipped: PyTorch is not installed ({e}); Debian's python3-torch provides it")
        return
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    text = corpus(a.data)
    train_end, val_end = split(len(text))
    data = torch.tensor(list(text), dtype=torch.long)

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(256, a.input)
            self.rnn = torch.nn.LSTM(a.input, a.hidden)
            self.decoder = torch.nn.Linear(a.hidden, 256)

        def forward(self, x, state):  # x (T, B)
            y, state = self.rnn(self.embed(x), state)
            return self.decoder(y), state

    model = LM()
    params = sum(p.numel() for p in model.parameters())

    def streams(begin, end):
        length = (end - begin) // a.batch
        s = data[begin:begin + length * a.batch].view(a.batch, length).t().contiguous()  # (L, B)
        return s, (length - 1) // a.bptt

    def zero():
        z = torch.zeros(1, a.batch, a.hidden)
        return (z, z.clone())

    train, steps_per_epoch = streams(0, train_end)
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    lossf = torch.nn.CrossEntropyLoss()
    state = zero()
    model.train()
    t0 = None
    for k in range(a.steps):
        if k == 5:
            t0 = time.perf_counter()
        lr = 0.002 * (1 + math.cos(math.pi * k / steps_per_epoch)) / 2
        for g in opt.param_groups:
            g["lr"] = lr
        x = train[k * a.bptt:(k + 1) * a.bptt]
        y = train[k * a.bptt + 1:(k + 1) * a.bptt + 1]
        state = (state[0].detach(), state[1].detach())
        logits, state = model(x, state)
        loss = lossf(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if not math.isfinite(loss.item()):
            sys.exit(f"charlm: the loss is {loss.item()} at step {k + 1}")
    dt = time.perf_counter() - t0
    chars_per_s = (a.steps - 5) * a.batch * a.bptt / dt
    # Debian's torch multiplies matrices through libblas.so.3, whichever
    # implementation the alternatives system points it at
    blas = "?"
    with open("/proc/self/maps") as f:
        for line in f:
            if "libblas.so" in line:
                blas = line.split()[-1]
                break
    if "/blas/libblas" in blas:
        print(f"charlm: warning: PyTorch's matrix products run on the reference BLAS ({blas}); install "
              "libopenblas0-pthread (Debian) for a fair comparison", file=sys.stderr)

    model.eval()
    val, val_steps = streams(train_end, val_end)
    state = zero()
    total = 0.0
    with torch.no_grad():
        for k in range(val_steps):
            x = val[k * a.bptt:(k + 1) * a.bptt]
            y = val[k * a.bptt + 1:(k + 1) * a.bptt + 1]
            logits, state = model(x, state)
            total += lossf(logits.reshape(-1, 256), y.reshape(-1)).item()
    bpc = total / val_steps / math.log(2)
    print(f"pytorch {torch.__version__}: {params} parameters, {a.steps} steps, {chars_per_s:.0f} characters/s, "
          f"validation {bpc:.4f} bits per character (BLAS {os.path.basename(os.path.dirname(blas))})")


if __name__ == "__main__":
    main()
