#!/usr/bin/python3
"""ONNX files as PyTorch's exporter writes them, for nasc's importer.

Each model below is a small network of a family people export from
PyTorch (DARTS and NASNet cells, ResNet, MobileNet, VGG) or a module that
makes torch.onnx.export write one construct nasc must read (x.view(N, -1),
F.pad, slicing, Gemm transposes, initializers listed as graph inputs,
Constant nodes), exported at the opset given in its row. Weights come from
a fixed seed; batch-norm running statistics are set to values that are not
0 and 1 so that they matter.

For each model NAME this writes

    NAME/model.onnx          what torch.onnx.export wrote
    NAME/input_0.pb          one input tensor (seeded), as a TensorProto

Expected outputs are not stored: tests/onnx/test_torch_models.sh runs
every model with ONNX Runtime and with `nasc run` on the same input and
compares the two. This script is the only place that needs PyTorch (Debian's
python3-torch, in /usr/bin/python3); the files it writes are committed:

    /usr/bin/python3 tests/onnx/torch/make_models.py [NAME...]

models.txt (written too) lists NAME, opset and what the model exercises.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- building blocks

class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout))


class SepConv(nn.Sequential):
    """DARTS sep_conv: two (relu, depthwise, pointwise, bn) stacks."""

    def __init__(self, c, k, stride):
        p = k // 2
        super().__init__(
            nn.ReLU(), nn.Conv2d(c, c, k, stride, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(), nn.Conv2d(c, c, k, 1, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c))


class DilConv(nn.Sequential):
    def __init__(self, c, k, stride, dil):
        super().__init__(nn.ReLU(), nn.Conv2d(c, c, k, stride, dil * (k // 2), dilation=dil, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))


class FactorizedReduce(nn.Module):
    """Halve H and W: two 1x1 stride-2 convs, the second on x[:, :, 1:, 1:]."""

    def __init__(self, cin, cout):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.c2 = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.c1(x), self.c2(x[:, :, 1:, 1:])], dim=1))


def darts_op(name, c, stride):
    if name == "sep_conv_3x3":
        return SepConv(c, 3, stride)
    if name == "sep_conv_5x5":
        return SepConv(c, 5, stride)
    if name == "dil_conv_3x3":
        return DilConv(c, 3, stride, 2)
    if name == "dil_conv_5x5":
        return DilConv(c, 5, stride, 2)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    raise ValueError(name)


class DartsCell(nn.Module):
    """A DARTS cell: two preprocessed inputs, 4 nodes of two ops each (summed),
    the node outputs concatenated."""

    def __init__(self, genotype, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.ops = nn.ModuleList()
        self.index = []
        for name, j in genotype:
            self.ops.append(darts_op(name, c, 2 if reduction and j < 2 else 1))
            self.index.append(j)
        self.multiplier = len(genotype) // 2

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(self.multiplier):
            a = self.ops[2 * i](states[self.index[2 * i]])
            b = self.ops[2 * i + 1](states[self.index[2 * i + 1]])
            states.append(a + b)
        return torch.cat(states[2:], dim=1)


DARTS_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
DARTS_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 1)]


class DartsNet(nn.Module):
    """DARTS (V2 genotype) at toy size: stem, normal, reduction, normal, head."""

    def __init__(self, c=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c))
        self.cells = nn.ModuleList([
            DartsCell(DARTS_NORMAL, 3 * c, 3 * c, c, False, False),
            DartsCell(DARTS_REDUCE, 3 * c, 4 * c, 2 * c, True, False),
            DartsCell(DARTS_NORMAL, 4 * c, 8 * c, 2 * c, False, True),
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * c, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.fc(self.pool(s1).view(s1.size(0), -1))


# ---- NASNet-A, in the shape of the widely used PyTorch port: separable
# convs with their own relu/bn stacks, ZeroPad2d + pool + crop in the
# reduction cell, and the two-path factorized reduction of the input.

class SeparableConv(nn.Module):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, k, stride, pad, groups=cin, bias=False)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pw(self.dw(x))


class BranchSeparables(nn.Module):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__()
        self.sep1 = SeparableConv(cin, cin, k, stride, pad)
        self.bn1 = nn.BatchNorm2d(cin)
        self.sep2 = SeparableConv(cin, cout, k, 1, pad)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.bn1(self.sep1(F.relu(x)))
        return self.bn2(self.sep2(F.relu(x)))


class NasnetNormal(nn.Module):
    def __init__(self, c_left, c_right, c):
        super().__init__()
        self.conv_prev = ReLUConvBN(c_left, c, 1, 1, 0)
        self.conv_1x1 = ReLUConvBN(c_right, c, 1, 1, 0)
        self.b0l = BranchSeparables(c, c, 5, 1, 2)
        self.b0r = BranchSeparables(c, c, 3, 1, 1)
        self.b1l = BranchSeparables(c, c, 5, 1, 2)
        self.b1r = BranchSeparables(c, c, 3, 1, 1)
        self.b2l = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.b3l = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.b3r = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.b4l = BranchSeparables(c, c, 3, 1, 1)

    def forward(self, x, x_prev):
        xl, xr = self.conv_prev(x_prev), self.conv_1x1(x)
        c0 = self.b0l(xr) + self.b0r(xl)
        c1 = self.b1l(xl) + self.b1r(xl)
        c2 = self.b2l(xr) + xl
        c3 = self.b3l(xl) + self.b3r(xl)
        c4 = self.b4l(xr) + xr
        return torch.cat([xl, c0, c1, c2, c3, c4], 1)


class PadPoolCrop(nn.Module):
    """ZeroPad2d((1, 0, 1, 0)), a stride-2 pool, then drop the first row and
    column (what the port does to match TensorFlow's SAME padding)."""

    def __init__(self, pool):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.pool = pool

    def forward(self, x):
        return self.pool(self.pad(x))[:, :, 1:, 1:]


class PadSepCrop(nn.Module):
    def __init__(self, c, k, pad):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.dw = nn.Conv2d(c, c, k, 2, pad, groups=c, bias=False)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.sep2 = SeparableConv(c, c, k, 1, k // 2)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        x = self.pad(F.relu(x))
        x = self.dw(x)[:, :, 1:, 1:]
        x = self.bn1(self.pw(x))
        return self.bn2(self.sep2(F.relu(x)))


class NasnetReduction(nn.Module):
    def __init__(self, c_left, c_right, c):
        super().__init__()
        self.conv_prev = ReLUConvBN(c_left, c, 1, 1, 0)
        self.conv_1x1 = ReLUConvBN(c_right, c, 1, 1, 0)
        self.b0l = PadSepCrop(c, 5, 2)
        self.b0r = PadSepCrop(c, 7, 3)
        self.b1l = PadPoolCrop(nn.MaxPool2d(3, 2, 1))
        self.b1r = PadSepCrop(c, 7, 3)
        self.b2l = PadPoolCrop(nn.AvgPool2d(3, 2, 1, count_include_pad=False))
        self.b2r = PadSepCrop(c, 5, 2)
        self.b3r = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.b4l = BranchSeparables(c, c, 3, 1, 1)
        self.b4r = PadPoolCrop(nn.MaxPool2d(3, 2, 1))

    def forward(self, x, x_prev):
        xl, xr = self.conv_1x1(x), self.conv_prev(x_prev)
        c0 = self.b0l(xl) + self.b0r(xr)
        c1 = self.b1l(xl) + self.b1r(xr)
        c2 = self.b2l(xl) + self.b2r(xr)
        c3 = self.b3r(c0) + c1
        c4 = self.b4l(c0) + self.b4r(xl)
        return torch.cat([c1, c2, c3, c4], 1)


class TwoPathReduce(nn.Module):
    """NASNet's reduction of the skip input: average pool of x and of x
    shifted by one pixel (pad right/bottom, crop top/left), 1x1 convs,
    concat, bn."""

    def __init__(self, cin, cout):
        super().__init__()
        self.p1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.p2 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(x)
        a = self.p1(F.avg_pool2d(x, 1, 2, count_include_pad=False))
        b = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        b = self.p2(F.avg_pool2d(b, 1, 2, count_include_pad=False))
        return self.bn(torch.cat([a, b], 1))


class NasnetNet(nn.Module):
    def __init__(self, c=4, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.cell0 = NasnetNormal(8, 8, c)          # -> 6c
        self.red = NasnetReduction(8, 6 * c, 2 * c)  # -> 8c, 14x14
        self.skip = TwoPathReduce(6 * c, 2 * c)
        self.cell1 = NasnetNormal(2 * c, 8 * c, 2 * c)  # -> 12c
        self.fc = nn.Linear(12 * c, classes)

    def forward(self, x):
        s = self.stem(x)
        a = self.cell0(s, s)
        b = self.red(a, s)
        c = self.cell1(b, self.skip(a))
        y = F.relu(c).mean([2, 3])
        return self.fc(y)


# ---- ResNet (BasicBlock), MobileNetV2, VGG

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2), BasicBlock(16, 16, 1),
                                    BasicBlock(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        h = cin * expand
        self.res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 4), InvertedResidual(12, 12, 1, 4),
            InvertedResidual(12, 16, 2, 4), nn.Conv2d(16, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).reshape(x.shape[0], -1))


class VGG(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.classifier = nn.Sequential(nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---- one construct each

class ViewFlatten(nn.Module):
    """x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat, Reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5, 2, 2)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = y.view(y.size(0), -1)
        # a shape computed from other dims: (N, 4, 196) then back
        z = y.reshape(y.size(0), y.size(1) // 196, 196)
        return self.fc(z.flatten(1))


class PadModel(nn.Module):
    """F.pad as a standalone Pad: before a conv (folds into its pads),
    before a max pool, before an add, and a pad with a non-zero value."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3)
        self.c2 = nn.Conv2d(4, 4, 3, groups=4)
        self.fc = nn.Linear(4 * 7 * 7, 10)

    def forward(self, x):
        y = F.relu(self.c1(F.pad(x, (1, 1, 1, 1))))                # 28x28
        y = F.max_pool2d(F.pad(y, (0, 1, 0, 1)), 2)                # 29x29 -> 14x14
        z = self.c2(F.pad(y, (2, 0, 0, 2)))                        # 16x16 -> 14x14
        y = y + F.pad(z[:, :, 1:, 1:], (1, 0, 1, 0), value=0.5)    # 13x13 -> 14x14
        y = F.avg_pool2d(F.pad(y, (1, 1, 1, 1)), 2, 2)             # 16x16 -> 8x8
        return self.fc(y[:, :, :7, :7].flatten(1))


class SliceModel(nn.Module):
    """Slicing: crops, channel ranges, steps, negative indices."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6 + 4 * 13 * 13, 10)

    def forward(self, x):
        y = torch.tanh(self.c1(x))               # (N, 8, 28, 28)
        a = y[:, :4, 1:-1, 2:]                   # (N, 4, 26, 26)
        b = y[:, 4:, ::2, 1::2]                  # (N, 4, 14, 14)
        a = F.max_pool2d(self.c2(a), 4)          # (N, 4, 6, 6)
        b = b[:, :, 1:, :-1] * torch.sigmoid(b[:, :, :13, 1:])
        return self.fc(torch.cat([a.flatten(1), b.flatten(1)], 1))


class GemmModel(nn.Module):
    """torch.addmm with transposed operands: Gemm with transA / transB,
    alpha and beta. Fixed batch (the transposed operand has it in dim 1)."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(784, 16) * 0.05)   # (K, N): transB = 0
        self.b1 = nn.Parameter(torch.randn(16) * 0.1)
        self.w2 = nn.Parameter(torch.randn(16, 12) * 0.2)     # A of a transA Gemm
        self.b2 = nn.Parameter(torch.randn(12, 1) * 0.1)
        self.w3 = nn.Parameter(torch.randn(10, 12) * 0.2)
        self.b3 = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        h = torch.relu(torch.addmm(self.b1, x.flatten(1), self.w1))               # (2, 16)
        t = torch.addmm(self.b2, self.w2.t(), h.t(), beta=0.5, alpha=2.0)        # (12, 2)
        return torch.addmm(self.b3, torch.tanh(t).t(), self.w3.t())               # (2, 10)


class KeepInits(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.b1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 12, 3, 2, 1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        y = torch.sigmoid(self.c2(y))
        return F.softmax(self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1)), dim=1)


class ConstantsModel(nn.Module):
    """Tensors made inside forward: Constant nodes (scales, offsets, a
    shape), exported without constant folding."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        scale = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1)
        y = self.conv(x) * scale + torch.tensor(0.25)
        y = torch.relu(y).reshape(-1, 3, 784)
        return torch.softmax(y.sum(1) * 0.01, dim=-1)


# ---- what nasc refuses, with the error that must name the node

class LeakyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        return self.act(self.conv(x)).flatten(1)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: view, transpose, view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class TransposeHW(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x).transpose(2, 3)


class ReflectPad(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))


# ---------------------------------------------------------------- the list

# name, class, opset, dynamic batch, input batch, export options, what it exercises
MODELS = [
    ("darts_cells", DartsNet, 13, True, 2, {},
     "DARTS V2 cells: sep_conv, dil_conv, max/avg pool, skip, concat of node outputs, reduction cell "
     "(stride 2), FactorizedReduce (Slice [1:, 1:] into a conv), view(N, -1)"),
    ("nasnet_cells", NasnetNet, 17, True, 2, {},
     "NASNet-A normal and reduction cells: separable convs, ZeroPad2d + pool + crop, two-path reduction "
     "(F.pad + slice: the shift pattern), ReduceMean over H, W"),
    ("resnet", ResNet, 15, True, 2, {},
     "ResNet BasicBlocks: conv+bn (folded by the exporter), residual add, 1x1 stride-2 downsample, "
     "GlobalAveragePool, Flatten, Gemm"),
    ("mobilenet_v2", MobileNetV2, 13, True, 2, {},
     "MobileNetV2 inverted residuals: depthwise convs, ReLU6 (Clip with min/max inputs), "
     "x.reshape(x.shape[0], -1)"),
    ("vgg_opset11", VGG, 11, True, 2, {},
     "VGG-style convs and max pools, Flatten + Linear at opset 11"),
    ("view_flatten", ViewFlatten, 13, True, 3, {},
     "x.view(x.size(0), -1) and a reshape with a computed dim: Shape, Gather, Unsqueeze (axes input), "
     "Div, Concat, Reshape"),
    ("view_flatten_opset11", ViewFlatten, 11, True, 2, {},
     "the same at opset 11: Unsqueeze with an axes attribute"),
    ("pad", PadModel, 11, True, 2, {},
     "standalone Pad (opset 11: pads as an input) before a conv, a max pool, an add, an avg pool; "
     "a non-zero pad value"),
    ("slice", SliceModel, 13, True, 2, {},
     "Slice: crops on H and W, channel ranges, steps 2, negative ends"),
    ("gemm_transpose", GemmModel, 13, False, 2, {"do_constant_folding": False},
     "Gemm with transA, transB, alpha, beta on a fixed batch; Transpose"),
    ("keep_initializers", KeepInits, 11, True, 2, {"keep_initializers_as_inputs": True},
     "initializers also listed as graph inputs (keep_initializers_as_inputs=True), BatchNormalization, "
     "Sigmoid, Softmax"),
    ("constants", ConstantsModel, 13, True, 2, {"do_constant_folding": False},
     "Constant nodes (tensors built in forward), Mul/Add by constants, ReduceSum, Softmax over the last axis"),
]


# name, class, opset, the node nasc refuses, why (a substring of the error)
BAD = [
    ("bad_leaky_relu", LeakyNet, 13, "/act/LeakyRelu", "operator 'LeakyRelu' is not supported"),
    ("bad_channel_shuffle", ChannelShuffle, 13, "/Reshape", "the result would have rank 5; nasc tensors have rank 1 to 4"),
    ("bad_transpose", TransposeHW, 13, "/Transpose", "a Transpose of a computed tensor is not supported"),
    ("bad_reflect_pad", ReflectPad, 13, "/Pad", "mode 'reflect' is not supported"),
]


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def export(name, cls, opset, dynamic, batch, opts, what):
    torch.manual_seed(20241204)
    model = cls()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        randomize_bn(model, gen)
    model.eval()
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    kw = dict(opset_version=opset, input_names=["x"], output_names=["y"])
    if dynamic:
        kw["dynamic_axes"] = {"x": {0: "N"}, "y": {0: "N"}}
    kw.update(opts)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    with open(os.path.join(d, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x.numpy().astype(np.float32), "x").SerializeToString())
    ops = sorted({n.op_type for n in m.graph.node})
    size = os.path.getsize(path)
    print(f"{name}: opset {opset}, {size} bytes, ops {' '.join(ops)}")
    return f"{name}\t{opset}\t{' '.join(ops)}\t{what}"


def export_bad(name, cls, opset, node_name, why):
    """A model nasc must refuse; the expected error names the node (name,
    index, op type) as the exporter wrote it."""
    export(name, cls, opset, True, 2, {}, why)
    m = onnx.load(os.path.join(HERE, name, "model.onnx"))
    idx = next(i for i, n in enumerate(m.graph.node) if n.name == node_name)
    return f"{name}\tnode '{node_name}' (#{idx}, {m.graph.node[idx].op_type}): {why}"


def main():
    want = set(sys.argv[1:])
    rows, bad = [], []
    for row in MODELS:
        if not want or row[0] in want:
            rows.append(export(*row))
    for row in BAD:
        if not want or row[0] in want:
            bad.append(export_bad(*row))
    if not want:
        with open(os.path.join(HERE, "models.txt"), "w") as f:
            f.write("# NAME<TAB>OPSET<TAB>ONNX OPS<TAB>WHAT IT EXERCISES (written by make_models.py)\n")
            f.write("\n".join(rows) + "\n")
        with open(os.path.join(HERE, "bad.txt"), "w") as f:
            f.write("# NAME<TAB>THE ERROR nasc MUST GIVE (written by make_models.py)\n")
            f.write("\n".join(bad) + "\n")


if __name__ == "__main__":
    main()
