#!/usr/bin/env bash
# nasc against ONNX Runtime on the same model, measured in one run.
#
#   bench/ort_bench.sh [BUILD_DIR] [SECONDS]
#
# For the baseline CNN, NASNet-A and DARTS-V2 (Fashion-MNIST size, fresh
# weights from the default seed): `nasc export` writes the ONNX model; then,
# one process at a time, for 1 and 2 threads and batch 1 and 64, nasc's
# fused oneDNN inference (`nasc bench`, the figures of its inference lines)
# and ONNX Runtime (onnxruntime-node, bench/ort_bench.js: all graph
# optimisations, intra-op threads = T) each run for SECONDS (default 3).
# Prints images/s and the ratio nasc / ONNX Runtime (above 1: nasc is
# faster), and the geometric mean of the ratios. Run it on a quiet machine.
set -u -o pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$REPO/build}
SECS=${2:-3}
NASC=$BUILD/nasc
[ -x "$NASC" ] || { echo "ort_bench: no $NASC (make build)" >&2; exit 1; }
[ -d "$REPO/node_modules/onnxruntime-node" ] || { echo "ort_bench: onnxruntime-node missing (make deps)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/nasc-ort-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    echo "warning: load average $load: other work on this machine distorts the figures"
fi
echo "nasc $("$NASC" --version | cut -d' ' -f2), onnxruntime-node $(node -p "require('$REPO/node_modules/onnxruntime-node/package.json').version"), $(nproc) cores, $SECS s per figure"
printf '%-14s %7s %5s %12s %12s %8s\n' model threads batch "nasc img/s" "ORT img/s" ratio
logsum=0
count=0
for m in baseline-cnn nasnet-a darts-v2; do
    "$NASC" export "$REPO/models/$m.yaml" -o "$TMP/$m.onnx" || exit 1
    for t in 1 2; do
        OMP_NUM_THREADS=$t "$NASC" bench "$REPO/models/$m.yaml" --threads "$t" --batch 64 --seconds "$SECS" \
            >"$TMP/nasc.out" 2>&1 || { cat "$TMP/nasc.out" >&2; exit 1; }
        for b in 1 64; do
            ours=$(sed -n "s/^inference, batch $b: \([0-9.]*\) images\/s.*/\1/p" "$TMP/nasc.out")
            theirs=$(node "$REPO/bench/ort_bench.js" "$TMP/$m.onnx" --batch "$b" --threads "$t" --seconds "$SECS" |
                sed -n 's/^images\/s //p')
            [ -n "$ours" ] && [ -n "$theirs" ] || { echo "ort_bench: no figure for $m, $t threads, batch $b" >&2; exit 1; }
            ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
            logsum=$(awk -v s="$logsum" -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.12g", s + log(a / b) }')
            count=$((count + 1))
            printf '%-14s %7d %5d %12.1f %12.1f %8s\n' "$m" "$t" "$b" "$ours" "$theirs" "$ratio"
        done
    done
done
awk -v s="$logsum" -v n="$count" 'BEGIN { printf "geometric mean of nasc / ONNX Runtime: %.2f over %d figures\n", exp(s / n), n }'
