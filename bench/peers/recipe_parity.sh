#!/usr/bin/env bash
# Recipe parity: the same architecture trained with the same recipe by nasc
# and by PyTorch, and both test accuracies.
#
#   bench/peers/recipe_parity.sh [BUILD_DIR] [--model FILE] [--epochs 1,3]
#                                [--seeds 1,2,3] [--threads T] [--no-torch]
#                                [--out FILE]
#
# For each epoch count and seed, on Fashion-MNIST (all 60,000 training
# images, no validation split, the 10,000 test images):
#   1. nasc: `nasc train MODEL --epochs E --seed S --warmup 0 --val-size 0
#      --lr 0.05 --threads T` (SGD, Nesterov momentum 0.9, weight decay
#      3e-4, batch 64, cosine per step to 0).
#   2. PyTorch (Debian's python3-torch; --no-torch or its absence skips it):
#      bench/peers/recipe_parity.py on `nasc export MODEL`: an nn.Module of
#      the same graph (torch_from_onnx.py) with PyTorch's own initialisation,
#      the same recipe, data normalisation and batch order rules.
# Then a Markdown table: per run both test accuracies and their difference,
# and per epoch count the means. MODEL defaults to models/darts-v2.yaml,
# epochs to 1, seeds to 1, T to 2. PyTorch runs the ONNX graph op by op and
# takes about 12x nasc's time (25 minutes an epoch for DARTS-V2 on 2 cores).
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

usage() {
    echo "usage:"
    sed -n '5,7s/^#//p' "$0"
    exit "${1:-2}"
}
die() {
    echo "recipe_parity: error: $*" >&2
    exit 1
}

BUILD=$REPO/build
MODEL=$REPO/models/darts-v2.yaml
EPOCHS=1
SEEDS=1
THREADS=2
TORCH=1
OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --model) [ $# -ge 2 ] || usage; MODEL=$2; shift 2 ;;
    --epochs) [ $# -ge 2 ] || usage; EPOCHS=$2; shift 2 ;;
    --seeds) [ $# -ge 2 ] || usage; SEEDS=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || usage; THREADS=$2; shift 2 ;;
    --no-torch) TORCH=0; shift ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) usage ;;
    *) BUILD=$(cd "$1" && pwd) || die "no build directory $1"; shift ;;
    esac
done
NASC=$BUILD/nasc
[ -x "$NASC" ] || die "$NASC is not built (make build)"
[ -f "$MODEL" ] || die "no model $MODEL"
PY=/usr/bin/python3
if [ $TORCH = 1 ] && ! "$PY" -c 'import torch, onnx, numpy' 2>/dev/null; then
    echo "recipe_parity: python3-torch, python3-onnx or python3-numpy is missing: nasc only" >&2
    TORCH=0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$NASC" export "$MODEL" -o "$TMP/model.onnx" >/dev/null || die "nasc export failed"
ROWS=$TMP/rows
: >"$ROWS"
for e in ${EPOCHS//,/ }; do
    for s in ${SEEDS//,/ }; do
        echo "== $(basename "$MODEL"): $e epoch(s), seed $s" >&2
        "$NASC" train "$MODEL" --epochs "$e" --seed "$s" --warmup 0 --val-size 0 --lr 0.05 --threads "$THREADS" \
            --out "$TMP/nasc-$e-$s" >"$TMP/nasc.out" 2>"$TMP/nasc.err" || { cat "$TMP/nasc.err" >&2; die "nasc train failed"; }
        na=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$TMP/nasc.out")
        ns=$(sed -n 's/^epochs [0-9]* ([0-9]* this run), \([0-9.]*\) s.*/\1/p' "$TMP/nasc.out")
        [ -n "$na" ] || die "no test accuracy in nasc's output"
        echo "nasc: $na% in $ns s" >&2
        ta=-
        ts=-
        if [ $TORCH = 1 ]; then
            "$PY" "$HERE/recipe_parity.py" "$TMP/model.onnx" --epochs "$e" --seed "$s" --threads "$THREADS" \
                >"$TMP/torch.out" 2>"$TMP/torch.err" || { cat "$TMP/torch.err" >&2; die "the PyTorch side failed"; }
            ta=$(sed -n 's/^test_acc //p' "$TMP/torch.out")
            ts=$(sed -n 's/^seconds //p' "$TMP/torch.out")
            echo "PyTorch: $ta% in $ts s" >&2
        fi
        echo "$e $s $na $ns $ta $ts" >>"$ROWS"
    done
done

report() {
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, $THREADS threads"
    echo "model: $MODEL; recipe: SGD lr 0.05, Nesterov 0.9, weight decay 3e-4, batch 64, cosine per step, no warm-up"
    echo
    echo "| epochs | seed | nasc test acc | PyTorch test acc | nasc - PyTorch | nasc s | PyTorch s |"
    echo "|---|---|---|---|---|---|---|"
    awk '{ d = ($5 == "-") ? "-" : sprintf("%+.2f", $3 - $5);
           printf "| %s | %s | %.2f%% | %s | %s | %s | %s |\n", $1, $2, $3, ($5 == "-") ? "-" : $5 "%", d, $4, $6 }' "$ROWS"
    awk '{ n[$1]++; a[$1] += $3; if ($5 != "-") { m[$1]++; b[$1] += $5 } }
         END { for (e in n) { printf "mean over %d seed(s) after %s epoch(s): nasc %.2f%%", n[e], e, a[e] / n[e];
                              if (m[e]) printf ", PyTorch %.2f%%, difference %+.2f", b[e] / m[e], a[e] / n[e] - b[e] / m[e];
                              printf "\n" } }' "$ROWS"
}
report
[ -z "$OUT" ] || report >"$OUT"
