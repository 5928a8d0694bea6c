#!/usr/bin/python3
"""onnx_check.py - check an ONNX file with ONNX's own checker.

    /usr/bin/python3 scripts/onnx_check.py MODEL.onnx [--opset N]
        [--meta KEY ...] [--make-input IN.pb --batch 2 --seed 0 [--tokens V]]

Runs onnx.checker.check_model(model, full_check=True) (the structural
checks plus strict shape inference over every node), and prints a one-line
summary. --opset checks the default-domain opset the file imports; --meta
checks that the metadata has KEY. With --make-input it also writes a random
standard-normal input tensor (ONNX TensorProto, float raw_data) for the
model's first input, the symbolic batch dimension set to --batch, so one
Python start-up serves both steps of a test; input k > 0 goes to IN.pb.k.
With --tokens V the first input holds token numbers in [0, V) (a language
model's characters) instead. Exit 1 on any failure.

With --list FILE it checks many models in one start-up: each line of FILE
is `MODEL.onnx IN.pb [V]`, and every model is checked and gets its input
(batch --batch, seed --seed; with V, as --tokens V); it stops at the first
failure.

Debian's python3-onnx loads only in Debian's interpreter: run this with
/usr/bin/python3.
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--list", metavar="FILE")
    ap.add_argument("--opset", type=int)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--make-input", metavar="IN.pb")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=0)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        sys.exit(f"onnx_check: error: {e} (install python3-onnx and run with /usr/bin/python3)")

    if (a.list is None) == (a.model is None):
        sys.exit("onnx_check: error: give one MODEL or --list FILE")
    if a.list is not None:
        with open(a.list) as f:
            jobs = [line.split() for line in f if line.strip()]
        for n, job in enumerate(jobs):
            if len(job) not in (2, 3):
                sys.exit(f"onnx_check: {a.list}:{n + 1}: error: expected MODEL.onnx IN.pb [V]")
            a.model, a.make_input = job[:2]
            a.tokens = int(job[2]) if len(job) == 3 else 0
            check(a, np, onnx, numpy_helper)
        print(f"onnx_check: {len(jobs)} models ok")
        return
    check(a, np, onnx, numpy_helper)


def check(a, np, onnx, numpy_helper):
    try:
        model = onnx.load(a.model)
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker raises several types
        sys.exit(f"onnx_check: {a.model}: error: {type(e).__name__}: {e}")
    opset = {o.domain: o.version for o in model.opset_import}.get("", None)
    if a.opset is not None and opset != a.opset:
        sys.exit(f"onnx_check: {a.model}: error: opset {opset}, expected {a.opset}")
    keys = {p.key for p in model.metadata_props}
    for k in a.meta:
        if k not in keys:
            sys.exit(f"onnx_check: {a.model}: error: no metadata key {k!r} (has {sorted(keys)})")
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    print(f"{a.model}: ok (ir {model.ir_version}, opset {opset}, {len(g.node)} nodes, "
          f"{len(g.initializer)} initializers, {len(inputs)} inputs, {len(g.output)} outputs)")

    if a.make_input:
        if not inputs:
            sys.exit(f"onnx_check: {a.model}: error: the model has no input")
        rng = np.random.default_rng(a.seed)
        for k, inp in enumerate(inputs if a.tokens else inputs[:1]):
            dims = []
            for d in inp.type.tensor_type.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else a.batch)
            if k == 0 and a.tokens:
                x = rng.integers(0, a.tokens, dims).astype(np.float32)
            else:
                x = rng.standard_normal(dims).astype(np.float32)
            t = numpy_helper.from_array(x, inp.name)
            with open(a.make_input if k == 0 else f"{a.make_input}.{k}", "wb") as f:
                f.write(t.SerializeToString())


if __name__ == "__main__":
    main()
