#!/usr/bin/python3
"""report.py - reads what bench/peers/dashboard.sh measured and prints the
machine block and the Markdown table (the dashboard's last step).

    report.py parse-nasc FILE          check that a `nasc bench` output has
                                       every line the table needs (exit 1
                                       naming the first missing one)
    report.py table DIR MODEL...       the report from DIR (the dashboard's
                                       work directory), one row per MODEL

DIR holds machine.txt ("key value" lines) and, per model M, M/nasc.out
(`nasc bench`), M/ort_b1.out and M/ort_b64.out (bench/ort_bench.js),
M/torch.out (torch_from_onnx.py bench, absent when PyTorch was skipped),
M/loadavg (the load average when the model's turn began) and,
with --load, M/load_nasc.R.out and M/load_ort_b64.R.out for the rounds
R = 1..K (machine.txt: load_rounds K).
"""
import math
import os
import re
import sys

NUM = r"([0-9]+(?:\.[0-9]+)?)"

# the lines of `nasc bench` the table needs: (name, regex)
REQUIRED = [
    ("sgemm peak", rf"^sgemm peak \([^)]*\): {NUM} GFLOP/s"),
    ("training", rf"^training, batch (\d+): {NUM} images/s, {NUM} GFLOP/s = {NUM}% of the sgemm peak$"),
    ("training rounds", rf"^  the median of \d+ rounds, .*\({NUM} GFLOP/s, the median\); rounds {NUM}% to {NUM}%$"),
    ("compile", rf"^\s*compile {NUM} s;"),
    ("memory planned", r"^\s*compile .*memory ([0-9.]+[KMGTP]?)B planned"),
    ("compile again", rf"^\s*compile again[^:]*: {NUM} s"),
    ("inference, batch 1", rf"^inference, batch 1: {NUM} images/s"),
]
KNOWN = REQUIRED + [
    ("model", r"^model \S+: [0-9,]+ parameters"),
    ("inference, batch B", rf"^inference, batch (\d+): {NUM} images/s"),
    ("lanes", r"^\s*in \d+ lanes: "),
    ("rounds", r"^  the median of \d+ rounds, "),
]
# any other "compile ...: X s" line nasc bench may print (e.g. a compile of a
# seen child) becomes a column of its own
EXTRA_COMPILE = re.compile(rf"^\s*(compile[^:;]*?)\s*(?:\([^)]*\))?\s*:\s*{NUM} s")


def die(msg):
    sys.stderr.write(f"dashboard: error: {msg}\n")
    sys.exit(1)


def parse_nasc(path):
    try:
        text = open(path).read()
    except OSError as e:
        die(f"cannot read {path}: {e}")
    lines = text.splitlines()
    r = {}
    for name, rx in REQUIRED:
        m = next((re.match(rx, l) for l in lines if re.match(rx, l)), None)
        if not m:
            die(f"{path}: `nasc bench` printed no '{name}' line (matching /{rx}/); its output:\n{text}")
        r[name] = m.groups()
    batch = r["training"][0]
    mb = next((re.match(rf"^inference, batch {batch}: {NUM} images/s", l) for l in lines
               if re.match(rf"^inference, batch {batch}: ", l)), None)
    if not mb:
        die(f"{path}: `nasc bench` printed no 'inference, batch {batch}' line; its output:\n{text}")
    out = {
        "peak": float(r["sgemm peak"][0]),
        "batch": int(batch),
        "train": float(r["training"][1]),
        "train_gflops": float(r["training"][2]),
        "train_pct": float(r["training"][3]),
        "train_peak": float(r["training rounds"][0]),
        "train_pct_range": (float(r["training rounds"][1]), float(r["training rounds"][2])),
        "compile": float(r["compile"][0]),
        "arena": r["memory planned"][0] + "B",
        "compile_again": float(r["compile again"][0]),
        "infer_b1": float(r["inference, batch 1"][0]),
        "infer_bB": float(mb.group(1)),
        "extra": {},   # further compile lines: label -> seconds
        "other": [],   # lines of no known kind, shown verbatim
    }
    for l in lines:
        if any(re.match(rx, l) for _, rx in KNOWN):
            continue
        m = EXTRA_COMPILE.match(l)
        if m:
            out["extra"][m.group(1).strip()] = float(m.group(2))
        elif l.strip():
            out["other"].append(l.strip())
    return out


def kv(path):
    d = {}
    if not os.path.exists(path):
        return None
    for l in open(path):
        k, _, v = l.rstrip("\n").partition(" ")
        if k:
            d[k] = v
    return d


def ort_figure(path):
    m = re.search(rf"^images/s {NUM}", open(path).read(), re.M)
    if not m:
        die(f"{path}: bench/ort_bench.js printed no 'images/s' line")
    return float(m.group(1))


def si_bytes(n):
    n = float(n)
    for s in ("", "K", "M", "G", "T"):
        if abs(n) < 999.5 or s == "T":
            return f"{n:.0f}{s}B" if abs(n) >= 99.95 or not s else (f"{n:.1f}{s}B" if abs(n) >= 9.995 else f"{n:.2f}{s}B")
        n /= 1000.0


def fmt(x, d=1):
    return "—" if x is None else f"{x:.{d}f}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def median(v):
    v = sorted(v)
    k = len(v) // 2
    return v[k] if len(v) % 2 else (v[k - 1] + v[k]) / 2


def load_of(d, m):
    """The 1-minute load average when the model's measurements began."""
    try:
        return open(os.path.join(d, m, "loadavg")).read().strip() or "?"
    except OSError:
        return "?"


def table(d, models):
    mach = kv(os.path.join(d, "machine.txt")) or {}
    rows, extra_cols, others, notes = [], [], [], []
    peaks = []
    for m in models:
        n = parse_nasc(os.path.join(d, m, "nasc.out"))
        peaks.append(n["train_peak"])
        t = kv(os.path.join(d, m, "torch.out"))
        o1 = ort_figure(os.path.join(d, m, "ort_b1.out"))
        oB = ort_figure(os.path.join(d, m, "ort_b64.out"))
        for k in n["extra"]:
            if k not in extra_cols:
                extra_cols.append(k)
        others += [f"{m}: {l}" for l in n["other"]]
        f = lambda k, t=t: float(t[k]) if t and k in t else None
        rows.append((m, n, t, o1, oB, f))
        if t:
            notes.append(f"{m}: PyTorch vs ONNX Runtime max |diff| {t.get('check_max_abs_diff', '?')} "
                         f"(outputs up to {t.get('check_max_abs_ref', '?')}); optimizer step "
                         f"{100 * float(t.get('train_optimizer_share', 'nan')):.1f}% of PyTorch's training time")
    B = rows[0][1]["batch"] if rows else 64
    out = []
    p = out.append
    p("## Machine")
    p("")
    p(f"- CPU: {mach.get('cpu', '?')}; avx512f: {mach.get('avx512f', '?')}; {mach.get('cores', '?')} cores; "
      f"{mach.get('threads', '?')} threads used everywhere")
    if peaks:
        p(f"- sgemm peak (nasc bench, 2048^3, {mach.get('threads', '?')} threads): "
          + ", ".join(f"{m} {x:.1f}" for m, x in zip(models, peaks)) + " GFLOP/s (the median of the sgemm runs taken between a model's training rounds; "
          "a row's training % is the median of its rounds' ratios, each against the sgemm just before it; "
          "the lowest and highest round in brackets)")
    p(f"- nasc {mach.get('nasc', '?')} ({mach.get('build', '?')}); PyTorch {mach.get('torch', '?')}; "
      f"onnxruntime-node {mach.get('ort', '?')}; node {mach.get('node', '?')}")
    p(f"- {mach.get('seconds', '?')} s per figure; load average {mach.get('load_start', '?')} at the start, "
      f"{mach.get('load_end', '?')} at the end")
    for w in ("load_start", "load_end"):
        try:
            if float(mach.get(w, "0")) > 0.5:
                p(f"- **warning: load average {mach[w]} at the {w[5:]}: other work on this machine "
                  "distorts the figures**")
        except ValueError:
            pass
    p("")
    hdr = (["model", f"nasc train b{B} img/s", "PyTorch train img/s", "nasc/PyTorch train", "train % of sgemm peak",
            f"nasc infer b{B}", f"ORT b{B}", f"nasc/ORT b{B}", "nasc infer b1", "ORT b1", "nasc/ORT b1",
            f"PyTorch infer b{B}", "PyTorch infer b1", "compile s", "compile again s"]
           + [f"{c} s" for c in extra_cols] + ["nasc arena (planned)", "PyTorch train peak mem", "load avg"])
    p("| " + " | ".join(hdr) + " |")
    p("|" + "|".join("---" if i == 0 else "---:" for i in range(len(hdr))) + "|")
    for m, n, t, o1, oB, f in rows:
        pt, pB, p1 = f("train_images_per_s"), f(f"infer_b{B}_images_per_s"), f("infer_b1_images_per_s")
        mem = si_bytes(t["train_peak_mem_bytes"]) if t and "train_peak_mem_bytes" in t else "—"
        cells = ([m, fmt(n["train"]), fmt(pt), ratio(n["train"], pt),
                  f"{n['train_pct']:.1f}% ({n['train_pct_range'][0]:.1f}-{n['train_pct_range'][1]:.1f})",
                  fmt(n["infer_bB"]), fmt(oB), ratio(n["infer_bB"], oB),
                  fmt(n["infer_b1"]), fmt(o1), ratio(n["infer_b1"], o1),
                  fmt(pB), fmt(p1), f"{n['compile']:.2f}", f"{n['compile_again']:.2f}"]
                 + [f"{n['extra'][c]:.2f}" if c in n["extra"] else "—" for c in extra_cols]
                 + [n["arena"], mem, load_of(d, m)])
        p("| " + " | ".join(cells) + " |")
    p("")
    p("img/s = images per second; ratios above 1: nasc is faster; load avg: the 1-minute load average when the row's measurements began. nasc's training figure is forward + loss + "
      "backward (`nasc bench` does not time an optimizer update); PyTorch's includes the SGD step.")
    if any(t for _, _, t, _, _, _ in rows):
        t0 = next(t for _, _, t, _, _, _ in rows if t)
        p(f"PyTorch: eager mode, {t0.get('torch_memory_format', '?')}, {t0.get('torch_threads', '?')} threads; "
          f"peak memory = {t0.get('train_peak_mem_method', '?')} around the first training step "
          "(activations, gradients, momentum buffers, scratch); nasc arena = activations and gradients "
          "planned by liveness.")
    else:
        p("PyTorch: not installed, skipped.")
    geo = [math.log(n["infer_bB"] / oB) for _, n, _, _, oB, _ in rows] + \
          [math.log(n["infer_b1"] / o1) for _, n, _, o1, _, _ in rows]
    if geo:
        p(f"Geometric mean of nasc/ORT inference over {len(geo)} figures: {math.exp(sum(geo) / len(geo)):.2f}.")
    tr = [math.log(n["train"] / f("train_images_per_s")) for _, n, _, _, _, f in rows if f("train_images_per_s")]
    if tr:
        p(f"Geometric mean of nasc/PyTorch training over {len(tr)} models: {math.exp(sum(tr) / len(tr)):.2f}.")
    for note in notes:
        p(f"- {note}")
    for o in others:
        p(f"- further `nasc bench` line, {o}")

    K = int(mach.get("load_rounds", "0") or 0)
    if K > 0 and models:
        p("")
        p(f"### Under load: {mach.get('load_what', '?')}; {K} rounds")
        p("")
        p(f"| model | nasc infer b{B} quiet | loaded, median (lowest-highest) | kept | ORT b{B} quiet | "
          "loaded, median (lowest-highest) | kept | nasc train quiet | loaded, median | kept |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m, n, _, _, oB, _ in rows:
            lns = [parse_nasc(os.path.join(d, m, f"load_nasc.{r}.out")) for r in range(1, K + 1)]
            li, lt = [x["infer_bB"] for x in lns], [x["train"] for x in lns]
            lo = [ort_figure(os.path.join(d, m, f"load_ort_b64.{r}.out")) for r in range(1, K + 1)]
            pc = lambda a, b: f"{100 * a / b:.0f}%"
            span = lambda v: f"{median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
            p(f"| {m} | {n['infer_bB']:.1f} | {span(li)} | {pc(median(li), n['infer_bB'])} | "
              f"{oB:.1f} | {span(lo)} | {pc(median(lo), oB)} | {n['train']:.1f} | {median(lt):.1f} | "
              f"{pc(median(lt), n['train'])} |")
        p("")
        p("kept = the loaded median over the quiet figure (the quiet figures are one run each).")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "parse-nasc":
        parse_nasc(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        sys.stdout.write(table(sys.argv[2], sys.argv[3:]))
    else:
        die("usage: report.py parse-nasc FILE | report.py table DIR MODEL...")


if __name__ == "__main__":
    main()
