#!/usr/bin/env bash
# The nasc demo (what `make demo` runs).
#
#   scripts/demo.sh NASC_BIN
#
# The demo checks every model of the zoo and writes the text IR and a
# picture of DARTS-V2's cells, then runs a short architecture search on
# Fashion-MNIST (regularized evolution over ENAS micro cells), trains the
# best architecture briefly, exports it to ONNX, checks the export with
# ONNX's checker and prints where everything is. Everything goes to
# runs/demo/.
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
echo "   Checks the model zoo, dumps IR, then searches an architecture on"
echo "   Fashion-MNIST, trains the best one briefly and exports it to ONNX."
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
SPACE=${NASC_DEMO_SPACE:-enas-micro}
STRATEGY=${NASC_DEMO_STRATEGY:-evolution}
BUDGET=${NASC_DEMO_BUDGET:-10}
FINAL=${NASC_DEMO_FINAL_EPOCHS:-1}
echo "== searching $SPACE with $STRATEGY: $BUDGET trials of one epoch on 2,000 images,"
echo "   then the best trained for $FINAL epoch(s) on the training split (two CPU cores: a few minutes)"
rm -rf "$OUT/search"
"$NASC" search --space "$SPACE" --strategy "$STRATEGY" --budget "$BUDGET" --train-subset 2000 \
    --val-size 5000 --final-epochs "$FINAL" --set cells_per_stage=1 --out "$OUT/search" | tee "$TMP/search" || exit 1
echo
if [ -x /usr/bin/python3 ] && /usr/bin/python3 scripts/onnx_check.py "$OUT/search/best.onnx" >"$TMP/check" 2>&1; then
    echo "== onnx.checker (full_check): $(tail -1 "$TMP/check")"
else
    echo "== onnx.checker could not check $OUT/search/best.onnx:" >&2
    cat "$TMP/check" >&2
    exit 1
fi
acc=$(sed -n 's/^final training.*test accuracy \([0-9.]*%\).*/\1/p' "$TMP/search")
echo
echo "demo: done. The best $SPACE architecture reached $acc test accuracy; its ONNX model is"
echo "  $REPO/$OUT/search/best.onnx"
echo "pictures: $REPO/$OUT/search/search.svg and $REPO/$OUT/search/best-cells.svg"
