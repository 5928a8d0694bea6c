#!/usr/bin/python3
"""Extra ONNX test cases for `nasc test-onnx`, in the layout of ONNX's own
node tests (CASE/model.onnx, CASE/test_data_set_0/input_K.pb, output_K.pb).

They cover what ONNX's node tests do not: a symbolic batch dimension, Conv
with a bias, batch norm after a conv, the Pad+Slice shift pattern that
`nasc export` writes, Gemm with initializers (the inner-product form and
the matmul form), opset-11 Softmax (coerced to 2-D), names that are not
valid prim names, Constant nodes, broadcasts against initializers.

The expected outputs come from plain numpy references below (the Debian
onnx 1.12 module has no reference evaluator). Run with Debian's python
(it has onnx and numpy):

    /usr/bin/python3 tests/onnx/make_cases.py      # rewrites tests/onnx/cases/

The generated files are committed; tests/onnx/extra.txt lists the cases.
"""
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")
rng = np.random.RandomState(20240611)


def rand(*shape, scale=1.0):
    return (rng.randn(*shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- numpy references

def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.zeros((n, c, h + pt + pb, wd + pl + pr), np.float64)
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    ekh, ekw = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    ho = (xp.shape[2] - ekh) // stride[0] + 1
    wo = (xp.shape[3] - ekw) // stride[1] + 1
    y = np.zeros((n, o, ho, wo), np.float64)
    og = o // group
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * stride[0]:i * stride[0] + ekh:dil[0],
                           j * stride[1]:j * stride[1] + ekw:dil[1]]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def max_pool(x, k, s):
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, ho, wo), np.float64)
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return y


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def shift(x, dy, dx):
    y = np.zeros_like(x)
    h, w = x.shape[2], x.shape[3]
    y[:, :, :h - dy, :w - dx] = x[:, :, dy:, dx:]
    return y


# ---------------------------------------------------------------- writing

def tensor_info(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def write(case, nodes, inputs, outputs, inits, feeds, expected, opset=13):
    """inputs/outputs: [(name, shape with 'N' for the batch)], feeds and
    expected: arrays in the same order."""
    graph = helper.make_graph(nodes, case, [tensor_info(n, s) for n, s in inputs],
                              [tensor_info(n, s) for n, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="nasc tests/onnx/make_cases.py")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    d = os.path.join(OUT, case)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    onnx.save(model, os.path.join(d, "model.onnx"))
    for k, ((n, _), a) in enumerate(zip(inputs, feeds)):
        with open(os.path.join(d, "test_data_set_0", "input_%d.pb" % k), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(a, np.float32), n).SerializeToString())
    for k, ((n, _), a) in enumerate(zip(outputs, expected)):
        with open(os.path.join(d, "test_data_set_0", "output_%d.pb" % k), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(a, np.float32), n).SerializeToString())
    return case


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    cases = []

    # Conv with a bias, then Relu; symbolic batch (data batch 3)
    x, w, b = rand(3, 3, 5, 6), rand(4, 3, 3, 3, scale=0.3), rand(4)
    y = np.maximum(conv2d(x, w, b, pads=(1, 1, 1, 1)), 0)
    cases.append(write("nasc_conv_bias_relu_batch",
                       [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])],
                       [("x", ["N", 3, 5, 6])], [("y", ["N", 4, 5, 6])], [init("w", w), init("b", b)], [x], [y]))

    # A small classifier: conv, batch norm, relu, max pool, global average
    # pool, flatten, Gemm (transB = 1, the inner-product form), softmax
    x = rand(2, 2, 6, 6)
    w = rand(8, 2, 3, 3, scale=0.4)
    sc, sh, mu, var = rand(8) * 0.2 + 1, rand(8) * 0.1, rand(8) * 0.1, np.abs(rand(8)) + 0.5
    fw, fb = rand(5, 8, scale=0.5), rand(5)
    c = conv2d(x, w, pads=(1, 1, 1, 1))
    bn = sc.reshape(1, -1, 1, 1) * (c - mu.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + 1e-3) + \
        sh.reshape(1, -1, 1, 1)
    p = max_pool(np.maximum(bn, 0), 2, 2)
    g = p.mean(axis=(2, 3))
    y = softmax(g @ fw.T + fb, 1)
    cases.append(write("nasc_cnn_classifier_batch",
                       [helper.make_node("Conv", ["x", "conv.w"], ["conv"], pads=[1, 1, 1, 1]),
                        helper.make_node("BatchNormalization", ["conv", "bn.scale", "bn.shift", "bn.m", "bn.v"],
                                         ["bn"], epsilon=1e-3),
                        helper.make_node("Relu", ["bn"], ["relu"]),
                        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
                        helper.make_node("GlobalAveragePool", ["pool"], ["gap"]),
                        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
                        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
                        helper.make_node("Softmax", ["logits"], ["prob"], axis=1)],
                       [("x", ["N", 2, 6, 6])], [("prob", ["N", 5])],
                       [init("conv.w", w), init("bn.scale", sc), init("bn.shift", sh), init("bn.m", mu),
                        init("bn.v", var), init("fc.w", fw), init("fc.b", fb)], [x], [y]))

    # The shift pattern nasc exports: Pad (bottom, right) then Slice
    x = rand(2, 3, 4, 5)
    nodes, outs, exp = [], [], []
    for k, (dy, dx) in enumerate([(1, 1), (0, 1), (2, 0)]):
        nodes += [helper.make_node("Pad", ["x", "pads%d" % k], ["padded%d" % k]),
                  helper.make_node("Slice", ["padded%d" % k, "starts%d" % k, "ends%d" % k, "axes%d" % k],
                                   ["s%d" % k])]
        outs.append(("s%d" % k, ["N", 3, 4, 5]))
        exp.append(shift(x, dy, dx))
    inits = []
    for k, (dy, dx) in enumerate([(1, 1), (0, 1), (2, 0)]):
        inits += [init("pads%d" % k, np.array([0, 0, 0, 0, 0, 0, dy, dx], np.int64)),
                  init("starts%d" % k, np.array([dy, dx], np.int64)),
                  init("ends%d" % k, np.array([dy + 4, dx + 5], np.int64)),
                  init("axes%d" % k, np.array([2, 3], np.int64))]
    cases.append(write("nasc_shift_pattern", nodes, [("x", ["N", 3, 4, 5])], outs, inits, [x], exp))

    # Gemm with initializers: transB = 0 and alpha, beta (a folded inner
    # product), and a matrix C (the matmul form), batch from the data
    a = rand(4, 6)
    bw, bc = rand(6, 3), rand(3)
    cm = rand(4, 3)
    y1 = 0.5 * (a @ bw) + 2.0 * bc
    y2 = a @ bw + cm
    cases.append(write("nasc_gemm_initializers",
                       [helper.make_node("Gemm", ["a", "bw", "bc"], ["y1"], alpha=0.5, beta=2.0),
                        helper.make_node("Gemm", ["a", "bw", "cm"], ["y2"])],
                       [("a", [4, 6])], [("y1", [4, 3]), ("y2", [4, 3])],
                       [init("bw", bw), init("bc", bc), init("cm", cm)], [a], [y1, y2]))

    # Gemm's matmul form with every constant the import makes: transA
    # (no inner product), alpha (a scalar parameter), beta times a constant
    # C. Thirty unused initializers come first, so that the constants the
    # import adds grow its table while C is still to be read.
    a = rand(6, 4)
    bw, cm = rand(5, 6), rand(4, 5)
    y = 0.5 * (a.T @ bw.T) + 0.25 * cm
    cases.append(write("nasc_gemm_matmul_constants",
                       [helper.make_node("Gemm", ["a", "bw", "cm"], ["y"], alpha=0.5, beta=0.25, transA=1, transB=1)],
                       [("a", [6, 4])], [("y", [4, 5])],
                       [init("unused%d" % i, np.float32(i)) for i in range(30)] + [init("bw", bw), init("cm", cm)],
                       [a], [y]))

    # Softmax of operator set 11 over axis 1 of a 4-D batch: softmax over
    # C*H*W (the input coerced to 2-D); Flatten on a batch
    x = rand(2, 3, 2, 2)
    y = softmax(x.reshape(2, -1), 1).reshape(2, 3, 2, 2)
    cases.append(write("nasc_softmax_opset11_batch",
                       [helper.make_node("Softmax", ["x"], ["y"], axis=1),
                        helper.make_node("Flatten", ["y"], ["f"])],
                       [("x", ["N", 3, 2, 2])], [("f", ["N", 12])], [], [x], [y.reshape(2, 12)], opset=11))

    # Depthwise dilated conv with auto_pad SAME_UPPER and stride 2
    x = rand(2, 4, 7, 6)
    w = rand(4, 1, 3, 3, scale=0.5)
    # SAME_UPPER: out = ceil(in / s); total pad = (out - 1) * s + (k - 1) * d + 1 - in, the extra at the end
    ho, wo = 4, 3
    th, tw = (ho - 1) * 2 + 5 - 7, (wo - 1) * 2 + 5 - 6
    y = conv2d(x, w, stride=(2, 2), pads=(th // 2, tw // 2, th - th // 2, tw - tw // 2), dil=(2, 2), group=4)
    cases.append(write("nasc_depthwise_dilated_same",
                       [helper.make_node("Conv", ["x", "w"], ["y"], group=4, dilations=[2, 2], strides=[2, 2],
                                         auto_pad="SAME_UPPER")],
                       [("x", ["N", 4, 7, 6])], [("y", ["N", 4, ho, wo])], [init("w", w)], [x], [y]))

    # Names that are not prim names, a Constant node as a Reshape shape, a
    # broadcast Mul by an initializer (C,1,1) and an Add of a vector
    x = rand(2, 3, 2, 2)
    s = rand(3, 1, 1)
    v = rand(4)
    y = (x * s).reshape(2, 3, 4) + v
    cases.append(write("nasc_names_constants_broadcast",
                       [helper.make_node("Mul", ["input:0", "scale/1"], ["model/mul:0"]),
                        helper.make_node("Constant", [], ["shape"], value=init("", np.array([0, 3, -1], np.int64))),
                        helper.make_node("Reshape", ["model/mul:0", "shape"], ["model/reshape"]),
                        helper.make_node("Add", ["model/reshape", "bias vec"], ["out put"])],
                       [("input:0", ["N", 3, 2, 2])], [("out put", ["N", 3, 4])],
                       [init("scale/1", s), init("bias vec", v)], [x], [y]))

    # MatMul of a batch by weights, 3-D by 2-D (broadcast), Sum of three
    x3 = rand(2, 3, 4)
    wm = rand(4, 5)
    y3 = x3 @ wm
    cases.append(write("nasc_matmul_broadcast",
                       [helper.make_node("MatMul", ["x", "wm"], ["mm"]),
                        helper.make_node("Sum", ["mm", "mm", "x5"], ["y"])],
                       [("x", [2, 3, 4]), ("x5", [5])], [("y", [2, 3, 5])], [init("wm", wm)],
                       [x3, np.arange(5, dtype=np.float32)], [2 * y3 + np.arange(5)]))

    # AveragePool with ceil_mode and pads (the last window hangs over the
    # edge: it averages the real pixels only), MaxPool with dilations and
    # pads, on a batch
    x = rand(2, 2, 8, 8)
    ho = 5  # ceil((8 + 2 - 3) / 2) + 1
    ap = np.zeros((2, 2, ho, ho))
    for i in range(ho):
        for j in range(ho):
            r0, c0 = i * 2 - 1, j * 2 - 1
            rs = slice(max(r0, 0), min(r0 + 3, 8))
            cs = slice(max(c0, 0), min(c0 + 3, 8))
            win = x[:, :, rs, cs]
            ap[:, :, i, j] = win.sum(axis=(2, 3)) / (win.shape[2] * win.shape[3])
    xm = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    mo = 10 - 5 + 1
    mp = np.zeros((2, 2, mo, mo))
    for i in range(mo):
        for j in range(mo):
            mp[:, :, i, j] = xm[:, :, i:i + 5:2, j:j + 5:2].max(axis=(2, 3))
    cases.append(write("nasc_pooling_ceil_dilated_batch",
                       [helper.make_node("AveragePool", ["x"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
                                         pads=[1, 1, 1, 1], ceil_mode=1),
                        helper.make_node("MaxPool", ["x"], ["mp"], kernel_shape=[3, 3], dilations=[2, 2],
                                         pads=[1, 1, 1, 1])],
                       [("x", ["N", 2, 8, 8])], [("ap", ["N", 2, ho, ho]), ("mp", ["N", 2, mo, mo])], [], [x],
                       [ap, mp], opset=12))

    with open(os.path.join(HERE, "extra.txt"), "w") as f:
        f.write("# Extra cases for nasc test-onnx, made by tests/onnx/make_cases.py (tests/onnx/cases/).\n")
        for c in cases:
            f.write(c + "\n")


if __name__ == "__main__":
    main()
