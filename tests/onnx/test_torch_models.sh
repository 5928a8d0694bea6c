#!/usr/bin/env bash
# ONNX files written by PyTorch's exporter (tests/onnx/torch/, made by
# make_models.py; models.txt lists them with their opsets and what they
# exercise): each one must pass `nasc check`, and `nasc run` (oneDNN, fused
# inference net) must give what ONNX Runtime (scripts/ort_run.js) gives on
# the same input: |nasc - ort| <= ATOL + RTOL * |ort| for every value. The
# largest error of each model is printed.
#
# Then the models nasc refuses (bad.txt): `nasc check` and `nasc run` must
# exit 1 with an error that names the node (name, index), its operator and
# why, and the bad-input corpus's unsupported operator gives the same shape
# of message through the CLI.
#
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
# Without node or node_modules/onnxruntime-node (`make deps`) the test says
# so and exits 77 (skipped).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
SRC=$NASC_SOURCE_DIR
DIR=$SRC/tests/onnx/torch
ORT=$SRC/scripts/ort_run.js
RTOL=1e-4
ATOL=1e-5
START=$SECONDS

die() {
    echo "test_torch_models: FAIL: $*" >&2
    exit 1
}
skip() {
    echo "test_torch_models: SKIPPED: $*"
    exit 77
}
[ -x "$NASC_BIN" ] || die "NASC_BIN=$NASC_BIN is not an executable"
[ -f "$DIR/models.txt" ] || die "$DIR/models.txt is missing"
command -v node >/dev/null || skip "node is not on PATH (run \`make deps\`)"
[ -d "$SRC/node_modules/onnxruntime-node" ] ||
    skip "$SRC/node_modules/onnxruntime-node is missing (run \`make deps\`)"
(cd "$SRC" && node -e "require('onnxruntime-node')") >/dev/null 2>&1 ||
    skip "node cannot load onnxruntime-node from $SRC/node_modules (run \`make deps\`)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_torch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# names NAME... from a list file (comments and blank lines skipped), first column
names() { grep -v '^#' "$1" | awk -F '\t' 'NF { print $1 }'; }

# ------------------------------------------------------------------ #
# Models nasc runs                                                    #
# ------------------------------------------------------------------ #

models=$(names "$DIR/models.txt")
[ -n "$models" ] || die "models.txt names no model"
for d in "$DIR"/*/; do
    n=$(basename "$d")
    case "$n" in bad_*) continue ;; esac
    printf '%s\n' "$models" | grep -qx "$n" || bad "$n/ is not listed in models.txt"
done

: >"$TMP/list"
for m in $models; do
    model=$DIR/$m/model.onnx
    if [ ! -f "$model" ] || [ ! -f "$DIR/$m/input_0.pb" ]; then
        bad "$m: model.onnx or input_0.pb is missing"
        continue
    fi
    if "$NASC_BIN" check "$model" >"$TMP/$m.check" 2>&1; then ok; else
        bad "$m: nasc check exited $?"
        sed 's/^/    /' "$TMP/$m.check" | head -5 >&2
        continue
    fi
    if "$NASC_BIN" run "$model" --input "$DIR/$m/input_0.pb" --output "$TMP/$m.nasc.pb" >"$TMP/$m.run" 2>&1; then
        ok
    else
        bad "$m: nasc run exited $?"
        sed 's/^/    /' "$TMP/$m.run" | head -5 >&2
        continue
    fi
    printf '%s %s %s %s\n' "$model" "$DIR/$m/input_0.pb" "$TMP/$m.ort.pb" "$TMP/$m.nasc.pb" >>"$TMP/list"
done

echo "nasc run vs ONNX Runtime (rtol $RTOL, atol $ATOL):"
if [ -s "$TMP/list" ]; then
    (cd "$SRC" && node "$ORT" --list "$TMP/list" --rtol "$RTOL" --atol "$ATOL") >"$TMP/ort.out" 2>"$TMP/ort.err"
    rc=$?
    # one line per model: "<path>/NAME/model.onnx: y: max abs error E, ... ok|MISMATCH"
    while read -r line; do
        case "$line" in
        */model.onnx:*)
            name=${line%%/model.onnx:*}
            name=${name##*/}
            printf '  %-22s %s\n' "$name" "${line#*model.onnx: }"
            case "$line" in
            *" ok") ok ;;
            *) bad "$name: nasc and ONNX Runtime disagree" ;;
            esac
            ;;
        "  element"*) echo "    $line" ;;
        esac
    done <"$TMP/ort.out"
    n_list=$(wc -l <"$TMP/list")
    tail -n 1 "$TMP/ort.out" | grep -qx "ort_run: $n_list of $n_list models agree" ||
        bad "ort_run: $(tail -n 1 "$TMP/ort.out") (exit $rc)"
    if [ "$rc" -ne 0 ] && ! grep -q 'MISMATCH' "$TMP/ort.out"; then
        bad "ort_run exited $rc"
        grep -v '^\s*$' "$TMP/ort.err" | grep -v 'W:onnxruntime' | head -5 >&2
    fi
fi

# ------------------------------------------------------------------ #
# Models nasc refuses                                                 #
# ------------------------------------------------------------------ #

# refuse VERB MODEL WANT: exit 1, one "MODEL: error: ... WANT" line
refuse() {
    local verb=$1 model=$2 want=$3
    shift 3
    "$NASC_BIN" "$verb" "$model" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ne 1 ]; then
        bad "nasc $verb $model: exit $rc, expected 1"
        sed 's/^/    /' "$TMP/err" | head -5 >&2
        return
    fi
    if grep -qF -- "$model: error: $want" "$TMP/err"; then ok; else
        bad "nasc $verb $model: expected the error '$want'"
        sed 's/^/    got: /' "$TMP/err" | head -5 >&2
    fi
}

n_bad=0
while IFS=$'\t' read -r name want; do
    case "$name" in '#'* | '') continue ;; esac
    n_bad=$((n_bad + 1))
    model=$DIR/$name/model.onnx
    refuse check "$model" "$want"
    refuse run "$model" "$want" --input "$DIR/$name/input_0.pb" --output "$TMP/never.pb"
    [ ! -e "$TMP/never.pb" ] && ok || bad "nasc run $name wrote an output"
done <"$DIR/bad.txt"
[ "$n_bad" -ge 3 ] || bad "bad.txt lists $n_bad models, expected at least 3"
refuse check "$SRC/tests/bad/onnx/unknown_op.onnx" "node 'leaky' (#0, LeakyRelu): operator 'LeakyRelu' is not supported"

echo "test_torch_models: $passed passed, $failed failed ($((SECONDS - START)) s)"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
