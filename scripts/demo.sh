#!/usr/bin/env bash
# The nasc demo (what `make demo` runs).
#
#   scripts/demo.sh NASC_BIN
#
# Until search lands, the demo checks every model of the zoo, writes the
# text IR and a picture of DARTS-V2's cells, then trains the default model
# (the baseline CNN) briefly on Fashion-MNIST and reports its test accuracy.
# Everything goes to runs/demo/.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 NASC_BIN" >&2
    exit 2
fi
NASC=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODEL=models/darts-v2.yaml
OUT=runs/demo
cd "$REPO" || exit 1
if [ ! -x "$NASC" ]; then
    echo "demo: $NASC is not an executable (build first: make build)" >&2
    exit 1
fi
NASC=$(cd "$(dirname "$NASC")" && pwd)/$(basename "$NASC")

echo "== nasc demo ($("$NASC" --version))"
echo "   Search and ONNX export are not built yet; this demo checks the model"
echo "   zoo, dumps IR and trains the default model briefly on Fashion-MNIST."
echo

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_demo.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

shopt -s nullglob
models=(models/*.yaml)
if [ ${#models[@]} -eq 0 ]; then
    echo "demo: no models in models/" >&2
    exit 1
fi
echo "== checking ${#models[@]} models"
bad=0
for m in "${models[@]}"; do
    if "$NASC" check --json "$m" >"$TMP/out" 2>"$TMP/err"; then
        kind=$(sed -n 's/^{"model":.*,"dialect":"[a-z]*","kind":"\([a-z]*\)".*/\1/p' "$TMP/out")
        totals=$(sed -n 's/.*"total":{"params":\([0-9]*\),"macs":\([0-9]*\).*/\1 \2/p' "$TMP/out")
        read -r params macs <<<"$totals"
        if [ "$kind" = recurrent ]; then
            printf '  ok    %-28s %-10s %12s params %14s MACs/step\n' "$m" "$kind" "$params" "$macs"
        else
            printf '  ok    %-28s %-10s %12s params %14s MACs/image\n' "$m" "$kind" "$params" "$macs"
        fi
    else
        bad=$((bad + 1))
        echo "  FAIL  $m"
        sed 's/^/        /' "$TMP/err"
    fi
done
echo

echo "== cost report of $MODEL"
"$NASC" check "$MODEL" || exit 1
echo

mkdir -p "$OUT"
"$NASC" dump "$MODEL" -o "$OUT/darts-v2.nir" || exit 1
"$NASC" dump "$MODEL" --level prim -o "$OUT/darts-v2.prim.nir" || exit 1
"$NASC" dump "$MODEL" --format dot -o "$OUT/darts-v2-cells.dot" || exit 1
if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$OUT/darts-v2-cells.dot" -o "$OUT/darts-v2-cells.svg" || exit 1
    svg="$OUT/darts-v2-cells.svg"
else
    echo "demo: graphviz 'dot' is missing (scripts/install-deps.sh installs it); no SVG" >&2
    exit 1
fi
echo "== IR files"
echo "  arch text IR:       $REPO/$OUT/darts-v2.nir"
echo "  lowered prim IR:    $REPO/$OUT/darts-v2.prim.nir"
echo "  cells (graphviz):   $REPO/$OUT/darts-v2-cells.dot"
echo "  cells (picture):    $REPO/$svg"
echo
if [ "$bad" -ne 0 ]; then
    echo "demo: $bad model(s) failed the check" >&2
    exit 1
fi
TRAIN_MODEL=${NASC_DEMO_MODEL:-models/baseline-cnn.yaml}
EPOCHS=${NASC_DEMO_EPOCHS:-1}
echo "== training $TRAIN_MODEL for $EPOCHS epoch(s) on Fashion-MNIST (two CPU cores: a few minutes)"
rm -rf "$OUT/train"
"$NASC" train "$TRAIN_MODEL" --epochs "$EPOCHS" --warmup 0 --out "$OUT/train" | tee "$TMP/train" || exit 1
acc=$(sed -n 's/^test accuracy \([0-9.]*%\).*/\1/p' "$TMP/train")
echo
echo "== training files"
echo "  checkpoint:         $REPO/$OUT/train/checkpoint.nasc"
echo "  training curve:     $REPO/$OUT/train/curve.svg"
echo "  metrics per epoch:  $REPO/$OUT/train/metrics.csv"
echo
echo "demo: done. $TRAIN_MODEL reached $acc test accuracy after $EPOCHS epoch(s)."
