#!/usr/bin/env bash
# nasc search end to end on a tiny configuration: a reference run; every
# state a search killed at some moment can leave behind, built exactly from
# the files of real runs (no timed kills), continues with --resume to the
# reference's N trials, decisions, rewards and best, redoing no finished
# trial; a crash while config.txt is written leaves no partial file; SIGINT
# stops cleanly; a journal of another search is refused, naming its line,
# and the run directory is left alone; bad inputs are clear errors.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
SRC=${NASC_SOURCE_DIR:?}
TMP=$(mktemp -d /tmp/nasc-search-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# A small slice of Fashion-MNIST (Debian's dataset-fashion-mnist) as IDX
# files, so that every trial and the final training take a moment.
DATA=$TMP/data
. "$(dirname "$0")/idx_slice.sh"
write_idx_slice "$DATA" || { echo "FAIL: cannot write the IDX slice" >&2; exit 1; }

BUDGET=8
ARGS=(--data "$DATA" --space nasrl --layers 2 --strategy evolution --budget $BUDGET --epochs-per-trial 1
      --train-subset 128 --val-size 128 --batch 32 --final-epochs 1 --threads 1 --seed 3
      --set channels=8)
# evolution with a population of 20 samples at random first; this budget keeps it short

# 1. reference run, uninterrupted
"$NASC" search "${ARGS[@]}" --out "$TMP/ref" >"$TMP/ref.out" 2>"$TMP/ref.err"
rc=$?
check "reference search exits 0 (rc $rc: $(tail -3 "$TMP/ref.err"))" '[ $rc -eq 0 ]'
check "reference journal: a header and $BUDGET records" '[ "$(wc -l <"$TMP/ref/journal.jsonl")" -eq $((BUDGET + 1)) ]'
check "the journal's header names the search" \
    'head -n 1 "$TMP/ref/journal.jsonl" | grep -q "^{\"journal\":\"nasc search 1\",\"space\":\"nasrl\",\"option\":\"layers=2\",\"strategy\":\"evolution\",\"decisions\":\"c4 c4 c4 s0 c4 c4 c4 s1\""'
for f in config.txt strategy.nasc search.svg best.yaml best.nir best.nasc best.onnx; do
    check "reference run wrote $f" '[ -s "$TMP/ref/$f" ]'
done
check "summary names best.onnx" 'grep -q "best.onnx" "$TMP/ref.out"'
check "a progress line per trial" '[ "$(grep -c "^trial " "$TMP/ref.out")" -eq $BUDGET ]'

# the trial records without the timing field, for comparison
strip() { sed -e 's/"seconds":[^,]*,//' -e 's/,"check":"[0-9a-f]*"//' "$1"; }

# 2. The states a kill leaves, built from finished runs, continued with
# --resume. A search writes, per trial: the journal record (one write and
# an fsync), then the strategy state (atomically: strategy.nasc.tmp, then a
# rename); then the final training and its files. P is the same search with
# a budget of K, so its strategy.nasc is the state after trial K; the
# reference's journal has every record.
K=4
"$NASC" search "${ARGS[@]}" --budget $K --out "$TMP/p" >"$TMP/p.out" 2>"$TMP/p.err"
rc=$?
check "the search with budget $K exits 0 (rc $rc: $(tail -3 "$TMP/p.err"))" '[ $rc -eq 0 ]'
# the first n lines of the reference's journal (line 1 is its header)
head_lines() { head -n "$1" "$TMP/ref/journal.jsonl"; }
# a run directory as a kill after trial K left it: no final outputs
killed_dir() {
    rm -rf "$1"
    mkdir -p "$1"
    cp "$TMP/p/config.txt" "$TMP/p/strategy.nasc" "$1/"
}
# resume $1 and compare with the reference; $2 trials must be run again
resume_same() {
    local d=$1 redo=$2 what=$3
    "$NASC" search "${ARGS[@]}" --out "$d" --resume >"$d.out" 2>"$d.err"
    local rc=$?
    check "$what: the resumed search finishes (rc $rc: $(tail -3 "$d.err"))" '[ $rc -eq 0 ]'
    check "$what: only the $redo unfinished trials run" '[ "$(grep -c "^trial " "$d.out")" -eq $redo ]'
    check "$what: the reference's trials (decisions, hashes, rewards)" \
        'diff <(strip "$TMP/ref/journal.jsonl") <(strip "$d/journal.jsonl") >&2'
    check "$what: the reference's best.yaml" 'diff "$TMP/ref/best.yaml" "$d/best.yaml" >&2'
    check "$what: the summary's best is the reference's" \
        '[ "$(grep "^best trial" "$d.out")" = "$(grep "^best trial" "$TMP/ref.out")" ]'
    check "$what: no temporary file left" '[ -z "$(find "$d" -name "*.tmp")" ]'
}
# A. killed between the journal record of trial K+1 and its state: one
#    record is replayed into the state of K trials
killed_dir "$TMP/a"
head_lines $((K + 2)) >"$TMP/a/journal.jsonl"
resume_same "$TMP/a" $((BUDGET - K - 1)) "journal one record ahead of the state"
# B. killed while the record of trial K+1 was written: K records and the
#    first half of the next one (cut at a byte offset), the state of K
killed_dir "$TMP/b"
head_lines $((K + 1)) >"$TMP/b/journal.jsonl"
next=$(sed -n "$((K + 2))p" "$TMP/ref/journal.jsonl")
printf '%s' "${next:0:$((${#next} / 2))}" >>"$TMP/b/journal.jsonl"
resume_same "$TMP/b" $((BUDGET - K)) "a torn last record"
check "the torn record was dropped with a warning naming its line" \
    'grep -q "journal.jsonl:$((K + 2)): dropped a torn last record" "$TMP/b.err"'
# C. no strategy state (killed before the first was saved, or lost): the
#    strategy replays the journal from the start
rm -rf "$TMP/c"
mkdir -p "$TMP/c"
cp "$TMP/ref/config.txt" "$TMP/c/"
head_lines 3 >"$TMP/c/journal.jsonl"
resume_same "$TMP/c" $((BUDGET - 2)) "no strategy state"
check "the missing state is said" 'grep -q "the strategy replays the 2 journal records" "$TMP/c.err"'
# D. killed while the state after trial K was written: the state of K-1
#    is not at hand, so the state of K and a stray temporary file
killed_dir "$TMP/d"
head_lines $((K + 1)) >"$TMP/d/journal.jsonl"
printf 'half a checkpoint' >"$TMP/d/strategy.nasc.tmp"
resume_same "$TMP/d" $((BUDGET - K)) "a stray strategy.nasc.tmp"
# E. killed during the final training: every trial done, no final files
rm -rf "$TMP/e"
mkdir -p "$TMP/e"
cp "$TMP/ref/config.txt" "$TMP/ref/journal.jsonl" "$TMP/ref/strategy.nasc" "$TMP/e/"
resume_same "$TMP/e" 0 "killed in the final training"
# F. killed while config.txt was written (the process dies of SIGXFSZ at
#    its first byte): no config.txt, so the run directory is not mistaken
#    for a search that cannot be continued; --resume starts it afresh (up
#    to the data, which is missing here)
rm -rf "$TMP/f"
# (the braces keep bash's report of the signal off the output)
{ (ulimit -f 0 && exec "$NASC" search "${ARGS[@]}" --out "$TMP/f") >/dev/null 2>&1; } 2>/dev/null
rc=$?
check "a search with no room for config.txt is killed (rc $rc)" '[ $rc -gt 128 ]'
check "no config.txt, partial or empty, after the kill" '[ ! -e "$TMP/f/config.txt" ]'
"$NASC" search "${ARGS[@]}" --data "$TMP/nodata" --out "$TMP/f" --resume >/dev/null 2>"$TMP/f.err"
check "the run directory starts afresh with --resume ($(tail -1 "$TMP/f.err"))" \
    'grep -q "no search in .* yet; starting a new one" "$TMP/f.err" && grep -q "nodata" "$TMP/f.err" &&
     ! grep -q "config.txt" "$TMP/f.err"'

# 3. SIGINT stops cleanly and --resume continues. The signal is sent once
# the first record is in the journal (waiting for it has no deadline: the
# process ending stops the wait); with a budget no run reaches, it always
# lands in the search loop.
rm -rf "$TMP/i"
"$NASC" search "${ARGS[@]}" --budget 100000 --out "$TMP/i" >"$TMP/i.out" 2>"$TMP/i.err" &
pid=$!
while kill -0 $pid 2>/dev/null && [ "$(cat "$TMP/i/journal.jsonl" 2>/dev/null | wc -l)" -lt 2 ]; do
    sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exits 1 (rc $rc: $(tail -1 "$TMP/i.err"))" '[ $rc -eq 1 ]'
check "SIGINT says how to continue" 'grep -q "interrupted after .* continue with --resume" "$TMP/i.err"'
n=$(($(wc -l <"$TMP/i/journal.jsonl") - 1))
check "SIGINT left a whole journal ($n records)" \
    '[ "$n" -ge 1 ] && [ "$(tail -c 1 "$TMP/i/journal.jsonl" | od -An -c | tr -d " ")" = "\n" ]'
"$NASC" search "${ARGS[@]}" --budget $((n + 1)) --out "$TMP/i" --resume >"$TMP/i.out" 2>"$TMP/i.err"
rc=$?
check "the interrupted search continues (rc $rc: $(tail -1 "$TMP/i.err"))" \
    '[ $rc -eq 0 ] && [ "$(grep -c "^trial " "$TMP/i.out")" -eq 1 ]'
m=$((n + 1 < BUDGET ? n + 1 : BUDGET))
check "its first $m trials are the reference's" \
    'diff <(strip "$TMP/ref/journal.jsonl" | head -n $((m + 1))) <(strip "$TMP/i/journal.jsonl" | head -n $((m + 1))) >&2'

# 4. bad inputs
"$NASC" search "${ARGS[@]}" --out "$TMP/ref" >/dev/null 2>"$TMP/e1"
rc=$?
check "an existing run without --resume is refused (rc $rc)" '[ $rc -eq 1 ] && grep -q "already there" "$TMP/e1"'
"$NASC" search "${ARGS[@]}" --seed 4 --out "$TMP/ref" --resume >/dev/null 2>"$TMP/e2"
rc=$?
check "a run directory of another configuration is refused (rc $rc)" \
    '[ $rc -eq 1 ] && grep -q "belongs to another search: seed was .3., now .4." "$TMP/e2"'
"$NASC" search --space nope --strategy random --budget 2 --out "$TMP/x" >/dev/null 2>"$TMP/e3"
rc=$?
check "an unknown space is refused (rc $rc)" '[ $rc -eq 1 ] && grep -q "unknown search space .nope. (known: nasnet" "$TMP/e3"'
"$NASC" search --space nasrl --strategy annealing --budget 2 --out "$TMP/x" >/dev/null 2>"$TMP/e4"
rc=$?
check "an unknown strategy is refused (rc $rc)" '[ $rc -eq 1 ] && grep -q "unknown strategy .annealing. (known: random" "$TMP/e4"'
cp -r "$TMP/a" "$TMP/cs"
printf 'garbage' | dd of="$TMP/cs/strategy.nasc" bs=1 seek=40 conv=notrunc 2>/dev/null
"$NASC" search "${ARGS[@]}" --out "$TMP/cs" --resume >/dev/null 2>"$TMP/e5"
rc=$?
check "a corrupt strategy checkpoint is refused (rc $rc)" '[ $rc -eq 1 ] && grep -q "strategy.nasc" "$TMP/e5"'
# a journal of another search, in a run directory whose config.txt was made
# to match: refused at the journal's line, the directory left as it was
snap() { (cd "$1" && find . -type f | sort | xargs md5sum); }
cp -r "$TMP/ref" "$TMP/other_size"
sed -i 's/^layers = 2$/layers = 3/' "$TMP/other_size/config.txt"
before=$(snap "$TMP/other_size")
"$NASC" search "${ARGS[@]}" --layers 3 --out "$TMP/other_size" --resume >/dev/null 2>"$TMP/e7"
rc=$?
check "a journal of another space size is refused at line 1 (rc $rc: $(tail -1 "$TMP/e7"))" \
    '[ $rc -eq 1 ] && grep -q "journal.jsonl:1:1: error: this journal belongs to another search: its nasrl space has layers=2, this search.s layers=3" "$TMP/e7"'
check "the run directory is left as it was" '[ "$(snap "$TMP/other_size")" = "$before" ]'
cp -r "$TMP/ref" "$TMP/other_seed"
sed -i 's/^seed = 3$/seed = 4/' "$TMP/other_seed/config.txt"
rm "$TMP/other_seed/strategy.nasc"
before=$(snap "$TMP/other_seed")
"$NASC" search "${ARGS[@]}" --seed 4 --out "$TMP/other_seed" --resume >/dev/null 2>"$TMP/e8"
rc=$?
check "a journal of another seed is refused at its first record (rc $rc: $(tail -1 "$TMP/e8"))" \
    '[ $rc -eq 1 ] && grep -q "journal.jsonl:2:1: error: trial 0 is not what strategy evolution proposes when the journal is replayed: decision" "$TMP/e8"'
check "the run directory is left as it was" '[ "$(snap "$TMP/other_seed")" = "$before" ]'
before=$(snap "$TMP/ref")
"$NASC" search "${ARGS[@]}" --seed 5 --out "$TMP/ref" --resume >/dev/null 2>"$TMP/e9"
check "a refused configuration leaves the run directory as it was" '[ "$(snap "$TMP/ref")" = "$before" ]'
"$NASC" search --space nasrl --strategy random --out "$TMP/x" >/dev/null 2>"$TMP/e6"
rc=$?
check "a missing --budget is a usage error (rc $rc)" '[ $rc -eq 2 ] && grep -q "missing --budget" "$TMP/e6"'
"$NASC" search --help >"$TMP/help" 2>&1
check "--help" 'grep -q "journal.jsonl" "$TMP/help"'

# 5. failing children are failed trials with their reason; the search goes on
"$NASC" search "${ARGS[@]}" --budget 2 --lr 100 --batch 2 --train-subset 384 --out "$TMP/nan" >"$TMP/nan.out" 2>"$TMP/nan.err"
rc=$?
check "a search whose every child diverges ends with exit 1 (rc $rc)" \
    '[ $rc -eq 1 ] && grep -q "no trial of the search succeeded" "$TMP/nan.err"'
check "diverged children are journalled as failed, with the reason" \
    '[ "$(grep -c "\"status\":\"failed\".*loss is \(NaN\|infinite\)" "$TMP/nan/journal.jsonl")" -eq 2 ]'
"$NASC" search "${ARGS[@]}" --budget 2 --time-limit 0.000001 --out "$TMP/slow" >"$TMP/slow.out" 2>"$TMP/slow.err"
check "children over the time limit are failed trials" \
    '[ "$(grep -c "\"status\":\"failed\".*time limit" "$TMP/slow/journal.jsonl")" -eq 2 ]'

# 6. --final-recipe trains the best with the final-training recipe: a cell
# net gets its auxiliary head (its weights are in best.nasc), the export
# does not, and the summary is there as always
"$NASC" search --data "$DATA" --space enas-micro --strategy random --budget 1 --epochs-per-trial 1 \
    --train-subset 128 --val-size 128 --batch 32 --final-epochs 1 --threads 1 --seed 3 --set channels=4 \
    --set cells_per_stage=1 --final-recipe --out "$TMP/recipe" >"$TMP/recipe.out" 2>"$TMP/recipe.err"
rc=$?
check "a search with --final-recipe succeeds (rc $rc)" '[ $rc -eq 0 ] && grep -q "^final training (1 epoch)" "$TMP/recipe.out"'
check "--final-recipe trains an auxiliary head" 'grep -aq "aux.fc.w" "$TMP/recipe/best.nasc"'
check "the exported best net has no auxiliary head" '! grep -aq "aux_logits" "$TMP/recipe/best.onnx"'

echo "test_search: $pass passed, $fail failed"
[ $fail -eq 0 ]
