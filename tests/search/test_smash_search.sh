#!/usr/bin/env bash
# nasc search --strategy smash end to end on a tiny configuration: a
# reference run trains the hypernetwork, scores random candidates and
# perturbations of the best with generated weights, and trains the best from
# scratch; a run killed with SIGKILL once its first epoch is saved, then
# continued with --resume, ends with the reference's candidates, scores and
# best architecture; so does a run killed while it scores candidates; bad
# inputs (smash on another space, SMASH options with another strategy, ENAS
# options with smash, a damaged or non-finite hypernetwork state) are clear
# errors that leave the run directory alone.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
TMP=$(mktemp -d /tmp/nasc-smash-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

DATA=$TMP/data
. "$(dirname "$0")/idx_slice.sh"
write_idx_slice "$DATA" || { echo "FAIL: cannot write the IDX slice" >&2; exit 1; }

ARGS=(--data "$DATA" --space smash --strategy smash --layers 2 --val-size 64 --hyper-batch 16 --budget 5
      --perturb 2 --final-epochs 1 --threads 1 --seed 3)
strip() { sed -e 's/"seconds":[^,]*,//' -e 's/,"check":"[0-9a-f]*"//' "$1"; }

# 1. reference run: 2 epochs of hypernetwork training
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/ref" >"$TMP/ref.out" 2>"$TMP/ref.err"
rc=$?
check "reference smash search exits 0 (rc $rc: $(tail -3 "$TMP/ref.err"))" '[ $rc -eq 0 ]'
check "journal: a header, 5 candidates and 2 perturbations" '[ "$(wc -l <"$TMP/ref/journal.jsonl")" -eq 8 ]'
check "the journal's header names strategy smash" 'head -n 1 "$TMP/ref/journal.jsonl" | grep -q "\"strategy\":\"smash\""'
for f in config.txt oneshot.nasc search.svg best.yaml best.nasc best.onnx; do
    check "reference run wrote $f" '[ -s "$TMP/ref/$f" ]'
done
check "a line per epoch of hypernetwork training" \
    '[ "$(grep -c "^epoch [12]/2  hypernetwork training" "$TMP/ref.out")" -eq 2 ]'
check "the derive line says the weights were generated" \
    'grep -q "^derive: 7 candidates scored with the generated weights" "$TMP/ref.out"'
check "the summary names the best candidate" \
    'grep -q "^best candidate #[0-9]*: .* on the validation split with generated weights" "$TMP/ref.out"'
check "the summary gives the store's size" 'grep -q "^SMASH store: [0-9]* tensors" "$TMP/ref.out"'
check "SMASH settings are in config.txt" \
    'grep -q "^perturb = 2$" "$TMP/ref/config.txt" && grep -q "^hyper_batch = 16$" "$TMP/ref/config.txt"'
check "the state holds the hypernetwork and the block tensors" \
    'grep -aq "hyper.out.w" "$TMP/ref/oneshot.nasc" && grep -aq "smash.b1.w" "$TMP/ref/oneshot.nasc"'
# each perturbation differs from the best random candidate in at least one decision
best=$(head -n 6 "$TMP/ref/journal.jsonl" | tail -n 5 | sed 's/.*"reward":\([^,]*\),.*"decisions":\(\[[^]]*\]\).*/\1 \2/' |
    sort -g -s -k1,1 | awk '{ r[NR] = $0 } END { print r[NR] }' | cut -d' ' -f2)
check "the perturbations are new architectures" \
    '! tail -n 2 "$TMP/ref/journal.jsonl" | grep -qF "\"decisions\":$best"'

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
check "the killed run left its state" '[ -s "$TMP/k/oneshot.nasc" ]'
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/k" --resume >"$TMP/k2.out" 2>"$TMP/k2.err"
rc=$?
check "resume after SIGKILL exits 0 (rc $rc: $(tail -3 "$TMP/k2.err"))" '[ $rc -eq 0 ]'
check "resume after SIGKILL: the reference's candidates and scores" \
    '[ "$(strip "$TMP/k/journal.jsonl")" = "$(strip "$TMP/ref/journal.jsonl")" ]'
check "resume after SIGKILL: the reference's best architecture" 'cmp -s "$TMP/k/best.yaml" "$TMP/ref/best.yaml"'

# 3. killed while scoring: the journal holds some candidates, the rest are
#    scored on --resume (the best of the random ones is found again from the
#    journal before the perturbations)
mkdir -p "$TMP/s"
cp "$TMP/ref/config.txt" "$TMP/ref/oneshot.nasc" "$TMP/s/"
head -n 4 "$TMP/ref/journal.jsonl" >"$TMP/s/journal.jsonl"
"$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/s" --resume >"$TMP/s.out" 2>"$TMP/s.err"
rc=$?
check "resume while scoring exits 0 (rc $rc: $(tail -3 "$TMP/s.err"))" '[ $rc -eq 0 ]'
check "resume while scoring trains no epoch" '! grep -q "^epoch " "$TMP/s.out"'
check "resume while scoring: the reference's candidates and scores" \
    '[ "$(strip "$TMP/s/journal.jsonl")" = "$(strip "$TMP/ref/journal.jsonl")" ]'

# 4. bad inputs
"$NASC" search --data "$DATA" --space enas-micro --strategy smash --budget 2 --out "$TMP/bad1" >/dev/null \
    2>"$TMP/bad1.err"
rc=$?
check "smash on the enas-micro space: exit 1 (rc $rc)" '[ $rc -eq 1 ]'
check "smash on the enas-micro space names the smash space" 'grep -q "searches the smash spaces" "$TMP/bad1.err"'
"$NASC" search --space smash --strategy random --perturb 3 --budget 2 --out "$TMP/bad2" >/dev/null 2>"$TMP/bad2.err"
rc=$?
check "--perturb with random search: exit 2 (rc $rc)" '[ $rc -eq 2 ]'
check "--perturb with random search is named" 'grep -q "options of --strategy smash" "$TMP/bad2.err"'
"$NASC" search "${ARGS[@]}" --ctl-lr 0.1 --out "$TMP/bad3" >/dev/null 2>"$TMP/bad3.err"
rc=$?
check "an ENAS option with smash: exit 2 (rc $rc)" '[ $rc -eq 2 ]'
check "no run directory for a refused command line" '[ ! -e "$TMP/bad2" ] && [ ! -e "$TMP/bad3" ]'
for kind in truncated flipped; do
    mkdir -p "$TMP/$kind"
    cp "$TMP/ref/config.txt" "$TMP/$kind/"
    head -n 1 "$TMP/ref/journal.jsonl" >"$TMP/$kind/journal.jsonl"
    if [ $kind = truncated ]; then
        head -c 3000 "$TMP/ref/oneshot.nasc" >"$TMP/$kind/oneshot.nasc"
    else
        cp "$TMP/ref/oneshot.nasc" "$TMP/$kind/oneshot.nasc"
        printf '\377\377\377\377' | dd of="$TMP/$kind/oneshot.nasc" bs=1 seek=2000 conv=notrunc 2>/dev/null
    fi
    before=$(md5sum <"$TMP/$kind/oneshot.nasc")
    "$NASC" search "${ARGS[@]}" --search-epochs 2 --out "$TMP/$kind" --resume >/dev/null 2>"$TMP/$kind.err"
    rc=$?
    check "a $kind hypernetwork state: exit 1 (rc $rc)" '[ $rc -eq 1 ]'
    check "a $kind hypernetwork state is named" 'grep -q "oneshot.nasc" "$TMP/$kind.err"'
    check "a $kind hypernetwork state is left as it was" '[ "$(md5sum <"$TMP/$kind/oneshot.nasc")" = "$before" ]'
done

echo "test_smash_search.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
