#!/usr/bin/python3
"""The bad-input corpus of the ONNX importer: models nasc must reject with a
clear NASC_EINPUT diagnostic (never a crash). Each file's expected message
(a substring) is in expect.txt, one `FILE<TAB>SUBSTRING` line per file;
tests/frontend/test_onnx_import.c imports every file and checks it.

Run with Debian's python (it has onnx and numpy); the outputs are
committed:

    /usr/bin/python3 tests/bad/onnx/make.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
expect = []


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits=(), opset=13, value_info=(), check=True):
    g = helper.make_graph(nodes, "bad", inputs, outputs, list(inits), value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="nasc bad corpus")
    m.ir_version = 7
    if check:
        onnx.checker.check_model(m)
    return m


def save(name, m, want):
    data = m if isinstance(m, bytes) else m.SerializeToString()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    expect.append((name, want))


W = np.ones((4, 3, 3, 3), np.float32)


def conv_relu(**kw):
    return model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
                 [vi("x", ["N", 3, 8, 8])], [vi("y", ["N", 4, 8, 8])], [init("w", W)], **kw)


def main():
    good = conv_relu().SerializeToString()
    save("empty.onnx", b"", "empty file")
    save("truncated.onnx", good[: len(good) // 2], "truncated or malformed protobuf")
    save("garbage.onnx", bytes(range(7, 250, 3)) * 4, "truncated or malformed protobuf")
    save("tensor_not_model.onnx", numpy_helper.from_array(np.ones(3, np.float32), "t").SerializeToString(),
         "not an ONNX model")

    # a name no node, input or initializer defines (a missing initializer)
    save("missing_initializer.onnx",
         model([helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", ["N", 3, 8, 8])], [vi("y", ["N", 4, 6, 6])],
               check=False),
         "input 'w' is not defined by any node, graph input or initializer")
    save("undefined_output.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 3])], [vi("z", ["N", 3])], check=False),
         "graph output 'z' is not defined")
    # a cycle: a reads b, b reads a
    save("cycle.onnx",
         model([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
               [vi("x", ["N", 3])], [vi("b", ["N", 3])], check=False),
         "input 'b' is used before it is defined (a cycle, or nodes out of order)")
    save("out_of_order.onnx",
         model([helper.make_node("Relu", ["a"], ["y"]), helper.make_node("Tanh", ["x"], ["a"])],
               [vi("x", ["N", 3])], [vi("y", ["N", 3])], check=False),
         "input 'a' is used before it is defined")
    save("duplicate_output.onnx",
         model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Tanh", ["x"], ["y"])],
               [vi("x", ["N", 3])], [vi("y", ["N", 3])], check=False),
         "output 'y' is already defined (by another node)")
    # dims that do not fit
    save("wrong_output_dims.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 3, 4])], [vi("y", ["N", 3, 5])]),
         "graph output 'y' is declared f32[N,3,5] but its node computes f32[N,3,4]")
    save("wrong_value_info_dims.onnx",
         model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tanh", ["r"], ["y"])],
               [vi("x", ["N", 3, 4])], [vi("y", ["N", 3, 4])], value_info=[vi("r", ["N", 4, 3])], check=False),
         "tensor 'r' is declared f32[N,4,3] (value_info) but its node computes f32[N,3,4]")
    save("wrong_weight_dims.onnx",
         model([helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", ["N", 5, 8, 8])], [vi("y", ["N", 4, 6, 6])],
               [init("w", W)], check=False),
         "conv input has 5 channels, weight expects 3")
    save("add_no_broadcast.onnx",
         model([helper.make_node("Add", ["x", "z"], ["y"])], [vi("x", ["N", 3, 4]), vi("z", [5])],
               [vi("y", ["N", 3, 4])], check=False),
         "do not broadcast")
    save("add_both_broadcast.onnx",
         model([helper.make_node("Add", ["a", "b"], ["y"])], [vi("a", [3, 1]), vi("b", [1, 4])], [vi("y", [3, 4])]),
         "broadcasting where no input has the result's shape")
    # unsupported operators and attributes
    save("unknown_op.onnx",
         model([helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky")], [vi("x", ["N", 3])], [vi("y", ["N", 3])]),
         "node 'leaky' (#0, LeakyRelu): operator 'LeakyRelu' is not supported")
    save("custom_domain.onnx",
         model([helper.make_node("Relu", ["x"], ["y"], domain="com.example")], [vi("x", ["N", 3])],
               [vi("y", ["N", 3])], check=False),
         "operators of domain 'com.example' are not supported")
    save("bad_auto_pad.onnx",
         model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], auto_pad="SAME_MIDDLE")],
               [vi("x", ["N", 3, 8, 8])], [vi("y", ["N", 3, 8, 8])], check=False),
         "node #0 (unnamed, MaxPool): attribute 'auto_pad' value 'SAME_MIDDLE' is not supported")
    save("unknown_attribute.onnx",
         model([helper.make_node("Relu", ["x"], ["y"], alpha=0.5)], [vi("x", ["N", 3])], [vi("y", ["N", 3])],
               check=False),
         "attribute 'alpha' is not supported")
    save("pad_reflect.onnx",
         model([helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 4, 5])], [init("p", np.array([0, 0, 0, 0, 0, 0, 0, 1], np.int64))]),
         "node #0 (unnamed, Pad): mode 'reflect' is not supported")
    save("pad_batch.onnx",
         model([helper.make_node("Pad", ["x", "p"], ["y"])], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 4, 4])], [init("p", np.array([1, 0, 0, 0, 0, 0, 0, 0], np.int64))], check=False),
         "node #0 (unnamed, Pad): padding axis 0 (the batch) is not supported")
    save("slice_batch.onnx",
         model([helper.make_node("Slice", ["x", "s", "e"], ["y"])], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 3, 4])], [init("s", np.array([1], np.int64)), init("e", np.array([4], np.int64))],
               check=False),
         "node #0 (unnamed, Slice): slicing the batch dimension N is not supported")
    save("slice_reverse.onnx",
         model([helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 4, 4])],
               [init("s", np.array([-1], np.int64)), init("e", np.array([-5], np.int64)),
                init("a", np.array([3], np.int64)), init("t", np.array([-1], np.int64))]),
         "a negative step along axis 3 (reversing) is not supported")
    save("slice_empty.onnx",
         model([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 1, 4])],
               [init("s", np.array([3], np.int64)), init("e", np.array([1], np.int64)),
                init("a", np.array([2], np.int64))], check=False),
         "the slice of axis 2 is empty")
    save("gather_batch.onnx",
         model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], [vi("x", ["N", 3])], [vi("y", [3])],
               [init("i", np.array(0, np.int64))]),
         "gathering along axis 0 (the batch) is not supported")
    save("gather_uneven.onnx",
         model([helper.make_node("Gather", ["x", "i"], ["y"], axis=2)], [vi("x", ["N", 3, 4, 4])],
               [vi("y", ["N", 3, 3, 4])], [init("i", np.array([0, 1, 3], np.int64))]),
         "indices along axis 2 must be evenly spaced and increasing")
    save("transpose_value.onnx",
         model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2], name="swap_hw")],
               [vi("x", ["N", 3, 4, 5])], [vi("y", ["N", 3, 5, 4])]),
         "node 'swap_hw' (#0, Transpose): a Transpose of a computed tensor is not supported")
    # shapes computed in the graph: the batch size N is only known at run time
    shape_of_x = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
                  helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"])]
    save("shape_batch_arith.onnx",
         model(shape_of_x + [helper.make_node("Mul", ["n1", "two"], ["n2"], name="twice_n"),
                             helper.make_node("Concat", ["n2", "m1"], ["shape"], axis=0),
                             helper.make_node("Reshape", ["x", "shape"], ["y"])],
               [vi("x", ["N", 4])], [vi("y", ["M", 2])],
               [init("i0", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
                init("two", np.array([2], np.int64)), init("m1", np.array([-1], np.int64))]),
         "node 'twice_n' (#3, Mul): the result depends on the batch size N, which is not known at import")
    save("shape_batch_moved.onnx",
         model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i"], ["t"], axis=0),
                helper.make_node("Reshape", ["x", "t"], ["y"])],
               [vi("x", ["N", 1])], [vi("y", [1, "N"])], [init("i", np.array([1, 0], np.int64))]),
         "shape[1] is the batch size N of another tensor")
    save("constant_of_shape_batch.onnx",
         model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["z"]),
                helper.make_node("Add", ["x", "z"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 3])]),
         "(the shape) depends on the batch size N, which is not known at import")
    save("int_div_by_zero.onnx",
         model([helper.make_node("Div", ["a", "b"], ["c"]), helper.make_node("Reshape", ["x", "c"], ["y"])],
               [vi("x", ["N", 4])], [vi("y", ["N", 4])],
               [init("a", np.array([4, 8], np.int64)), init("b", np.array([1, 0], np.int64))], check=False),
         "node #0 (unnamed, Div): integer division by zero")
    save("div_by_value.onnx",
         model([helper.make_node("Div", ["x", "x"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 3])]),
         "division by a computed tensor is not supported")
    save("cast_value_int.onnx",
         model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64)], [vi("x", ["N", 3])],
               [vi("y", ["N", 3], TensorProto.INT64)]),
         "a cast of a computed tensor to INT64 is not supported")
    save("reduce_batch.onnx",
         model([helper.make_node("ReduceSum", ["x", "a"], ["y"], keepdims=0)], [vi("x", ["N", 3])], [vi("y", [3])],
               [init("a", np.array([0], np.int64))]),
         "reducing over axis 0 (the batch) is not supported")
    save("reduce_not_adjacent.onnx",
         model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 3])], [vi("x", ["N", 3, 4, 5])],
               [vi("y", ["N", 1, 4, 1])]),
         "the axes must be adjacent")
    save("clip_min_above_max.onnx",
         model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 3])],
               [init("lo", np.array(2, np.float32)), init("hi", np.array(1, np.float32))]),
         "min 2 is above max 1")
    save("unsqueeze_no_axes.onnx",
         model([helper.make_node("Unsqueeze", ["x"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 1, 3])],
               check=False),
         "the axes are required")
    save("reshape_huge_dim.onnx",
         model([helper.make_node("Reshape", ["x", "s"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 3])],
               [init("s", np.array([0, 3 << 60], np.int64))], check=False),
         "shape[1] = 3458764513820540928 is not supported (dims are 1 to 2^24)")
    save("constant_of_shape_huge.onnx",
         model([helper.make_node("ConstantOfShape", ["s"], ["z"]), helper.make_node("Add", ["x", "z"], ["y"])],
               [vi("x", ["N", 3])], [vi("y", ["N", 3])], [init("s", np.array([1 << 20, 1 << 20], np.int64))],
               check=False),
         "the result would have more than 1048576 elements")
    save("squeeze_not_one.onnx",
         model([helper.make_node("Squeeze", ["x", "a"], ["y"])], [vi("x", ["N", 3, 1])], [vi("y", ["N", 1])],
               [init("a", np.array([1], np.int64))], check=False),
         "axis 1 has size 3, not 1")
    save("training_batchnorm.onnx",
         model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)],
               [vi("x", ["N", 2, 3, 3])], [vi("y", ["N", 2, 3, 3])],
               [init("s", np.ones(2, np.float32)), init("b", np.zeros(2, np.float32)),
                init("m", np.zeros(2, np.float32)), init("v", np.ones(2, np.float32))], opset=15),
         "attribute 'training_mode' = 1 is not supported")
    save("avgpool_ceil_count_pad.onnx",
         model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                                 count_include_pad=1)], [vi("x", ["N", 1, 4, 4])], [vi("y", ["N", 1, 2, 2])]),
         "count_include_pad = 1 with a ceil_mode window past the edge is not supported")
    save("maxpool_indices.onnx",
         model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])], [vi("x", ["N", 1, 4, 4])],
               [vi("y", ["N", 1, 3, 3]), vi("i", ["N", 1, 3, 3], TensorProto.INT64)]),
         "output 2 ('i', the Indices of the maxima) is not supported")
    save("conv1d.onnx",
         model([helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", ["N", 3, 8])], [vi("y", ["N", 4, 6])],
               [init("w", np.ones((4, 3, 3), np.float32))]),
         "only 2-D convolution (a rank-4 N,C,H,W input) is supported")
    save("conv_weight_not_constant.onnx",
         model([helper.make_node("Relu", ["w0"], ["w"]), helper.make_node("Conv", ["x", "w"], ["y"])],
               [vi("x", ["N", 3, 8, 8]), vi("w0", [4, 3, 3, 3])], [vi("y", ["N", 4, 6, 6])]),
         "input 2 'w' (the weights W) must be a constant")
    save("reshape_shape_input.onnx",
         model([helper.make_node("Reshape", ["x", "s"], ["y"])], [vi("x", ["N", 12]), vi("s", [2], TensorProto.INT64)],
               [vi("y", ["N", 3, 4])], check=False),
         "input 2 's' (the shape) must be a constant")
    save("reshape_moves_batch.onnx",
         model([helper.make_node("Reshape", ["x", "s"], ["y"])], [vi("x", ["N", 12])], [vi("y", [3, "M"])],
               [init("s", np.array([3, -1], np.int64))], check=False),
         "the reshape would move or change the batch dimension N")
    save("concat_batch_axis.onnx",
         model([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], [vi("x", ["N", 3])], [vi("y", ["M", 3])],
               check=False),
         "concat along the batch axis is not supported")
    save("axis_out_of_range.onnx",
         model([helper.make_node("Softmax", ["x"], ["y"], axis=3)], [vi("x", ["N", 3])], [vi("y", ["N", 3])],
               check=False),
         "axis 3 is out of range for rank 2")
    # types and ranks
    save("int64_input.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 3], TensorProto.INT64)],
               [vi("y", ["N", 3], TensorProto.INT64)]),
         "graph input 'x' is a tensor of INT64; nasc computes in float (FLOAT) only")
    save("double_initializer.onnx",
         model([helper.make_node("Add", ["x", "b"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 3])],
               [init("b", np.ones(3, np.float64))], check=False),
         "its data type is DOUBLE (11)")
    save("rank5.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 2, 2, 2, 2])], [vi("y", ["N", 2, 2, 2, 2])]),
         "graph input 'x' has rank 5; nasc tensors have rank 1 to 4")
    save("symbolic_inner_dim.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", "C"])], [vi("y", ["N", "C"])]),
         "dim 1 is symbolic; only the first dim may be (the batch)")
    save("huge_input.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 16000000, 16000000, 16000000])],
               [vi("y", ["N", 16000000, 16000000, 16000000])]),
         "graph input 'x' is too large")
    save("zero_dim.onnx",
         model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 0, 3])], [vi("y", ["N", 0, 3])]),
         "dim 1 is 0 (an empty tensor is not supported)")
    save("not_a_tensor.onnx",
         model([helper.make_node("Identity", ["x"], ["y"])],
               [helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [3])],
               [helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, [3])]),
         "graph input 'x' is not a tensor")
    # malformed initializers
    m = conv_relu()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:40]
    save("short_raw_data.onnx", m, "it holds 10 values (raw_data) where its dims need 108")
    m = conv_relu()
    t = m.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    e = t.external_data.add()
    e.key, e.value = "location", "weights.bin"
    save("external_data.onnx", m, "its data is in an external file")
    m = conv_relu()
    m.graph.initializer.append(init("w", W))
    save("duplicate_initializer.onnx", m, "initializer 'w' is given twice")
    m = conv_relu()
    m.opset_import[0].version = 99
    save("opset_too_new.onnx", m, "operator set 99 is newer than nasc knows")
    m = conv_relu()
    del m.graph.output[:]
    save("no_outputs.onnx", m, "the graph has no outputs")

    with open(os.path.join(HERE, "expect.txt"), "w") as f:
        f.write("# FILE<TAB>a substring of the error nasc must report (made by make.py)\n")
        for name, want in expect:
            f.write("%s\t%s\n" % (name, want))


if __name__ == "__main__":
    main()
