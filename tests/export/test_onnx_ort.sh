#!/usr/bin/env bash
# ONNX export end to end: every model of the zoo (and a small prim net that
# uses every prim op) is exported with `nasc export`, checked by ONNX's own
# checker (scripts/onnx_check.py: onnx.checker.check_model, full_check),
# run on the same random input by `nasc run` (oneDNN, fused inference net)
# and by ONNX Runtime (scripts/ort_run.js, onnxruntime-node), and the two
# outputs must agree: |nasc - ort| <= atol + rtol * |ort| for every value.
# Each model runs with fresh weights at its default size (opset 13) and with
# weights trained for two steps at a small size (batch-norm running
# statistics that are not 0/1, the data normalisation in the metadata), both
# plain and with --fold-bn (opset 17).
#
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
# More models: NASC_ONNX_EXTRA_MODELS="a.yaml b.nir c.onnx" (paths; an .onnx
# file runs only with the weights it carries). A recurrent model (a language
# model) is exported twice, as one step (tokens and state in, logits and
# state out) and unrolled over 5 steps, at a small size, with fresh and
# trained weights; its inputs are token numbers and random states.
# Prerequisites (`make deps`): python3-onnx for /usr/bin/python3, node, and
# node_modules/onnxruntime-node in the source tree; without one the test
# prints "SKIP: <reason>" and exits 77 (tests/prereq.sh).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
SRC=$NASC_SOURCE_DIR
PY=/usr/bin/python3
CHECK=$SRC/scripts/onnx_check.py
ORT=$SRC/scripts/ort_run.js
RTOL=1e-3
ATOL=1e-5
START=$SECONDS

die() {
    echo "test_onnx_ort: FAIL: $*" >&2
    exit 1
}
[ -x "$NASC_BIN" ] || die "NASC_BIN=$NASC_BIN is not an executable"
. "$SRC/tests/prereq.sh"
need_python onnx numpy
need_ort

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_onnx.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# run EXPECTED_RC DESCRIPTION CMD...: CMD's stdout to $TMP/out, stderr to
# $TMP/err; checks the exit code.
run() {
    local want=$1 desc=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        ok
        return 0
    fi
    bad "$desc: exit $rc, expected $want ($*)"
    sed 's/^/    stdout: /' "$TMP/out" | head -20 >&2
    sed 's/^/    stderr: /' "$TMP/err" | head -20 >&2
    return 1
}

contains() {
    if grep -qF -- "$2" "$1"; then ok; else
        bad "$3: expected to find '$2'"
        sed 's/^/    got: /' "$1" | head -10 >&2
    fi
}

# ------------------------------------------------------------------ #
# Fixtures: a tiny IDX data set (fast training), a prim net with     #
# every prim op                                                       #
# ------------------------------------------------------------------ #

DATA=$TMP/data
mkdir -p "$DATA"
"$PY" - "$DATA" <<'EOF' || die "cannot write the IDX fixture"
import struct, sys
import numpy as np
rng = np.random.default_rng(0)
d = sys.argv[1]
for split, n in (("train", 320), ("t10k", 32)):
    with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28))
        f.write(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes())
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(rng.integers(0, 10, n, dtype=np.uint8).tobytes())
EOF

# Two outputs (logits first, so `nasc train` can train it); shifts with a
# zero and an uneven offset, a dilated and an asymmetric conv, a depthwise
# strided conv, both count_include_pad modes, a 4-way add (Sum), mul,
# tanh/sigmoid/identity, a foldable conv+bn, a conv with two users before
# its bn whose weights the net computes (mul, then normalize: SMASH's
# generated, normalised weights), a dilated conv whose weights are a slice
# of a larger parameter, a rank-2 batch norm, softmax.
TINY=$TMP/every-op.nir
cat >"$TINY" <<'EOF'
prim {
  input %x : f32[N,1,28,28]
  param %c1.w : f32[4,1,3,3]
  param %bn1.scale : f32[4]
  param %bn1.shift : f32[4]
  param %c4.big : f32[6,5,5,5]
  param %c5.w : f32[4,4,1,3]
  param %c2.w : f32[4,1,1,1]
  param %c3.w : f32[8,8,1,1]
  param %c3.g : f32[8,8,1,1]
  param %bn2.scale : f32[8]
  param %bn2.shift : f32[8]
  param %bn3.scale : f32[8]
  param %bn3.shift : f32[8]
  param %fc.w : f32[10,8]
  param %fc.b : f32[10]
  group stem
  %c1 = conv %x, %c1.w {kernel=3x3, stride=2x2, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,14,14]
  %bn1 = batch_norm %c1, %bn1.scale, %bn1.shift {eps=1e-05} : f32[N,4,14,14]
  group cell0
  %r = relu %bn1 : f32[N,4,14,14]
  %c4.w = slice %c4.big {shape=4x4x3x3, begin=1x0x2x1} : f32[4,4,3,3]
  %c4 = conv %r, %c4.w {kernel=3x3, stride=1x1, pad=2,2,2,2, dilation=2x2, groups=1} : f32[N,4,14,14]
  %c5 = conv %c4, %c5.w {kernel=1x3, stride=1x1, pad=0,1,0,1, dilation=1x1, groups=1} : f32[N,4,14,14]
  %sh = shift %c5 {offset=1,2} : f32[N,4,14,14]
  %sz = shift %r {offset=0,0} : f32[N,4,14,14]
  %c2 = conv %sh, %c2.w {kernel=1x1, stride=2x2, pad=0,0,0,0, dilation=1x1, groups=4} : f32[N,4,7,7]
  %mp = max_pool %sz {kernel=3x3, stride=2x2, pad=1,1,1,1} : f32[N,4,7,7]
  %ap = avg_pool %r {kernel=3x3, stride=2x2, pad=1,1,1,1, count_include_pad=1} : f32[N,4,7,7]
  %aq = avg_pool %c4 {kernel=3x3, stride=2x2, pad=1,1,1,1, count_include_pad=0} : f32[N,4,7,7]
  %a2 = add %c2, %mp : f32[N,4,7,7]
  %s4 = add %c2, %mp, %ap, %aq : f32[N,4,7,7]
  %mu = mul %a2, %ap : f32[N,4,7,7]
  %cat = concat %s4, %mu {axis=1} : f32[N,8,7,7]
  %c3.wm = mul %c3.w, %c3.g : f32[8,8,1,1]
  %c3.wn = normalize %c3.wm : f32[8,8,1,1]
  %c3 = conv %cat, %c3.wn {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,8,7,7]
  %bn2 = batch_norm %c3, %bn2.scale, %bn2.shift {eps=0.001} : f32[N,8,7,7]
  %t = tanh %bn2 : f32[N,8,7,7]
  %sg = sigmoid %c3 : f32[N,8,7,7]
  %id = identity %sg : f32[N,8,7,7]
  %s = add %t, %id : f32[N,8,7,7]
  group head
  %gap = global_avg_pool %s : f32[N,8,1,1]
  %flat = flatten %gap : f32[N,8]
  %bn3 = batch_norm %flat, %bn3.scale, %bn3.shift {eps=1e-05} : f32[N,8]
  %logits = inner_product %bn3, %fc.w, %fc.b : f32[N,10]
  %prob = softmax %logits {axis=1} : f32[N,10]
  output %logits
  output %prob
}
EOF

# ------------------------------------------------------------------ #
# One comparison                                                      #
# ------------------------------------------------------------------ #

# compare TAG MODEL [EXPORT-OPTION...] -- [OPTION...]: export MODEL with
# the export options and the common ones (--weights, --set), check the
# file, make a random batch-2 input, run it with nasc and ONNX Runtime and
# compare every output. Prints the max error per output.
compare() {
    local tag=$1 model=$2
    shift 2
    local exp=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        exp+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    local d=$TMP/cmp/$tag
    mkdir -p "$d"
    run 0 "$tag: nasc export" "$NASC_BIN" export "$model" "$@" "${exp[@]}" -o "$d/model.onnx" || return 1
    run 0 "$tag: onnx.checker" "$PY" "$CHECK" "$d/model.onnx" --meta nasc.hash --make-input "$d/in.pb" \
        --batch 2 --seed 7 || return 1
    local n_out
    n_out=$(sed -n 's/.*, \([0-9][0-9]*\) outputs)$/\1/p' "$TMP/out")
    if [ -z "$n_out" ] || [ "$n_out" -lt 1 ]; then
        bad "$tag: cannot tell the number of outputs from: $(cat "$TMP/out")"
        return 1
    fi
    local nasc_out=() ort_out=() k
    for ((k = 0; k < n_out; k++)); do
        nasc_out+=(--output "$d/nasc_$k.pb")
        ort_out+=(--output "$d/ort_$k.pb" --compare "$d/nasc_$k.pb")
    done
    run 0 "$tag: nasc run" "$NASC_BIN" run "$model" "$@" --threads 1 --input "$d/in.pb" "${nasc_out[@]}" || return 1
    if run 0 "$tag: nasc and ONNX Runtime agree" node "$ORT" "$d/model.onnx" --input "$d/in.pb" "${ort_out[@]}" \
        --rtol "$RTOL" --atol "$ATOL"; then
        sed "s|^|  $tag: |" "$TMP/out"
    fi
    rm -rf "$d"
}

# compare_lm TAG MODEL [OPTION...]: a language model: export, check, make
# token numbers and random states, run with nasc and ONNX Runtime, compare
# the logits and the final state.
compare_lm() {
    local tag=$1 model=$2
    shift 2
    local d=$TMP/cmp/$tag
    mkdir -p "$d"
    run 0 "$tag: nasc export" "$NASC_BIN" export "$model" "$@" -o "$d/model.onnx" || return 1
    run 0 "$tag: onnx.checker" "$PY" "$CHECK" "$d/model.onnx" --meta nasc.hash --make-input "$d/in.pb" \
        --batch 2 --seed 7 --tokens 40 || return 1
    local n_in n_out k ins=() nasc_out=() ort_out=()
    n_in=$(sed -n 's/.*, \([0-9][0-9]*\) inputs, [0-9]* outputs)$/\1/p' "$TMP/out")
    n_out=$(sed -n 's/.*, \([0-9][0-9]*\) outputs)$/\1/p' "$TMP/out")
    if [ -z "$n_in" ] || [ -z "$n_out" ] || [ "$n_in" -lt 2 ]; then
        bad "$tag: not a language model's inputs and outputs: $(cat "$TMP/out")"
        return 1
    fi
    ins=(--input "$d/in.pb")
    for ((k = 1; k < n_in; k++)); do ins+=(--input "$d/in.pb.$k"); done
    for ((k = 0; k < n_out; k++)); do
        nasc_out+=(--output "$d/nasc_$k.pb")
        ort_out+=(--output "$d/ort_$k.pb" --compare "$d/nasc_$k.pb")
    done
    run 0 "$tag: nasc run" "$NASC_BIN" run "$model" "$@" --threads 1 "${ins[@]}" "${nasc_out[@]}" || return 1
    if run 0 "$tag: nasc and ONNX Runtime agree" node "$ORT" "$d/model.onnx" "${ins[@]}" "${ort_out[@]}" \
        --rtol "$RTOL" --atol "$ATOL"; then
        sed "s|^|  $tag: |" "$TMP/out"
    fi
    rm -rf "$d"
}

# train MODEL OUTDIR [--set ...]: two SGD steps on the tiny data set. One
# thread here and in `nasc run`: the tests share two cores with others, and
# oversubscribed OpenMP threads spin (4x slower than one thread).
train() {
    local model=$1 out=$2
    shift 2
    run 0 "$(basename "$model"): nasc train" "$NASC_BIN" train "$model" "$@" --data "$DATA" --max-steps 2 \
        --epochs 1 --val-size 16 --batch 16 --threads 1 --out "$out"
}

# check_model MODEL: the whole set of comparisons for one model file.
check_model() {
    local model=$1 name
    name=$(basename "$model")
    name=${name%.*}
    case $model in
    *.onnx)
        compare "$name.own" "$model" --
        return
        ;;
    esac
    # (read whole, then grep: `nasc check | grep -q` under pipefail fails when
    # grep exits first and nasc dies of SIGPIPE)
    local report
    report=$("$NASC_BIN" check "$model" 2>/dev/null)
    if grep -q '^kind *recurrent' <<<"$report"; then
        # small: 40 classes (the token numbers above), 12 inputs, 16 units
        local small=(--set classes=40 --set input=12 --set channels=16)
        compare_lm "$name.step" "$model" "${small[@]}" --set steps=1
        compare_lm "$name.unrolled" "$model" "${small[@]}" --set steps=5
        local ckpt=$TMP/train/$name
        printf 'the quick brown fox jumps over the lazy dog %.0s' $(seq 60) | tr 'a-z ' '\001-\033' >"$TMP/text"
        run 0 "$name: nasc train (language model)" "$NASC_BIN" train "$model" "${small[@]}" --data "$TMP/text" \
            --max-steps 2 --epochs 1 --batch 4 --bptt 5 --threads 1 --out "$ckpt" || return
        compare_lm "$name.trained" "$model" "${small[@]}" --set steps=5 --weights "$ckpt/checkpoint.nasc"
        rm -rf "$ckpt"
        return
    fi
    # fresh weights (the default seed) at the model's own size
    compare "$name.fresh" "$model" --
    # trained weights at a small size, plain and folded
    local small=()
    grep -q '^kind *prim' <<<"$report" || small=(--set channels=8)
    local ckpt=$TMP/train/$name
    train "$model" "$ckpt" "${small[@]}" || return
    compare "$name.trained" "$model" -- --weights "$ckpt/checkpoint.nasc" "${small[@]}"
    compare "$name.trained.fold-bn" "$model" --fold-bn --opset 17 -- --weights "$ckpt/checkpoint.nasc" "${small[@]}"
    rm -rf "$ckpt"
}

# ------------------------------------------------------------------ #
# Command line of export and run                                      #
# ------------------------------------------------------------------ #

BASE=$SRC/models/baseline-cnn.yaml
run 0 "export --help" "$NASC_BIN" export --help && contains "$TMP/out" "usage: nasc export" "export --help"
run 0 "help run" "$NASC_BIN" help run && contains "$TMP/out" "usage: nasc run" "help run"
run 2 "export without -o" "$NASC_BIN" export "$BASE"
run 2 "export without a model" "$NASC_BIN" export -o "$TMP/x.onnx"
run 2 "export --opset 12" "$NASC_BIN" export "$BASE" --opset 12 -o "$TMP/x.onnx" &&
    contains "$TMP/err" "--opset wants an integer in [13, 17]" "opset message"
run 2 "export --fold-bn=1" "$NASC_BIN" export "$BASE" --fold-bn=1 -o "$TMP/x.onnx"
run 2 "run without --input" "$NASC_BIN" run "$BASE" --output "$TMP/y.pb"
run 2 "run without --output" "$NASC_BIN" run "$BASE" --input "$TMP/x.pb"
run 1 "export of a missing model" "$NASC_BIN" export "$TMP/none.yaml" -o "$TMP/x.onnx"
run 1 "export with a missing checkpoint" "$NASC_BIN" export "$BASE" --weights "$TMP/none.nasc" -o "$TMP/x.onnx" &&
    contains "$TMP/err" "none.nasc" "missing checkpoint message"
run 1 "export into a missing directory" "$NASC_BIN" export "$BASE" -o "$TMP/no/such/dir/x.onnx" &&
    contains "$TMP/err" "x.onnx.tmp" "unwritable output message"
"$PY" - "$TMP" <<'EOF' || die "cannot write the input fixtures"
import sys
import numpy as np
from onnx import numpy_helper, TensorProto, helper
d = sys.argv[1]
def save(name, t):
    with open(f"{d}/{name}", "wb") as f:
        f.write(t.SerializeToString())
save("wrong-shape.pb", numpy_helper.from_array(np.zeros((2, 3, 28, 28), np.float32), "x"))
save("int64.pb", numpy_helper.from_array(np.zeros((2, 1, 28, 28), np.int64), "x"))
save("good.pb", numpy_helper.from_array(np.zeros((3, 1, 28, 28), np.float32), "x"))
with open(f"{d}/garbage.pb", "wb") as f:
    f.write(b"\xff" * 64)
EOF
run 1 "run on an input of the wrong shape" "$NASC_BIN" run "$BASE" --input "$TMP/wrong-shape.pb" --output "$TMP/y.pb" &&
    contains "$TMP/err" "wrong-shape.pb: error: the tensor has shape [2,3,28,28]; input 'x' of the model wants [N,1,28,28]" \
        "shape mismatch message"
run 1 "run on an int64 tensor" "$NASC_BIN" run "$BASE" --input "$TMP/int64.pb" --output "$TMP/y.pb" &&
    contains "$TMP/err" "int64.pb: error: the tensor is of data type INT64" "data type message"
run 1 "run on garbage" "$NASC_BIN" run "$BASE" --input "$TMP/garbage.pb" --output "$TMP/y.pb" &&
    contains "$TMP/err" "garbage.pb: error: not an ONNX TensorProto" "garbage message"
run 1 "run with two inputs for a one-input net" "$NASC_BIN" run "$BASE" --input "$TMP/good.pb" --input "$TMP/good.pb" \
    --output "$TMP/y.pb" && contains "$TMP/err" "the model has 1 input, 2 --input given" "input count message"
run 1 "run with two outputs for a one-output net" "$NASC_BIN" run "$BASE" --input "$TMP/good.pb" --output "$TMP/y.pb" \
    --output "$TMP/z.pb" && contains "$TMP/err" "the model has 1 output, 2 --output given" "output count message"
run 0 "run on a batch of 3" "$NASC_BIN" run "$BASE" --input "$TMP/good.pb" --output "$TMP/y.pb" &&
    contains "$TMP/out" "logits [3,10]" "run output shape"

# ------------------------------------------------------------------ #
# The models                                                          #
# ------------------------------------------------------------------ #

echo "max errors, nasc vs ONNX Runtime (rtol $RTOL, atol $ATOL):"
n_models=0
check_model "$TINY"
# conv-dilation-groups.yaml: conv with a dilation per axis and channel groups
for m in "$SRC"/models/*.yaml "$SRC"/tests/export/conv-dilation-groups.yaml ${NASC_ONNX_EXTRA_MODELS:-}; do
    if [ ! -f "$m" ]; then
        bad "model $m does not exist"
        continue
    fi
    n_models=$((n_models + 1))
    check_model "$m"
done
[ "$n_models" -gt 0 ] || bad "no models found in $SRC/models"

echo "test_onnx_ort: $passed passed, $failed failed ($((SECONDS - START)) s)"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
