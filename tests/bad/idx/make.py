#!/usr/bin/env python3
"""Regenerate the bad IDX data-set corpus: one directory per case, each a
data set as nasc_data_load reads it (train-* and t10k-* IDX files), with
the training split broken in one way, and a file `expect` holding

    FILE: SUBSTRING

meaning that loading the directory fails with a diagnostic for FILE (a name
in the directory, or '.' for the directory itself) whose message contains
SUBSTRING. tests/frontend/test_idx.c checks every case.

Run from anywhere: /usr/bin/python3 tests/bad/idx/make.py
"""
import gzip
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def images(n, rows, cols, payload=None, magic=0x803):
    if payload is None:
        payload = n * rows * cols
    return struct.pack(">IIII", magic, n, rows, cols) + bytes((k * 7 + 3) % 256 for k in range(payload))


def labels(n, payload=None, magic=0x801, values=None):
    if payload is None:
        payload = n
    if values is None:
        values = [i % 10 for i in range(payload)]
    return struct.pack(">II", magic, n) + bytes(values)


def gz(data):
    return gzip.compress(data, mtime=0)


GOOD_TEST = {"t10k-images-idx3-ubyte": images(2, 4, 4), "t10k-labels-idx1-ubyte": labels(2)}

CASES = {
    "bad_magic": ({"train-images-idx3-ubyte": labels(6),
                   "train-labels-idx1-ubyte": labels(6)},
                  "train-images-idx3-ubyte: bad magic number 0x00000801"),
    "float_images": ({"train-images-idx3-ubyte": images(6, 4, 4, magic=0xD03),
                      "train-labels-idx1-ubyte": labels(6)},
                     "train-images-idx3-ubyte: only unsigned-byte elements"),
    "truncated_images": ({"train-images-idx3-ubyte": images(6, 4, 4, payload=90),
                          "train-labels-idx1-ubyte": labels(6)},
                         "train-images-idx3-ubyte: truncated: expected 96 bytes"),
    "truncated_header": ({"train-images-idx3-ubyte": images(6, 4, 4)[:11],
                          "train-labels-idx1-ubyte": labels(6)},
                         "train-images-idx3-ubyte: truncated IDX images file: the header needs 16 bytes, found 11"),
    "truncated_gzip": ({"train-images-idx3-ubyte.gz": gz(images(600, 28, 28))[:1000],
                        "train-labels-idx1-ubyte": labels(600)},
                       "train-images-idx3-ubyte.gz: the gzip stream ends early"),
    "trailing_labels": ({"train-images-idx3-ubyte": images(6, 4, 4),
                         "train-labels-idx1-ubyte.gz": gz(labels(6, payload=8))},
                        "train-labels-idx1-ubyte.gz: 2 unexpected trailing bytes"),
    "count_mismatch": ({"train-images-idx3-ubyte": images(6, 4, 4),
                        "train-labels-idx1-ubyte": labels(5)},
                       "train-labels-idx1-ubyte: 5 labels in this file but 6 images in"),
    "label_range": ({"train-images-idx3-ubyte": images(6, 4, 4),
                     "train-labels-idx1-ubyte": labels(6, values=[0, 1, 2, 3, 10, 4])},
                    "train-labels-idx1-ubyte: label 10 at index 4 is out of range"),
    "zero_images": ({"train-images-idx3-ubyte": images(0, 4, 4),
                     "train-labels-idx1-ubyte": labels(0)},
                    "train-images-idx3-ubyte: empty IDX images"),
    "huge_dims": ({"train-images-idx3-ubyte": images(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, payload=64),
                   "train-labels-idx1-ubyte": labels(6)},
                  "train-images-idx3-ubyte: IDX images too large"),
    "missing_labels": ({"train-images-idx3-ubyte": images(6, 4, 4)},
                       ".: no train-labels file in this directory (tried train-labels-idx1-ubyte, "
                       "train-labels-idx1-ubyte.gz, train-labels.idx1-ubyte, train-labels.idx1-ubyte.gz)"),
}

for name, (files, expect) in CASES.items():
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for fname, data in {**files, **GOOD_TEST}.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    with open(os.path.join(d, "expect"), "w") as f:
        f.write(expect + "\n")
