#!/usr/bin/env bash
# 50 sampled architectures of every search space through ONNX: `nasc sample`,
# `nasc export` (fresh weights, the default seed; seed 1 of each space also
# with --fold-bn), onnx.checker with full_check (Debian's python3-onnx), then
# `nasc run` and ONNX Runtime (onnxruntime-node) on the same input file,
# compared within rtol 1e-3 / atol 1e-5. One Python and one Node.js process
# check all of them. Small skeletons (channels=4, one cell per stage) keep it
# quick: the topology is what is being checked. A recurrent space's models
# (language models) are unrolled over 3 steps at a small size and get token
# numbers and random states as inputs. Without python3-onnx, node or
# onnxruntime-node it prints "SKIP: <reason>" and exits 77.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
SRC=${NASC_SOURCE_DIR:?}
PY=/usr/bin/python3
PER_SPACE=50
TMP=$(mktemp -d /tmp/nasc-onnx-spaces-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
die() {
    echo "FAIL: $*" >&2
    exit 1
}
. "$SRC/tests/prereq.sh"
need_python onnx numpy
need_ort

# Every registered space, as `nasc space --list` names them (a new space is
# tested without editing this file).
SPACES=$("$NASC" space --list | awk 'NR > 1 && NF > 3 && $2 ~ /^[0-9]+$/ { print $1 }')
[ "$(echo "$SPACES" | wc -w)" -ge 4 ] || die "nasc space --list named too few spaces: $SPACES"

SET_CNN=(--set channels=4 --set cells_per_stage=1)
SET_RNN=(--set channels=8 --set input=4 --set classes=40 --set steps=3)
TOKENS=40
# set_for MODEL.yaml: SET and the number of inputs for this model
set_for() {
    if grep -q '^kind: recurrent' "$1"; then
        SET=("${SET_RNN[@]}")
        rnn=1
        n_in=2
        grep -q 'inputs: \[x, h, c\]' "$1" && n_in=3
    else
        SET=("${SET_CNN[@]}")
        rnn=0
        n_in=1
    fi
}
: >"$TMP/check.list"
: >"$TMP/ort.list"
n=0
for space in $SPACES; do
    for seed in $(seq 1 $PER_SPACE); do
        m=$TMP/$space-$seed
        "$NASC" sample --space "$space" --seed "$seed" -o "$m.yaml" 2>"$m.err" ||
            die "nasc sample --space $space --seed $seed: $(cat "$m.err")"
        set_for "$m.yaml"
        "$NASC" export "$m.yaml" "${SET[@]}" -o "$m.onnx" 2>"$m.err" ||
            die "nasc export ($space seed $seed): $(cat "$m.err")"
        if [ "$rnn" = 1 ]; then
            echo "$m.onnx $m.in.pb $TOKENS" >>"$TMP/check.list"
        else
            echo "$m.onnx $m.in.pb" >>"$TMP/check.list"
        fi
        jobs=("$m")
        if [ "$seed" -eq 1 ] && [ "$rnn" = 0 ]; then
            "$NASC" export "$m.yaml" "${SET[@]}" --fold-bn --opset 17 -o "$m.fold.onnx" 2>"$m.err" ||
                die "nasc export --fold-bn ($space seed $seed): $(cat "$m.err")"
            echo "$m.fold.onnx $m.fold.in.pb" >>"$TMP/check.list"
            jobs+=("$m.fold")
        fi
        n=$((n + 1))
    done
done
"$PY" "$SRC/scripts/onnx_check.py" --list "$TMP/check.list" --batch 2 >"$TMP/check.out" 2>&1 ||
    die "onnx.checker: $(tail -3 "$TMP/check.out")"

for space in $SPACES; do
    for seed in $(seq 1 $PER_SPACE); do
        m=$TMP/$space-$seed
        set_for "$m.yaml"
        for j in "$m" $([ "$seed" -eq 1 ] && [ "$rnn" = 0 ] && echo "$m.fold"); do
            ins=(--input "$j.in.pb")
            list=$j.in.pb
            for ((k = 1; k < n_in; k++)); do
                ins+=(--input "$j.in.pb.$k")
                list=$list,$j.in.pb.$k
            done
            outs=(--output "$j.nasc.pb")
            for ((k = 1; k < n_in; k++)); do outs+=(--output "$j.nasc.$k.pb"); done
            "$NASC" run "$m.yaml" "${SET[@]}" --threads 1 "${ins[@]}" "${outs[@]}" 2>"$m.err" ||
                die "nasc run ($space seed $seed): $(cat "$m.err")"
            echo "$j.onnx $list $j.ort.pb $j.nasc.pb" >>"$TMP/ort.list"
        done
    done
done
node "$SRC/scripts/ort_run.js" --list "$TMP/ort.list" --rtol 1e-3 --atol 1e-5 >"$TMP/ort.out" 2>&1
rc=$?
grep -E "MISMATCH|^ort_run: error|element " "$TMP/ort.out" | head -20 >&2
tail -1 "$TMP/ort.out"
[ $rc -eq 0 ] || die "ONNX Runtime and nasc run disagree (see above)"
worst=$(sed -n 's/.*worst\/tolerance \([0-9.]*\).*/\1/p' "$TMP/ort.out" | sort -g | tail -1)
echo "test_onnx_spaces: $n sampled architectures ($PER_SPACE per space) pass onnx.checker and agree with ONNX Runtime (worst error/tolerance $worst)"
