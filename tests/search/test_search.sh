#!/usr/bin/env bash
# nasc search end to end on a tiny configuration: a reference run; the same
# search killed with SIGKILL at random moments and resumed until done (and
# once with a torn journal record) must end with the same N trials, the same
# decisions, rewards and best; SIGINT stops cleanly; bad inputs are clear
# errors.
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
mkdir -p "$DATA"
/usr/bin/python3 - "$DATA" <<'EOF' || { echo "FAIL: cannot write the IDX slice" >&2; exit 1; }
import gzip, struct, sys
src, dst = "/usr/share/datasets/fashion-mnist", sys.argv[1]
for split, n in (("train", 512), ("t10k", 256)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        f.read(16)
        img = f.read(n * 784)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        f.read(8)
        lab = f.read(n)
    with open(f"{dst}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + img)
    with open(f"{dst}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + lab)
EOF

BUDGET=8
ARGS=(--data "$DATA" --space nasrl --layers 2 --strategy evolution --budget $BUDGET --epochs-per-trial 1
      --train-subset 128 --val-size 128 --batch 32 --final-epochs 1 --threads 1 --seed 3
      --set channels=8)
# evolution with a population of 20 samples at random first; this budget keeps it short

# 1. reference run, uninterrupted
"$NASC" search "${ARGS[@]}" --out "$TMP/ref" >"$TMP/ref.out" 2>"$TMP/ref.err"
rc=$?
check "reference search exits 0 (rc $rc: $(tail -3 "$TMP/ref.err"))" '[ $rc -eq 0 ]'
check "reference journal has $BUDGET records" '[ "$(wc -l <"$TMP/ref/journal.jsonl")" -eq $BUDGET ]'
for f in config.txt strategy.nasc search.svg best.yaml best.nir best.nasc best.onnx; do
    check "reference run wrote $f" '[ -s "$TMP/ref/$f" ]'
done
check "summary names best.onnx" 'grep -q "best.onnx" "$TMP/ref.out"'
check "a progress line per trial" '[ "$(grep -c "^trial " "$TMP/ref.out")" -eq $BUDGET ]'

# the trial records without the timing field, for comparison
strip() { sed -e 's/"seconds":[^,]*,//' -e 's/,"check":"[0-9a-f]*"//' "$1"; }

# 2. the same search, killed at random moments and resumed
RANDOM=7
kills=0
rm -rf "$TMP/k"
torn=0
for round in $(seq 1 40); do
    resume=()
    [ -d "$TMP/k" ] && resume=(--resume)
    "$NASC" search "${ARGS[@]}" --out "$TMP/k" "${resume[@]}" >"$TMP/k.out" 2>"$TMP/k.err" &
    pid=$!
    # kill somewhere in the first two seconds (process start, data loading,
    # a trial, the journal write, the state write, the final training)
    sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
    [ $((RANDOM % 2)) -eq 0 ] && sleep 1
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    wait $pid 2>/dev/null
    cat "$TMP/k.err" >>"$TMP/k.all"
    n=$(cat "$TMP/k/journal.jsonl" 2>/dev/null | wc -l)
    # once: tear the journal's last record, as a crash in the middle of a write would
    if [ "$torn" -eq 0 ] && [ "$round" -ge 2 ] && [ "$n" -ge 1 ] && [ "$n" -lt $BUDGET ]; then
        printf '{"trial":%d,"hash":"00' "$n" >>"$TMP/k/journal.jsonl"
        torn=1
    fi
    [ -s "$TMP/k/best.onnx" ] && break
done
check "the search was killed several times ($kills)" '[ $kills -ge 3 ]'
check "a torn record was made" '[ $torn -eq 1 ]'
"$NASC" search "${ARGS[@]}" --out "$TMP/k" --resume >"$TMP/k.out" 2>"$TMP/k.err"
rc=$?
check "the resumed search finishes (rc $rc: $(tail -3 "$TMP/k.err"))" '[ $rc -eq 0 ]'
cat "$TMP/k.err" >>"$TMP/k.all"
check "the torn record was dropped with a warning" 'grep -q "dropped a torn last record" "$TMP/k.all"'
check "exactly $BUDGET journal records after the kills" '[ "$(wc -l <"$TMP/k/journal.jsonl")" -eq $BUDGET ]'
check "trial numbers 0..$((BUDGET - 1))" \
    '[ "$(grep -o "^{\"trial\":[0-9]*" "$TMP/k/journal.jsonl" | cut -d: -f2 | tr "\n" " ")" = "$(seq -s " " 0 $((BUDGET - 1))) " ]'
check "the killed search has the reference's trials (decisions, hashes, rewards)" \
    'diff <(strip "$TMP/ref/journal.jsonl") <(strip "$TMP/k/journal.jsonl") >&2'
check "the same best.yaml" 'diff "$TMP/ref/best.yaml" "$TMP/k/best.yaml" >&2'
best_journal=$(grep -v '"status":"failed"' "$TMP/k/journal.jsonl" |
    sed -e 's/.*"trial":\([0-9]*\).*"reward":\([^,]*\).*/\2 \1/' | sort -k1,1gr -k2,2n | head -1 | cut -d' ' -f2)
check "the summary's best is the journal's best (#$best_journal)" 'grep -q "best trial #$best_journal:" "$TMP/k.out"'

# 3. SIGINT stops cleanly and --resume finishes
rm -rf "$TMP/i"
"$NASC" search "${ARGS[@]}" --budget 30 --out "$TMP/i" >"$TMP/i.out" 2>"$TMP/i.err" &
pid=$!
for _ in $(seq 1 100); do
    [ -s "$TMP/i/journal.jsonl" ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exits 1 (rc $rc)" '[ $rc -eq 1 ]'
check "SIGINT says how to continue" 'grep -q "interrupted after .* continue with --resume" "$TMP/i.err"'
n=$(wc -l <"$TMP/i/journal.jsonl")
check "SIGINT left a valid journal ($n records)" '[ "$n" -ge 1 ] && [ "$n" -lt 30 ] && [ "$(tail -c 1 "$TMP/i/journal.jsonl" | od -An -c | tr -d " ")" = "\n" ]'

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
cp -r "$TMP/k" "$TMP/c"
printf 'garbage' | dd of="$TMP/c/strategy.nasc" bs=1 seek=40 conv=notrunc 2>/dev/null
"$NASC" search "${ARGS[@]}" --out "$TMP/c" --resume >/dev/null 2>"$TMP/e5"
rc=$?
check "a corrupt strategy checkpoint is refused (rc $rc)" '[ $rc -eq 1 ] && grep -q "strategy.nasc" "$TMP/e5"'
"$NASC" search --space nasrl --strategy random --out "$TMP/x" >/dev/null 2>"$TMP/e6"
rc=$?
check "a missing --budget is a usage error (rc $rc)" '[ $rc -eq 2 ] && grep -q "missing --budget" "$TMP/e6"'
"$NASC" search --help >"$TMP/h" 2>&1
check "--help" 'grep -q "journal.jsonl" "$TMP/h"'

# 5. failing children are failed trials with their reason; the search goes on
"$NASC" search "${ARGS[@]}" --budget 2 --lr 100 --train-subset 384 --out "$TMP/nan" >"$TMP/nan.out" 2>"$TMP/nan.err"
rc=$?
check "a search whose every child diverges ends with exit 1 (rc $rc)" \
    '[ $rc -eq 1 ] && grep -q "no trial of the search succeeded" "$TMP/nan.err"'
check "diverged children are journalled as failed, with the reason" \
    '[ "$(grep -c "\"status\":\"failed\".*loss is \(NaN\|infinite\)" "$TMP/nan/journal.jsonl")" -eq 2 ]'
"$NASC" search "${ARGS[@]}" --budget 2 --time-limit 0.000001 --out "$TMP/slow" >"$TMP/slow.out" 2>"$TMP/slow.err"
check "children over the time limit are failed trials" \
    '[ "$(grep -c "\"status\":\"failed\".*time limit" "$TMP/slow/journal.jsonl")" -eq 2 ]'

echo "test_search: $pass passed, $fail failed"
[ $fail -eq 0 ]
