#!/usr/bin/env bash
# Character language models on the command line: `nasc train` of a
# recurrent model on a text file (bytes, not necessarily UTF-8), resume,
# `nasc generate` (the same text for the same seed), and the bad inputs:
# an empty and a one-byte text, a missing file, the image recipe, --bptt
# for an image model, --set steps out of range or for an image model, a
# language model given to the image verbs and an image model given a text.
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
if [ ! -x "$NASC_BIN" ]; then
    echo "test_lm: FAIL: NASC_BIN=$NASC_BIN is not an executable" >&2
    exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_lm.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
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
    sed 's/^/    stderr: /' "$TMP/err" | head -20 >&2
    return 1
}
contains() {
    if grep -qF -- "$2" "$1"; then ok; else
        bad "$3: expected to find '$2'"
        sed 's/^/    got: /' "$1" | head -10 >&2
    fi
}

LSTM=$NASC_SOURCE_DIR/models/lstm.yaml
BASE=$NASC_SOURCE_DIR/models/baseline-cnn.yaml
SMALL=(--set input=8 --set channels=16)
# a text with bytes of every value, Latin-1 and broken UTF-8 among them
/usr/bin/python3 -c '
import random, sys
r = random.Random(3)
words = ["the ", "cat ", "sat ", "on ", "a ", "mat ", "caf\xe9 ", "\xff\xfe "]
sys.stdout.buffer.write(("".join(r.choice(words) for _ in range(3000))).encode("latin-1") + bytes(range(256)))
' >"$TMP/text.bin" || { echo "test_lm: FAIL: cannot write the text fixture" >&2; exit 1; }

# training, resume, the report
run 0 "train a small LSTM" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" --epochs 1 --batch 4 \
    --bptt 10 --threads 1 --out "$TMP/run" &&
    { contains "$TMP/out" "test " "test bpc line"; contains "$TMP/out" "bits per character" "bpc unit"; }
grep -q '^epoch,train_bpc,train_acc,val_bpc,val_acc,chars_per_s$' "$TMP/run/metrics.csv" && ok ||
    bad "metrics.csv header: $(head -1 "$TMP/run/metrics.csv")"
[ "$(wc -l <"$TMP/run/metrics.csv")" -eq 2 ] && ok || bad "metrics.csv has $(wc -l <"$TMP/run/metrics.csv") lines, not 2"
run 0 "resume to 2 epochs" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" --epochs 2 --batch 4 \
    --bptt 10 --threads 1 --out "$TMP/run" --resume && contains "$TMP/err" "resuming" "resume message" &&
    contains "$TMP/out" "epochs 2 (1 this run)" "resumed epochs"
run 1 "train again without --resume" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" --epochs 1 \
    --out "$TMP/run" && contains "$TMP/err" "a checkpoint is already there" "overwrite message"

# dropout: a net with masks trains, validated without them
run 0 "train with --dropout 0.2" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" --epochs 1 --batch 4 \
    --bptt 10 --dropout 0.2 --threads 1 --out "$TMP/drop" && contains "$TMP/out" "validation " "dropout run report"
run 1 "--dropout on an image model" "$NASC_BIN" train "$BASE" --dropout 0.2 --out "$TMP/e10" &&
    contains "$TMP/err" "--dropout (CNN cells have --drop-path) is for recurrent models" "dropout on cnn message"
run 2 "--dropout 1" "$NASC_BIN" train "$LSTM" --dropout 1

# nasc bench times a language model: token numbers and a label per position
run 0 "bench of a language model" "$NASC_BIN" bench "$LSTM" "${SMALL[@]}" --set steps=5 --batch 4 --seconds 0.1 \
    --threads 1 && contains "$TMP/out" "training, batch 4" "bench training line"

# a long unroll: the steps are stacked in parts of 64
run 0 "train with --bptt 130" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" --epochs 1 --batch 2 \
    --bptt 130 --max-steps 3 --threads 1 --out "$TMP/long" && contains "$TMP/err" "unrolled over 130 characters" "bptt 130"

# generation: reproducible by seed, prompt echoed, the byte count
gen=("$NASC_BIN" generate "$LSTM" "${SMALL[@]}" --weights "$TMP/run/checkpoint.nasc" --prompt "the " -n 40 \
    --threads 1)
run 0 "generate" "${gen[@]}" --seed 4 && cp "$TMP/out" "$TMP/g1"
run 0 "generate again" "${gen[@]}" --seed 4 && { cmp -s "$TMP/out" "$TMP/g1" && ok || bad "the same seed gave other text"; }
[ "$(head -c 4 "$TMP/g1")" = "the " ] && ok || bad "generate does not print the prompt first"
[ "$(wc -c <"$TMP/g1")" -eq 45 ] && ok || bad "generate printed $(wc -c <"$TMP/g1") bytes, not 4 + 40 + newline"
run 0 "generate greedy" "${gen[@]}" --temperature 0
run 2 "generate without --weights" "$NASC_BIN" generate "$LSTM" "${SMALL[@]}"
run 2 "generate with an empty prompt" "${gen[@]}" --prompt ""
run 2 "generate with --set steps" "${gen[@]}" --set steps=3
run 1 "generate with another size's weights" "$NASC_BIN" generate "$LSTM" --weights "$TMP/run/checkpoint.nasc" &&
    contains "$TMP/err" "checkpoint.nasc" "weights mismatch names the file"
run 1 "generate from an image model" "$NASC_BIN" generate "$BASE" --weights "$TMP/run/checkpoint.nasc" &&
    contains "$TMP/err" "not a recurrent model" "generate from an image model message"

# bad texts
: >"$TMP/empty.txt"
printf 'x' >"$TMP/one.txt"
run 1 "train on an empty text" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/empty.txt" --out "$TMP/e1" &&
    contains "$TMP/err" "empty.txt: error: the text has 0 bytes" "empty text message"
run 1 "train on a one-byte text" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/one.txt" --out "$TMP/e2" &&
    contains "$TMP/err" "one.txt: error: the text has 1 byte" "one-byte text message"
run 1 "train on a missing text" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/none.txt" --out "$TMP/e3" &&
    contains "$TMP/err" "none.txt: error: cannot open" "missing text message"
head -c 300 "$TMP/text.bin" >"$TMP/short.txt"
run 1 "train on a text shorter than a batch" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/short.txt" \
    --batch 64 --out "$TMP/e4" && contains "$TMP/err" "fewer than 64 streams" "short text message"
run 1 "a vocabulary smaller than the bytes" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --set classes=128 \
    --data "$TMP/text.bin" --batch 4 --out "$TMP/e5" && contains "$TMP/err" "is not one of the model's 128 classes" \
    "vocabulary message"

# options that do not fit the model
run 1 "the image recipe on a language model" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" \
    --cutout 8 --out "$TMP/e6" && contains "$TMP/err" "without the image recipe" "recipe message"
run 1 "--val-size on a language model" "$NASC_BIN" train "$LSTM" "${SMALL[@]}" --data "$TMP/text.bin" \
    --val-size 10 --out "$TMP/e7" && contains "$TMP/err" "split 90/5/5" "val-size message"
run 1 "--bptt on an image model" "$NASC_BIN" train "$BASE" --bptt 10 --out "$TMP/e8" &&
    contains "$TMP/err" "--bptt is for recurrent models" "bptt message"
run 1 "--set steps on an image model" "$NASC_BIN" dump "$BASE" --level prim --set steps=3 &&
    contains "$TMP/err" "not a recurrent model" "steps on cnn message"
run 1 "--set steps=0" "$NASC_BIN" dump "$LSTM" --level prim --set steps=0 &&
    contains "$TMP/err" "T in 1..1024; got '0'" "steps range message"
run 0 "--set steps=3" "$NASC_BIN" dump "$LSTM" --level prim --set steps=3 &&
    contains "$TMP/out" "input %x : f32[N,3]" "three steps"
run 2 "--bptt 0" "$NASC_BIN" train "$LSTM" --bptt 0
run 1 "an image model on a text" "$NASC_BIN" train "$BASE" --data "$TMP/text.bin" --out "$TMP/e9" &&
    contains "$TMP/err" "text.bin" "image model on text names the file"
run 0 "eval of a language model" "$NASC_BIN" eval "$LSTM" "${SMALL[@]}" --weights "$TMP/run/checkpoint.nasc" \
    --data "$TMP/text.bin" --batch 4 && contains "$TMP/out" "test " "eval bpc" && contains "$TMP/out" "bits per character" "eval unit"
run 1 "eval of a language model on images" "$NASC_BIN" eval "$LSTM" "${SMALL[@]}" --weights "$TMP/run/checkpoint.nasc" \
    --data "$TMP" && contains "$TMP/err" "cannot read" "directory as a text"
run 1 "--set params on an image model" "$NASC_BIN" check "$BASE" --set params=1000 &&
    contains "$TMP/err" "sizes a recurrent net" "params on cnn message"

echo "test_lm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
