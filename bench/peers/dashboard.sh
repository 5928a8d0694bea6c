#!/usr/bin/env bash
# nasc's performance dashboard: nasc against PyTorch and ONNX Runtime on the
# same architectures, all figures from one run.
#
#   bench/peers/dashboard.sh [BUILD_DIR] [--seconds S] [--models a,b] [--quick]
#                            [--load] [--load-rounds K] [--out FILE]
#                            [--torch-channels-last]
#
# For each model (default: darts-v2, nasnet-a, enas-micro, baseline-cnn from
# models/; --models takes names there or paths to model files) at its
# default Fashion-MNIST size (1x28x28, 10 classes), with 2 threads, one
# measurement after another:
#   1. nasc: `BUILD_DIR/nasc bench MODEL --threads 2 --batch 64 --seconds S`
#      (training and inference images/s, compile times, planned memory, the
#      sgemm peak); a line the table needs that is missing is an error.
#   2. ONNX Runtime (onnxruntime-node, bench/ort_bench.js) on
#      `nasc export MODEL`, batch 1 and 64, 2 intra-op threads.
#   3. PyTorch (Debian's python3-torch; skipped with a message when absent):
#      bench/peers/torch_from_onnx.py builds an nn.Module of the same graph
#      from the exported ONNX file, checks it in eval mode with the ONNX
#      weights against ONNX Runtime's output (fails when they differ), then
#      measures training (batch 64, SGD momentum 0.9, cross-entropy,
#      forward + backward + step), inference at batch 1 and 64, and the
#      peak memory of one training step.
#   4. With --load: nasc bench and ONNX Runtime at batch 64 again while a
#      2-process CPU load runs (`stress -c 2`: two workers spinning on
#      sqrt(); without stress, two `while :; do :; done` bash loops), K
#      rounds (--load-rounds, default 3) of both, one after the other, and
#      the fraction of the quiet throughput each keeps: the median round's,
#      with the lowest and highest (one loaded figure moves by 2x from run
#      to run, as the scheduler happens to interleave the processes).
# Then it prints the machine (CPU, avx512f, cores, sgemm peak, versions,
# load average) and a Markdown table, one row per model (bench/peers/
# report.py); --out FILE also writes them to FILE. S defaults to 3 seconds
# per figure (--quick: 0.5). BUILD_DIR defaults to build/. Run it on a quiet
# machine: it warns when the load average is above 0.5. Needs python3-onnx,
# node and node_modules/onnxruntime-node (`make deps`); PyTorch optional.
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
THREADS=2
BATCH=64

usage() {
    echo "usage:"
    sed -n '5,7s/^#//p' "$0"
    exit "${1:-2}"
}
die() {
    echo "dashboard: error: $*" >&2
    exit 1
}

BUILD=$REPO/build
SECS=
MODELS=darts-v2,nasnet-a,enas-micro,baseline-cnn
QUICK=0
LOAD=0
ROUNDS=3
OUT=
CL=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) [ $# -ge 2 ] || usage; SECS=$2; shift 2 ;;
    --models) [ $# -ge 2 ] || usage; MODELS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --load) LOAD=1; shift ;;
    --load-rounds) [ $# -ge 2 ] || usage; ROUNDS=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    --torch-channels-last) CL=(--channels-last); shift ;;
    -h | --help) usage 0 ;;
    -*) echo "dashboard: unknown option $1" >&2; usage ;;
    *) BUILD=$1; shift ;;
    esac
done
[ -n "$SECS" ] || { [ "$QUICK" = 1 ] && SECS=0.5 || SECS=3; }
awk -v s="$SECS" 'BEGIN { exit !(s + 0 > 0) }' || die "--seconds wants a positive number, not '$SECS'"
case $ROUNDS in '' | *[!0-9]*) die "--load-rounds wants a whole number of 1 or more, not '$ROUNDS'" ;; esac
ROUNDS=$((10#$ROUNDS))
[ "$ROUNDS" -ge 1 ] || die "--load-rounds wants a whole number of 1 or more, not 0"
NASC=$BUILD/nasc
[ -x "$NASC" ] || die "no $NASC (build it: cmake -S . -B build && cmake --build build)"
PY=${NASC_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3) || die "no python3"
"$PY" -c 'import onnx, numpy' 2>/dev/null || die "$PY cannot import onnx and numpy (python3-onnx; make deps)"
command -v node >/dev/null || die "no node (make deps)"
[ -d "$REPO/node_modules/onnxruntime-node" ] || die "onnxruntime-node missing in $REPO/node_modules (make deps)"

# model names -> files; the row label is the base name
declare -a NAMES=() FILES=()
IFS=, read -r -a list <<<"$MODELS"
for m in "${list[@]}"; do
    [ -n "$m" ] || continue
    if [ -f "$m" ]; then f=$m; else f=$REPO/models/$m.yaml; fi
    [ -f "$f" ] || die "no model $m (neither a file nor models/$m.yaml)"
    n=$(basename "$f"); n=${n%.*}
    NAMES+=("$n")
    FILES+=("$f")
done
[ ${#NAMES[@]} -gt 0 ] || die "--models lists no model"

TMP=$(mktemp -d /tmp/nasc-dashboard-XXXXXX)
LOADPID=
cleanup() {
    if [ -n "$LOADPID" ]; then kill -TERM -- "-$LOADPID" 2>/dev/null; wait "$LOADPID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export OMP_NUM_THREADS=$THREADS

TORCH=1
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    TORCH=0
    echo "PyTorch not installed: skipped ($PY cannot import torch; Debian: apt-get install python3-torch)"
fi

# the machine
{
    echo "cpu $(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)"
    if grep -qw avx512f /proc/cpuinfo; then echo "avx512f yes"; else echo "avx512f no"; fi
    echo "cores $(nproc)"
    echo "threads $THREADS"
    echo "nasc $("$NASC" --version | cut -d' ' -f2)"
    echo "build $BUILD"
    echo "node $(node --version)"
    echo "ort $(node -p "require('$REPO/node_modules/onnxruntime-node/package.json').version")"
    if [ "$TORCH" = 1 ]; then echo "torch $("$PY" -c 'import torch; print(torch.__version__)')"; else echo "torch not installed"; fi
    echo "seconds $SECS"
    echo "load_start $(cut -d' ' -f1 /proc/loadavg)"
} >"$TMP/machine.txt" || die "cannot describe the machine"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    echo "warning: load average $load: other work on this machine distorts the figures"
fi

# run CMD... > FILE, showing FILE and failing when it fails
run() {
    local out=$1 what=$2
    shift 2
    "$@" >"$out" 2>&1 || { cat "$out" >&2; die "$what failed: $*"; }
}

for i in "${!NAMES[@]}"; do
    m=${NAMES[$i]} f=${FILES[$i]} d=$TMP/${NAMES[$i]}
    mkdir -p "$d"
    cut -d' ' -f1 /proc/loadavg >"$d/loadavg"
    echo "== $m: nasc bench ($SECS s per figure; load average $(cat "$d/loadavg"))"
    run "$d/nasc.out" "nasc bench" "$NASC" bench "$f" --threads "$THREADS" --batch "$BATCH" --seconds "$SECS"
    "$PY" "$HERE/report.py" parse-nasc "$d/nasc.out" || exit 1
    run "$d/export.out" "nasc export" "$NASC" export "$f" -o "$d/model.onnx"
    for b in 1 "$BATCH"; do
        echo "== $m: ONNX Runtime, batch $b"
        run "$d/ort_b$b.out" "ONNX Runtime" node "$REPO/bench/ort_bench.js" "$d/model.onnx" \
            --batch "$b" --threads "$THREADS" --seconds "$SECS"
    done
    if [ "$TORCH" = 1 ]; then
        echo "== $m: PyTorch (check against ONNX Runtime, memory, training, inference)"
        run "$d/in.out" "make-input" "$PY" "$HERE/torch_from_onnx.py" make-input "$d/model.onnx" "$d/in.pb"
        run "$d/ort_run.out" "ONNX Runtime (reference output)" node "$REPO/scripts/ort_run.js" "$d/model.onnx" \
            --input "$d/in.pb" --output "$d/ref.pb" --threads "$THREADS"
        run "$d/torch.out" "PyTorch" "$PY" "$HERE/torch_from_onnx.py" bench "$d/model.onnx" --threads "$THREADS" \
            --batch "$BATCH" --seconds "$SECS" --check "$d/in.pb" "$d/ref.pb" "${CL[@]}"
        sed -n 's/^check_max_abs_diff /   PyTorch vs ONNX Runtime, max |diff| /p' "$d/torch.out"
    fi
done

if [ "$LOAD" = 1 ]; then
    if command -v stress >/dev/null; then
        echo "load_what stress -c $THREADS (workers spinning on sqrt())" >>"$TMP/machine.txt"
        setsid stress -c "$THREADS" >/dev/null 2>&1 &
    else
        echo "load_what $THREADS bash busy loops (while :; do :; done)" >>"$TMP/machine.txt"
        setsid bash -c 'for i in $(seq '"$THREADS"'); do (while :; do :; done) & done; wait' >/dev/null 2>&1 &
    fi
    LOADPID=$!
    sleep 1
    [ "$(ps -o pgid= -p "$LOADPID" | tr -d ' ')" = "$LOADPID" ] || die "the load process is not in a group of its own"
    echo "load_rounds $ROUNDS" >>"$TMP/machine.txt"
    for i in "${!NAMES[@]}"; do
        m=${NAMES[$i]} f=${FILES[$i]} d=$TMP/${NAMES[$i]}
        for r in $(seq "$ROUNDS"); do
            echo "== $m: under load, round $r of $ROUNDS: nasc bench, ONNX Runtime batch $BATCH"
            run "$d/load_nasc.$r.out" "nasc bench (under load)" "$NASC" bench "$f" --threads "$THREADS" \
                --batch "$BATCH" --seconds "$SECS"
            "$PY" "$HERE/report.py" parse-nasc "$d/load_nasc.$r.out" || exit 1
            run "$d/load_ort_b64.$r.out" "ONNX Runtime (under load)" node "$REPO/bench/ort_bench.js" \
                "$d/model.onnx" --batch "$BATCH" --threads "$THREADS" --seconds "$SECS"
        done
    done
    kill -TERM -- "-$LOADPID" 2>/dev/null
    wait "$LOADPID" 2>/dev/null
    LOADPID=
fi

echo "load_end $(cut -d' ' -f1 /proc/loadavg)" >>"$TMP/machine.txt"
echo
"$PY" "$HERE/report.py" table "$TMP" "${NAMES[@]}" >"$TMP/report.md" || exit 1
cat "$TMP/report.md"
if [ -n "$OUT" ]; then
    cp "$TMP/report.md" "$OUT" || die "cannot write $OUT"
    echo "(written to $OUT)"
fi
