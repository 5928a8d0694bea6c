#!/usr/bin/python3
"""torch_from_onnx.py - a PyTorch model of the same architecture as an ONNX
graph, and the PyTorch half of bench/peers/dashboard.sh.

    torch_from_onnx.py make-input MODEL.onnx IN.pb [--batch N]
        random input of the model's input shape, as an ONNX TensorProto
        (needs only python3-onnx and numpy, not torch)
    torch_from_onnx.py bench MODEL.onnx [--threads T] [--batch B] [--seconds S]
                       [--check IN.pb REF.pb] [--channels-last]
        prints "key value" lines: with --check, the largest difference
        between this model (eval mode, the ONNX initializers as weights) and
        REF.pb (ONNX Runtime's output on IN.pb; an error above
        1e-3 * max(1, max |REF|)); the peak memory of the first
        training step; training images/s (batch B, SGD momentum 0.9,
        cross-entropy, forward + backward + step); inference images/s at
        batch 1 and B (eval mode, torch.no_grad).

OnnxTorch(model) walks the graph's nodes in order and builds an nn.Module
that executes the same ops: Conv as nn.Conv2d (groups, dilations, pads,
strides; asymmetric pads as an explicit F.pad), BatchNormalization as
nn.BatchNorm2d (batch statistics in train mode), Gemm / MatMul against an
initializer as nn.Linear, MaxPool / AveragePool (count_include_pad as the
attribute says), GlobalAveragePool, Flatten, Relu, Tanh, Sigmoid, Identity,
Add, Sum, Mul, Concat, Softmax, Pad and Slice and Reshape with constant
operands. Parameters are fresh (PyTorch's default init, the initializers'
shapes) unless load_weights=True. An op it does not know is an error, never
an approximation. This is a benchmark helper: no test imports it.
"""
import argparse
import gc
import os
import resource
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper


def die(msg):
    sys.stderr.write(f"torch_from_onnx: error: {msg}\n")
    sys.exit(1)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def input_shape(model):
    init = {i.name for i in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in init]
    if len(ins) != 1:
        die(f"expected one graph input, found {len(ins)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ins[0].type.tensor_type.shape.dim]
    if None in dims[1:]:
        die(f"input {ins[0].name} has symbolic dims past the batch: {dims}")
    return ins[0].name, dims[1:]


def make_input(args):
    model = onnx.load(args.model)
    name, shape = input_shape(model)
    rng = np.random.default_rng(7)
    x = rng.standard_normal([args.batch] + shape).astype(np.float32)
    onnx.save_tensor(numpy_helper.from_array(x, name), args.out)


# ---------------------------------------------------------------------------
# The builder (imports torch lazily so that make-input works without it)
# ---------------------------------------------------------------------------

def build_module_class():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def pool_pads(pads, rank, what):
        """ONNX pads (begins then ends) -> symmetric PyTorch padding, else None."""
        pads = list(pads) if pads else [0] * (2 * rank)
        begin, end = pads[:rank], pads[rank:]
        return tuple(begin) if begin == end else None, pads

    def fpad(pads, rank):
        """ONNX pads of the last rank dims (begins, ends) -> F.pad's order."""
        out = []
        for d in reversed(range(rank)):
            out += [pads[d], pads[rank + d]]
        return out

    class OnnxTorch(nn.Module):
        def __init__(self, model, load_weights=False):
            super().__init__()
            g = model.graph
            self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
            self.consts = dict(self.inits)  # static values: initializers and Constant outputs
            self.rank = {}
            for vi in list(g.input) + list(g.value_info) + list(g.output):
                self.rank[vi.name] = len(vi.type.tensor_type.shape.dim)
            self.in_name, _ = input_shape(model)
            self.load = load_weights
            self.mods = nn.ModuleList()
            self.steps = []      # (fn, input slots, output slot)
            self.slot = {self.in_name: 0}
            self.n_buffers = 0
            for node in g.node:
                self._add(node)
            outs = [o.name for o in g.output]
            if len(outs) != 1:
                die(f"expected one graph output, found {len(outs)}")
            if outs[0] not in self.slot:
                die(f"graph output {outs[0]} is not computed by any node")
            self.out_slot = self.slot[outs[0]]
            self.n_slots = len(self.slot)
            self.inits = None

        # -- helpers --------------------------------------------------------
        def _const(self, name, node):
            if name not in self.consts:
                die(f"{node.op_type} node {node.name}: operand {name} must be a constant")
            return self.consts[name]

        def _in(self, name, node):
            if name in self.slot:
                return self.slot[name]
            if name in self.consts:  # an initializer used as data: a buffer
                buf = f"const{self.n_buffers}"
                self.n_buffers += 1
                self.register_buffer(buf, torch.from_numpy(np.array(self.consts[name])))
                self.slot[name] = len(self.slot)
                slot = self.slot[name]
                self.steps.append((lambda m=self, b=buf: getattr(m, b), (), slot))
                return slot
            die(f"{node.op_type} node {node.name}: input {name} is not defined before it")

        def _emit(self, node, fn, data_inputs):
            slots = tuple(self._in(n, node) for n in data_inputs)
            if len(node.output) != 1 and node.op_type not in ("BatchNormalization", "MaxPool", "Dropout"):
                die(f"{node.op_type} node {node.name}: {len(node.output)} outputs")
            for extra in node.output[1:]:
                if extra:
                    die(f"{node.op_type} node {node.name}: optional output {extra} is used")
            self.slot[node.output[0]] = len(self.slot)
            self.steps.append((fn, slots, self.slot[node.output[0]]))

        def _param(self, mod, name, value):
            if self.load:
                t = getattr(mod, name)
                v = torch.from_numpy(np.array(value, dtype=np.float32))
                if tuple(t.shape) != tuple(v.shape):
                    die(f"{name}: shape {tuple(v.shape)}, module wants {tuple(t.shape)}")
                with torch.no_grad():
                    t.copy_(v)

        # -- ops ------------------------------------------------------------
        def _add(self, node):
            op, a, ins = node.op_type, attrs(node), list(node.input)
            if op == "Constant":
                if "value" not in a:
                    die(f"Constant node {node.name}: only the 'value' attribute is supported")
                self.consts[node.output[0]] = numpy_helper.to_array(a["value"])
                return
            if op == "Conv":
                w = self._const(ins[1], node)
                if w.ndim != 4:
                    die(f"Conv node {node.name}: only 2-D convolutions ({w.ndim - 2}-D here)")
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    die(f"Conv node {node.name}: auto_pad is not supported")
                groups = a.get("group", 1)
                sym, pads = pool_pads(a.get("pads"), 2, "Conv")
                conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]),
                                 stride=tuple(a.get("strides", [1, 1])), padding=sym or 0,
                                 dilation=tuple(a.get("dilations", [1, 1])), groups=groups,
                                 bias=len(ins) > 2 and ins[2] != "")
                self._param(conv, "weight", w)
                if conv.bias is not None:
                    self._param(conv, "bias", self._const(ins[2], node))
                self.mods.append(conv)
                if sym is None:
                    p = fpad(pads, 2)
                    self._emit(node, lambda x, c=conv, p=p: c(F.pad(x, p)), ins[:1])
                else:
                    self._emit(node, conv, ins[:1])
            elif op == "BatchNormalization":
                if a.get("training_mode", 0):
                    die(f"BatchNormalization node {node.name}: training_mode=1 graphs are not supported")
                scale = self._const(ins[1], node)
                rank = self.rank.get(ins[0], 4)
                cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
                # ONNX momentum m: running = m * running + (1 - m) * batch; PyTorch's is 1 - m
                bn = cls(scale.shape[0], eps=a.get("epsilon", 1e-5), momentum=1 - a.get("momentum", 0.9))
                for pname, i in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
                    self._param(bn, pname, self._const(ins[i], node))
                self.mods.append(bn)
                self._emit(node, bn, ins[:1])
            elif op in ("Relu", "Tanh", "Sigmoid", "Identity"):
                fn = {"Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
                      "Identity": lambda x: x}[op]
                self._emit(node, fn, ins[:1])
            elif op == "Add":
                self._emit(node, torch.add, ins)
            elif op == "Mul":
                self._emit(node, torch.mul, ins)
            elif op == "Sum":
                self._emit(node, lambda *xs: sum(xs[1:], xs[0]), ins)
            elif op == "Concat":
                self._emit(node, lambda *xs, ax=a["axis"]: torch.cat(xs, ax), ins)
            elif op in ("MaxPool", "AveragePool"):
                k = tuple(a["kernel_shape"])
                if len(k) != 2:
                    die(f"{op} node {node.name}: only 2-D pools")
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    die(f"{op} node {node.name}: auto_pad is not supported")
                sym, pads = pool_pads(a.get("pads"), 2, op)
                if sym is None:
                    die(f"{op} node {node.name}: asymmetric pads {pads} are not supported")
                stride, ceil = tuple(a.get("strides", [1, 1])), bool(a.get("ceil_mode", 0))
                if op == "MaxPool":
                    if a.get("storage_order", 0):
                        die(f"MaxPool node {node.name}: storage_order=1 is not supported")
                    mod = nn.MaxPool2d(k, stride, sym, dilation=tuple(a.get("dilations", [1, 1])), ceil_mode=ceil)
                else:
                    if any(d != 1 for d in a.get("dilations", [1, 1])):
                        die(f"AveragePool node {node.name}: dilations are not supported")
                    mod = nn.AvgPool2d(k, stride, sym, ceil_mode=ceil,
                                       count_include_pad=bool(a.get("count_include_pad", 0)))
                self.mods.append(mod)
                self._emit(node, mod, ins[:1])
            elif op == "GlobalAveragePool":
                self._emit(node, lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True), ins)
            elif op == "Flatten":
                ax = a.get("axis", 1)
                self._emit(node, lambda x, ax=ax: x.reshape(int(np.prod(x.shape[:ax])), -1), ins)
            elif op in ("Gemm", "MatMul"):
                if op == "Gemm" and (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0):
                    die(f"Gemm node {node.name}: only transA=0, alpha=beta=1")
                w = self._const(ins[1], node)
                if w.ndim != 2:
                    die(f"{op} node {node.name}: the weight must be 2-D")
                if op == "MatMul" or not a.get("transB", 0):
                    w = w.T  # (in, out) -> nn.Linear's (out, in)
                has_bias = op == "Gemm" and len(ins) > 2 and ins[2] != ""
                lin = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
                self._param(lin, "weight", w)
                if has_bias:
                    b = self._const(ins[2], node)
                    self._param(lin, "bias", np.broadcast_to(b, (w.shape[0],)))
                self.mods.append(lin)
                self._emit(node, lin, ins[:1])
            elif op == "Softmax":
                self._emit(node, lambda x, ax=a.get("axis", -1): torch.softmax(x, ax), ins)
            elif op == "Pad":
                pads = [int(v) for v in self._const(ins[1], node)]
                value = float(self._const(ins[2], node)) if len(ins) > 2 and ins[2] else 0.0
                mode = a.get("mode", b"constant")
                mode = mode.decode() if isinstance(mode, bytes) else mode
                rank = len(pads) // 2
                p = fpad(pads, rank)
                while p and p[-1] == 0 and p[-2] == 0:  # F.pad: leading dims left alone
                    p = p[:-2]
                if mode == "constant":
                    self._emit(node, lambda x, p=p, v=value: F.pad(x, p, "constant", v), ins[:1])
                elif mode in ("reflect", "edge"):
                    m = "reflect" if mode == "reflect" else "replicate"
                    self._emit(node, lambda x, p=p, m=m: F.pad(x, p, m), ins[:1])
                else:
                    die(f"Pad node {node.name}: mode {mode}")
            elif op == "Slice":
                starts = [int(v) for v in self._const(ins[1], node)]
                ends = [int(v) for v in self._const(ins[2], node)]
                axes = [int(v) for v in self._const(ins[3], node)] if len(ins) > 3 and ins[3] else list(range(len(starts)))
                steps = [int(v) for v in self._const(ins[4], node)] if len(ins) > 4 and ins[4] else [1] * len(starts)
                if any(s <= 0 for s in steps):
                    die(f"Slice node {node.name}: only positive steps")
                rank = self.rank.get(ins[0], 4)
                idx = [slice(None)] * rank
                for s, e, ax, st in zip(starts, ends, axes, steps):
                    idx[ax % rank] = slice(s, e, st)
                idx = tuple(idx)
                self._emit(node, lambda x, idx=idx: x[idx], ins[:1])
            elif op == "Reshape":
                shape = [int(v) for v in self._const(ins[1], node)]
                if a.get("allowzero", 0):
                    die(f"Reshape node {node.name}: allowzero=1 is not supported")
                self._emit(node, lambda x, s=shape: x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(s)]),
                           ins[:1])
            else:
                die(f"op {op} (node {node.name}) is not supported by this builder")

        def forward(self, x):
            env = [None] * self.n_slots
            env[0] = x
            for fn, slots, out in self.steps:
                env[out] = fn(*[env[s] for s in slots])
            return env[self.out_slot]

    return OnnxTorch


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

def rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def timed(fn, seconds, warmup=3, min_runs=3):
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if n >= min_runs and dt >= seconds:
            return n, dt


def bench(args):
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    OnnxTorch = build_module_class()
    model = onnx.load(args.model)
    _, shape = input_shape(model)
    out = lambda k, v: print(f"{k} {v}", flush=True)
    out("torch_version", torch.__version__)
    out("torch_threads", torch.get_num_threads())

    net = OnnxTorch(model)
    n_classes = None
    gen = torch.Generator().manual_seed(7)
    x = torch.randn([args.batch] + shape, generator=gen)
    with torch.no_grad():
        n_classes = net.eval()(x[:1]).shape[1]
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    out("torch_memory_format", "channels_last" if args.channels_last else "contiguous (NCHW)")
    net = net.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, n_classes, (args.batch,), generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    # peak memory of the first training step: the kernel's high-water mark of
    # resident memory, reset just before it (/proc/self/clear_refs "5")
    gc.collect()
    method = "VmHWM - VmRSS, high-water mark reset by /proc/self/clear_refs"
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss_bytes("VmRSS")
        step()
        peak = rss_bytes("VmHWM") - before
    except OSError:
        method = "getrusage ru_maxrss delta (the high-water mark could not be reset)"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    out("train_peak_mem_bytes", peak)
    out("train_peak_mem_method", method)

    if args.check:
        ref_net = OnnxTorch(model, load_weights=True).eval()
        xin = torch.from_numpy(numpy_helper.to_array(onnx.load_tensor(args.check[0])).copy())
        ref = numpy_helper.to_array(onnx.load_tensor(args.check[1]))
        with torch.no_grad():
            got = ref_net(xin).numpy()
        if got.shape != ref.shape:
            die(f"check: output shape {got.shape}, ONNX Runtime's {ref.shape}")
        diff, scale = float(np.max(np.abs(got - ref))), float(np.max(np.abs(ref)))
        out("check_max_abs_diff", f"{diff:.3e}")
        out("check_max_abs_ref", f"{scale:.3e}")
        # fresh He-normal weights with running statistics 0/1 give logits far
        # above 1, so the bound scales with them: 1e-3 absolute up to |ref| 1
        if not diff <= 1e-3 * max(1.0, scale):
            die(f"the PyTorch model differs from ONNX Runtime by {diff:.3e} "
                f"(outputs up to {scale:.3e}): the builder does not reproduce {args.model}")
        del ref_net

    # training: forward + backward + SGD step; the step's share timed apart
    opt_time = [0.0]

    def step_timed():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        t = time.perf_counter()
        opt.step()
        opt_time[0] += time.perf_counter() - t
        return loss

    net.train()
    timed(step, 0, warmup=1, min_runs=1)  # with the memory step above: three warm-up steps
    opt_time[0] = 0.0
    n, dt = timed(step_timed, args.seconds, warmup=0)
    loss = float(step_timed())
    if not np.isfinite(loss):
        die(f"training loss is {loss}")
    out("train_images_per_s", f"{n * args.batch / dt:.1f}")
    out("train_optimizer_share", f"{opt_time[0] / dt:.4f}")

    net.eval()
    with torch.no_grad():
        for b in (1, args.batch):
            xb = x[:b].contiguous(memory_format=fmt)
            n, dt = timed(lambda: net(xb), args.seconds)
            out(f"infer_b{b}_images_per_s", f"{n * b / dt:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    mi = sub.add_parser("make-input")
    mi.add_argument("model")
    mi.add_argument("out")
    mi.add_argument("--batch", type=int, default=4)
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--seconds", type=float, default=3.0)
    b.add_argument("--check", nargs=2, metavar=("IN.pb", "REF.pb"))
    b.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    args = p.parse_args()
    if args.cmd == "make-input":
        make_input(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
