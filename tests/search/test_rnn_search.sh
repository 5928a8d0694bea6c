#!/usr/bin/env bash
# nasc search over the recurrent spaces (enas-rnn, nasrl-rnn) end to end on
# a small text: every per-child strategy runs, the children are character
# language models scored in bits per character, the run directory holds
# the journal, state, pictures and a one-step ONNX model; a run killed with
# SIGKILL after its first trials and continued with --resume ends with the
# uninterrupted run's trials; ENAS's one-shot search on enas-rnn runs end to
# end, resumes after SIGKILL to the same candidates, and stops with a clear
# error on a diverging loss keeping its last checkpoint; --bptt on a CNN
# space and bad spaces are clear errors.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
SRC=${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}
TMP=$(mktemp -d /tmp/nasc-rnn-search-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# 60 kB of English-like text (bytes; the split is 90/5/5)
/usr/bin/python3 -c '
import random, sys
r = random.Random(7)
w = "the of and to in is it that was he for on are as with his they at be this have from or one had by".split()
sys.stdout.write(" ".join(r.choice(w) for _ in range(14000)))
' >"$TMP/text.txt" || { echo "FAIL: cannot write the text" >&2; exit 1; }
ARGS=(--data "$TMP/text.txt" --train-subset 20000 --batch 8 --bptt 10 --final-epochs 1 --threads 1 --seed 3
      --set channels=16 --set input=8)
strip() { sed -e 's/"seconds":[^,]*,//' -e 's/,"check":"[0-9a-f]*"//' "$1"; }

for space in enas-rnn nasrl-rnn; do
    size=(--blocks 4)
    for strategy in random reinforce evolution; do
        out=$TMP/$space-$strategy
        "$NASC" search --space $space "${size[@]}" --strategy $strategy --budget 4 "${ARGS[@]}" --out "$out" \
            >"$out.out" 2>"$out.err"
        rc=$?
        check "$space $strategy exits 0 (rc $rc: $(tail -3 "$out.err"))" '[ $rc -eq 0 ]'
        check "$space $strategy: 4 trials in the journal" '[ "$(wc -l <"$out/journal.jsonl")" -eq 5 ]'
        check "$space $strategy: trials report bits per character" \
            '[ "$(grep -c "^trial [1-4]/4  [a-z]* *reward [0-9.]* bpc" "$out.out")" -eq 4 ]'
        check "$space $strategy: the summary gives test bits per character" \
            'grep -q "^final training (1 epoch): validation [0-9.]*, test [0-9.]* bits per character" "$out.out"'
        for f in config.txt strategy.nasc search.svg best.yaml best.nir best.nasc best.onnx; do
            check "$space $strategy wrote $f" '[ -s "$out/$f" ]'
        done
        check "$space $strategy: bptt in config.txt" 'grep -q "^bptt = 10$" "$out/config.txt"'
        check "$space $strategy: the best is a recurrent model" 'grep -q "^kind: recurrent" "$out/best.yaml"'
    done
done
# the best model is a language model nasc can evaluate and sample from
best=$TMP/enas-rnn-random
"$NASC" eval "$best/best.yaml" --weights "$best/best.nasc" --data "$TMP/text.txt" --batch 8 >"$TMP/eval.out" 2>&1
check "eval of the best model ($(cat "$TMP/eval.out"))" 'grep -q "^test [0-9.]* bits per character" "$TMP/eval.out"'
"$NASC" generate "$best/best.yaml" --weights "$best/best.nasc" -n 20 >"$TMP/gen.out" 2>&1
check "generate from the best model" '[ "$(wc -c <"$TMP/gen.out")" -eq 25 ]'
check "best.onnx is a one-step model" \
    '/usr/bin/python3 "$SRC/scripts/onnx_check.py" "$best/best.onnx" | grep -q "2 inputs, 2 outputs"'

# SIGKILL after the second trial, then --resume: the uninterrupted run's trials
ref=$TMP/nasrl-rnn-evolution
"$NASC" search --space nasrl-rnn --blocks 4 --strategy evolution --budget 4 "${ARGS[@]}" --out "$TMP/k" \
    >"$TMP/k.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    [ -f "$TMP/k/journal.jsonl" ] && [ "$(wc -l <"$TMP/k/journal.jsonl")" -ge 3 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
n_killed=$(wc -l <"$TMP/k/journal.jsonl")
check "the kill came before the search ended ($n_killed journal lines)" '[ "$n_killed" -lt 5 ] && [ ! -e "$TMP/k/best.nasc" ]'
"$NASC" search --space nasrl-rnn --blocks 4 --strategy evolution --budget 4 "${ARGS[@]}" --out "$TMP/k" --resume \
    >"$TMP/k2.out" 2>"$TMP/k2.err"
rc=$?
check "resume after SIGKILL exits 0 (rc $rc: $(tail -3 "$TMP/k2.err"))" '[ $rc -eq 0 ]'
check "resume after SIGKILL: the uninterrupted run's trials" \
    '[ "$(strip "$TMP/k/journal.jsonl")" = "$(strip "$ref/journal.jsonl")" ]'
check "resume after SIGKILL: the same best architecture" 'cmp -s "$TMP/k/best.yaml" "$ref/best.yaml"'

# ENAS on enas-rnn: shared weights keyed by (node, parent, activation), the
# recurrent controller, candidates scored on validation windows
EARGS=(--space enas-rnn --blocks 4 --strategy enas --ctl-steps 2 --ctl-aggregate 2 --budget 3 "${ARGS[@]}")
"$NASC" search "${EARGS[@]}" --search-epochs 2 --out "$TMP/enas" >"$TMP/enas.out" 2>"$TMP/enas.err"
rc=$?
check "enas on enas-rnn exits 0 (rc $rc: $(tail -3 "$TMP/enas.err"))" '[ $rc -eq 0 ]'
check "enas-rnn: a header and 3 candidates" '[ "$(wc -l <"$TMP/enas/journal.jsonl")" -eq 4 ]'
check "enas-rnn: shared training in bits per character, an epoch a line" \
    '[ "$(grep -c "^epoch [12]/2  shared training: loss [0-9.]* bpc" "$TMP/enas.out")" -eq 2 ]'
check "enas-rnn: controller rewards in bits per character" \
    '[ "$(grep -c "^epoch [12]/2  controller: mean reward [0-9.]* bpc over 4 children" "$TMP/enas.out")" -eq 2 ]'
check "enas-rnn: the best candidate in bits per character" \
    'grep -q "^best candidate #[0-2]: [0-9.]* bits per character on a validation window" "$TMP/enas.out"'
check "enas-rnn: the summary gives test bits per character" \
    'grep -q "^final training (1 epoch): validation [0-9.]*, test [0-9.]* bits per character" "$TMP/enas.out"'
for f in oneshot.nasc best.yaml best.nasc best.onnx search.svg; do
    check "enas-rnn wrote $f" '[ -s "$TMP/enas/$f" ]'
done
check "enas-rnn: the reference's controller settings in config.txt" \
    'grep -q "^lstm_size = 100$" "$TMP/enas/config.txt" && grep -q "^tanh_constant = 2.5$" "$TMP/enas/config.txt" &&
     grep -q "^temperature = 5$" "$TMP/enas/config.txt"'
check "enas-rnn: the best is a recurrent model" 'grep -q "^kind: recurrent" "$TMP/enas/best.yaml"'
check "enas-rnn: the store keys node weights by parent and activation" \
    '[ "$(grep -acE "cell\.n[1-3]g_in\.n[0-2]\.(tanh|relu|identity|sigmoid)\.w" "$TMP/enas/oneshot.nasc")" -gt 0 ]'

# SIGKILL once the first epoch's state is saved, then --resume
"$NASC" search "${EARGS[@]}" --search-epochs 2 --out "$TMP/ek" >"$TMP/ek.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    [ -s "$TMP/ek/oneshot.nasc" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
check "the killed enas run left its state and no candidates" \
    '[ -s "$TMP/ek/oneshot.nasc" ] && [ "$(wc -l <"$TMP/ek/journal.jsonl")" -le 1 ]'
"$NASC" search "${EARGS[@]}" --search-epochs 2 --out "$TMP/ek" --resume >"$TMP/ek2.out" 2>"$TMP/ek2.err"
rc=$?
check "enas resume after SIGKILL exits 0 (rc $rc: $(tail -3 "$TMP/ek2.err"))" '[ $rc -eq 0 ]'
check "enas resume after SIGKILL: the uninterrupted run's candidates and rewards" \
    '[ "$(strip "$TMP/ek/journal.jsonl")" = "$(strip "$TMP/enas/journal.jsonl")" ]'
check "enas resume after SIGKILL: the same best architecture" 'cmp -s "$TMP/ek/best.yaml" "$TMP/enas/best.yaml"'

# a loss that diverges in epoch 2 (the learning rate raised to 100 after a
# good first epoch): a clear error, exit 1, epoch 1's state kept as it was
"$NASC" search "${EARGS[@]}" --search-epochs 1 --out "$TMP/n1" >/dev/null 2>&1
mkdir -p "$TMP/nan"
sed -e 's/^search_epochs = 1$/search_epochs = 2/' -e 's/^lr = .*/lr = 100/' "$TMP/n1/config.txt" >"$TMP/nan/config.txt"
cp "$TMP/n1/oneshot.nasc" "$TMP/nan/"
head -n 1 "$TMP/n1/journal.jsonl" >"$TMP/nan/journal.jsonl"
before=$(md5sum <"$TMP/nan/oneshot.nasc")
"$NASC" search "${EARGS[@]}" --search-epochs 2 --lr 100 --out "$TMP/nan" --resume >"$TMP/nan.out" 2>"$TMP/nan.err"
rc=$?
check "a diverging loss: exit 1 (rc $rc: $(tail -2 "$TMP/nan.err"))" '[ $rc -eq 1 ]'
check "a diverging loss is named, at epoch 2" 'grep -q "diverged: the loss is .* at epoch 2" "$TMP/nan.err"'
check "a diverging loss keeps the last good state" '[ "$(md5sum <"$TMP/nan/oneshot.nasc")" = "$before" ]'
head -c 2000 "$TMP/n1/oneshot.nasc" >"$TMP/nan/oneshot.nasc"
"$NASC" search "${EARGS[@]}" --search-epochs 2 --lr 100 --out "$TMP/nan" --resume >/dev/null 2>"$TMP/trunc.err"
rc=$?
check "a truncated enas-rnn state: exit 1, named (rc $rc)" '[ $rc -eq 1 ] && grep -q "oneshot.nasc" "$TMP/trunc.err"'

# clear errors
"$NASC" search --space nasrl-rnn --strategy enas --out "$TMP/e1" "${ARGS[@]}" >"$TMP/e1.out" 2>&1
rc=$?
check "enas on nasrl-rnn is an error naming enas-rnn (rc $rc)" '[ $rc -eq 1 ] && grep -q "enas-rnn" "$TMP/e1.out"'
"$NASC" search --space nasrl --strategy random --budget 1 --bptt 10 --out "$TMP/e2" >"$TMP/e2.out" 2>&1
rc=$?
check "--bptt on a CNN space is an error (rc $rc)" '[ $rc -eq 1 ] && grep -q "recurrent spaces" "$TMP/e2.out"'
"$NASC" search --space nasrl-rnn --blocks 3 --strategy random --budget 1 --out "$TMP/e3" >"$TMP/e3.out" 2>&1
rc=$?
check "base 3 is an error (rc $rc)" '[ $rc -eq 1 ] && grep -q "2, 4 or 8" "$TMP/e3.out"'
"$NASC" search --space enas-rnn --strategy random --budget 1 --data "$TMP/none.txt" --out "$TMP/e4" >"$TMP/e4.out" 2>&1
rc=$?
check "a missing text is an error (rc $rc)" '[ $rc -eq 1 ] && grep -q "none.txt: error: cannot open" "$TMP/e4.out"'

echo "test_rnn_search: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
