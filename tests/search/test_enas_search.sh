#!/usr/bin/env bash
# nasc search --strategy enas end to end on a tiny configuration: a
# reference run writes the one-shot state, the candidates and the final
# outputs; a run killed with SIGKILL once its first epoch is saved, then
# continued with --resume, ends with the reference's candidates, rewards and
# best architecture; a state built from a shorter run continues the same
# way; an enas-macro search runs end to end; bad inputs (a space ENAS
# cannot share, another strategy on resume, a damaged state, a loss that
# diverges) are clear errors that leave the run directory alone.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
TMP=$(mktemp -d /tmp/nasc-enas-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

DATA=$TMP/data
. "$(dirname "$0")/idx_slice.sh"
write_idx_slice "$DATA" || { echo "FAIL: cannot write the IDX slice" >&2; exit 1; }

ARGS=(--data "$DATA" --space enas-micro --strategy enas --val-size 128 --batch 32 --ctl-steps 2 --ctl-aggregate 2
      --budget 4 --final-epochs 1 --threads 1 --seed 5 --set channels=8)
# the trial records without the timing field and checksum, for comparison
strip() { sed -e 's/"seconds":[^,]*,//' -e 's/,"check":"[0-9a-f]*"//' "$1"; }

# 1. reference run: 2 epochs of shared training
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/ref" >"$TMP/ref.out" 2>"$TMP/ref.err"
rc=$?
check "reference enas search exits 0 (rc $rc: $(tail -3 "$TMP/ref.err"))" '[ $rc -eq 0 ]'
check "journal: a header and 4 candidates" '[ "$(wc -l <"$TMP/ref/journal.jsonl")" -eq 5 ]'
check "the journal's header names strategy enas" 'head -n 1 "$TMP/ref/journal.jsonl" | grep -q "\"strategy\":\"enas\""'
for f in config.txt oneshot.nasc search.svg best.yaml best.nasc best.onnx; do
    check "reference run wrote $f" '[ -s "$TMP/ref/$f" ]'
done
check "a line per epoch of shared training" '[ "$(grep -c "^epoch [12]/2  shared training" "$TMP/ref.out")" -eq 2 ]'
check "a line per controller phase" '[ "$(grep -c "^epoch [12]/2  controller" "$TMP/ref.out")" -eq 2 ]'
check "the summary names the best candidate" 'grep -q "^best candidate #" "$TMP/ref.out"'
check "the summary gives the store's size" 'grep -q "^shared store: [0-9]* tensors" "$TMP/ref.out"'
check "enas-specific settings are in config.txt" 'grep -q "^ctl_aggregate = 2$" "$TMP/ref/config.txt"'

# 2. SIGKILL once the first epoch's state is saved, then --resume
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/k" >"$TMP/k.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    [ -s "$TMP/k/oneshot.nasc" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
check "the killed run left its one-shot state" '[ -s "$TMP/k/oneshot.nasc" ]'
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/k" --resume >"$TMP/k2.out" 2>"$TMP/k2.err"
rc=$?
check "resume after SIGKILL exits 0 (rc $rc: $(tail -3 "$TMP/k2.err"))" '[ $rc -eq 0 ]'
check "resume after SIGKILL: the reference's candidates and rewards" \
    '[ "$(strip "$TMP/k/journal.jsonl")" = "$(strip "$TMP/ref/journal.jsonl")" ]'
check "resume after SIGKILL: the reference's best architecture" 'cmp -s "$TMP/k/best.yaml" "$TMP/ref/best.yaml"'

# 3. a state saved after epoch 1 (taken from a one-epoch run: the schedule
#    per epoch does not depend on the total) continues to the reference
"$NASC" search "${ARGS[@]}" --search-epochs 1 --out "$TMP/one" >/dev/null 2>&1
mkdir -p "$TMP/c"
cp "$TMP/ref/config.txt" "$TMP/one/oneshot.nasc" "$TMP/c/"
head -n 1 "$TMP/ref/journal.jsonl" >"$TMP/c/journal.jsonl"
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/c" --resume >"$TMP/c.out" 2>"$TMP/c.err"
rc=$?
check "resume from epoch 1 exits 0 (rc $rc: $(tail -3 "$TMP/c.err"))" '[ $rc -eq 0 ]'
check "resume from epoch 1 runs only epoch 2" \
    '! grep -q "^epoch 1/2" "$TMP/c.out" && grep -q "^epoch 2/2  shared training" "$TMP/c.out"'
check "resume from epoch 1: the reference's candidates" \
    '[ "$(strip "$TMP/c/journal.jsonl")" = "$(strip "$TMP/ref/journal.jsonl")" ]'

# 4. enas-macro end to end: layers with their op-keyed shared tensors, the
#    macro controller with its skip penalty
"$NASC" search "${ARGS[@]/enas-micro/enas-macro}" --layers 4 --search-epochs 1 --out "$TMP/macro" \
    >"$TMP/macro.out" 2>"$TMP/macro.err"
rc=$?
check "enas-macro search exits 0 (rc $rc: $(tail -3 "$TMP/macro.err"))" '[ $rc -eq 0 ]'
check "enas-macro: a header and 4 candidates" '[ "$(wc -l <"$TMP/macro/journal.jsonl")" -eq 5 ]'
check "enas-macro: the macro defaults are in config.txt" \
    'grep -q "^tanh_constant = 1.5$" "$TMP/macro/config.txt" && grep -q "^aux_weight = 0$" "$TMP/macro/config.txt"'
check "enas-macro: best.onnx written" '[ -s "$TMP/macro/best.onnx" ]'

# 5. bad inputs
BADSPACE=("${ARGS[@]}")
BADSPACE[3]=nasnet # --space enas-micro -> nasnet
"$NASC" search "${BADSPACE[@]}" --out "$TMP/bad1" >/dev/null 2>"$TMP/bad1.err"
rc=$?
check "enas on the nasnet space: exit 1 (rc $rc)" '[ $rc -eq 1 ]'
check "enas on the nasnet space names the supported space" 'grep -q "enas-micro" "$TMP/bad1.err"'
cp -r "$TMP/ref" "$TMP/ref2"
OTHER=("${ARGS[@]}")
OTHER[5]=evolution # --strategy enas -> evolution
"$NASC" search "${OTHER[@]}" --out "$TMP/ref2" --resume >/dev/null 2>"$TMP/bad2.err"
rc=$?
check "resume with another strategy: exit 1 (rc $rc)" '[ $rc -eq 1 ]'
check "resume with another strategy names config.txt" 'grep -q "config.txt" "$TMP/bad2.err"'
mkdir -p "$TMP/d"
cp "$TMP/ref/config.txt" "$TMP/d/"
head -n 1 "$TMP/ref/journal.jsonl" >"$TMP/d/journal.jsonl"
head -c 3000 "$TMP/one/oneshot.nasc" >"$TMP/d/oneshot.nasc"
before=$(md5sum "$TMP/d/oneshot.nasc")
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/d" --resume >/dev/null 2>"$TMP/bad3.err"
rc=$?
check "a truncated one-shot state: exit 1 (rc $rc)" '[ $rc -eq 1 ]'
check "a truncated one-shot state is named" 'grep -q "oneshot.nasc" "$TMP/bad3.err"'
check "a truncated one-shot state is left as it was" '[ "$(md5sum "$TMP/d/oneshot.nasc")" = "$before" ]'

# a loss that diverges in epoch 2 (learning rate 100, no clipping and
# weight decay 1 after a good first epoch): a clear error, exit 1, and
# epoch 1's state kept as it was
mkdir -p "$TMP/nan"
sed -e 's/^search_epochs = 1$/search_epochs = 2/' -e 's/^lr = .*/lr = 100/' -e 's/^grad_clip = .*/grad_clip = 0/' \
    -e 's/^weight_decay = .*/weight_decay = 1/' "$TMP/one/config.txt" >"$TMP/nan/config.txt"
cp "$TMP/one/oneshot.nasc" "$TMP/nan/"
head -n 1 "$TMP/one/journal.jsonl" >"$TMP/nan/journal.jsonl"
before=$(md5sum <"$TMP/nan/oneshot.nasc")
"$NASC" search "${ARGS[@]}" --search-epochs 2 --lr 100 --grad-clip 0 --weight-decay 1 --out "$TMP/nan" --resume \
    >/dev/null 2>"$TMP/nan.err"
rc=$?
check "a diverging loss: exit 1 (rc $rc: $(tail -2 "$TMP/nan.err"))" '[ $rc -eq 1 ]'
check "a diverging loss is named, at epoch 2" 'grep -q "diverged: the loss is .* at epoch 2" "$TMP/nan.err"'
check "a diverging loss keeps the last good state" '[ "$(md5sum <"$TMP/nan/oneshot.nasc")" = "$before" ]'

echo "test_enas_search.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
