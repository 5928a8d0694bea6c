#!/usr/bin/env bash
# nasc search under mpirun (docs/distributed.md), 3 ranks on this machine:
# - the trials equal a search in one process with the same seed (random
#   proposes the same children whatever the rewards; each child's reward is
#   the same, as it trains with the same seed and one thread), each trial
#   once, the run directory complete;
# - a worker rank killed mid-run ends the job (Open MPI ends every rank);
#   --resume under mpirun, and once without it, completes the run with
#   exactly the budget, every proposal once, the in-flight ones trained
#   again;
# - a worker that stops answering (SIGSTOP) is given up after
#   --worker-timeout: its child is a failed trial that says so, the search
#   completes on the other worker, and the job ends normally once the
#   worker is back;
# - reinforce with controller replicas logs each gradient's staleness;
# - enas refuses to run on several ranks.
set -u -o pipefail
NASC=${NASC_BIN:?NASC_BIN must point at the nasc binary}
SRC=${NASC_SOURCE_DIR:?}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "mpirun not found: 'make deps' installs Open MPI (openmpi-bin)"
    exit 77
fi
# the whole help read first: `grep -q` would stop reading at the match and
# the pipeline fail on nasc's SIGPIPE under pipefail
HELP=$("$NASC" search --help)
if ! grep -q "^This nasc: built with" <<<"$HELP"; then
    echo "this nasc was built without MPI ($(grep '^This nasc' <<<"$HELP")); install libopenmpi-dev"
    exit 77
fi
TMP=$(mktemp -d /tmp/nasc-dist-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
# Under AddressSanitizer: Open MPI's own allocations that live until exit
# are not nasc's leaks (the file names only Open MPI's libraries).
export LSAN_OPTIONS="suppressions=$SRC/tests/search/lsan-mpi.supp:fast_unwind_on_malloc=0:print_suppressions=0"

DATA=$TMP/data
. "$(dirname "$0")/idx_slice.sh"
write_idx_slice "$DATA" || { echo "FAIL: cannot write the IDX slice" >&2; exit 1; }
BUDGET=8
ARGS=(--data "$DATA" --space nasrl --layers 2 --strategy random --budget $BUDGET --epochs-per-trial 1
      --train-subset 128 --val-size 128 --batch 32 --final-epochs 1 --threads 1 --seed 3 --set channels=8)

# "decisions reward status" per trial, sorted: what two runs must share
trials() { /usr/bin/python3 - "$1" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]).read().splitlines()[1:]:
    r = json.loads(line)
    rows.append("%s %r %s" % (r["decisions"], r["reward"], r["status"]))
print("\n".join(sorted(rows)))
PY
}
# every trial number 0..n-1 once, in order, and every proposal number once
numbering() { /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()[1:]]
n = int(sys.argv[2])
idx = [r["trial"] for r in recs]
prop = sorted(r.get("proposal", r["trial"]) for r in recs)
sys.exit(0 if idx == list(range(n)) and len(set(prop)) == n else 1)
PY
}
# run directory $1 ($2 says which) has the reference's trials, and every
# trial and proposal once
like_reference() {
    trials "$1/journal.jsonl" >"$1.trials"
    check "$2 has the reference's trials (architecture, reward, status): $(diff "$TMP/local.trials" "$1.trials" | head -4)" \
        "cmp -s '$TMP/local.trials' '$1.trials'"
    check "$2 has every trial and every proposal once" "numbering '$1/journal.jsonl' $BUDGET"
}
# the pid of rank R of the job writing into run directory $1
rank_pid() {
    for p in $(pgrep -f -- "--out $1\$" || true); do
        if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return
        fi
    done
}
# wait (at most 120 s) until journal $1 holds at least $2 trials
wait_trials() {
    local i
    for i in $(seq 1200); do
        if [ -f "$1" ] && [ $(($(wc -l <"$1") - 1)) -ge "$2" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}

# --- 1. the same trials as in one process ------------------------------
"$NASC" search "${ARGS[@]}" --out "$TMP/local" >"$TMP/local.out" 2>"$TMP/local.err"
check "the local reference search exits 0 ($(tail -2 "$TMP/local.err"))" '[ $? -eq 0 ]'
trials "$TMP/local/journal.jsonl" >"$TMP/local.trials"
check "the reference has $BUDGET trials" '[ $(wc -l <"$TMP/local.trials") -eq $BUDGET ]'

"${MPIRUN[@]}" -np 3 "$NASC" search "${ARGS[@]}" --out "$TMP/d" >"$TMP/d.out" 2>"$TMP/d.err"
rc=$?
check "mpirun -np 3 nasc search exits 0 (rc $rc: $(tail -3 "$TMP/d.err"))" '[ $rc -eq 0 ]'
like_reference "$TMP/d" "the distributed run"
for f in config.txt journal.jsonl strategy.nasc search.svg best.yaml best.nir best.nasc best.onnx best-cells.svg; do
    check "the run directory has $f" '[ -s "$TMP/d/$f" ]'
done
check "the workers are named in the journal" 'grep -q "\"rank\":1" "$TMP/d/journal.jsonl" && grep -q "\"rank\":2" "$TMP/d/journal.jsonl"'
check "rank 0 prints its figures" 'grep -q "^distributed: 3 ranks, 2 workers x 1 thread" "$TMP/d.out"'
check "the summary is printed once" '[ $(grep -c "^best model:" "$TMP/d.out") -eq 1 ]'
# (its first comment line names the trial, numbered in arrival order here)
check "the final model equals the local one's" \
    'cmp -s <(sed 1d "$TMP/local/best.yaml") <(sed 1d "$TMP/d/best.yaml")'

# --- 2. a worker rank killed mid-run, then --resume ----------------------
kill_run() { # $1: run directory; kills rank 1 once 3 trials are in; rc: mpirun's status
    "${MPIRUN[@]}" -np 3 "$NASC" search "${ARGS[@]}" --out "$1" >"$1.out" 2>"$1.err" &
    local mp=$!
    wait_trials "$1/journal.jsonl" 3 || bad "no 3 trials in $1 within 2 minutes"
    local pid
    pid=$(rank_pid "$1" 1)
    if [ -n "$pid" ]; then kill -9 "$pid"; else bad "rank 1 of $1 not found"; fi
    wait $mp
    rc=$?
}
kill_run "$TMP/k"
check "killing worker rank 1 ends the job with an error (rc $rc)" '[ "$rc" -ne 0 ]'
check "mpirun names the killed rank" 'grep -q "rank 1" "$TMP/k.err"'
n=$(($(wc -l <"$TMP/k/journal.jsonl") - 1))
check "the killed run kept its finished trials ($n)" '[ $n -ge 3 ] && [ $n -lt $BUDGET ]'
"${MPIRUN[@]}" -np 3 "$NASC" search "${ARGS[@]}" --out "$TMP/k" --resume >"$TMP/k2.out" 2>"$TMP/k2.err"
rc=$?
check "--resume under mpirun exits 0 (rc $rc: $(tail -3 "$TMP/k2.err"))" '[ $rc -eq 0 ]'
check "it says where it resumes" 'grep -q "resuming $TMP/k: $n of $BUDGET trials done" "$TMP/k2.err"'
like_reference "$TMP/k" "the run resumed under mpirun"

kill_run "$TMP/l"
check "the second killed run ends with an error (rc $rc)" '[ "$rc" -ne 0 ]'
"$NASC" search "${ARGS[@]}" --out "$TMP/l" --resume >"$TMP/l2.out" 2>"$TMP/l2.err"
rc=$?
check "--resume without mpirun exits 0 (rc $rc: $(tail -3 "$TMP/l2.err"))" '[ $rc -eq 0 ]'
like_reference "$TMP/l" "the run resumed in one process"

# --- 2b. rank 0 died between journaling a result and saving the state ---
# Built from the reference's files, not by a timed kill: the journal holds
# one result, of proposal 1 (proposal 0 still in training when rank 0
# died), and there is no strategy state yet. --resume proposes 0 and 1
# again, reports 1, trains 0 and then the rest: the reference's trials.
mkdir -p "$TMP/c"
cp "$TMP/local/config.txt" "$TMP/c/"
/usr/bin/python3 - "$TMP/local/journal.jsonl" "$TMP/c/journal.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
rec = lines[2]                                  # trial 1 of the reference
body = rec[:rec.index(',"check":')]
body = body.replace('{"trial":1,', '{"trial":0,', 1) + ',"proposal":1,"rank":2'
h = 0xcbf29ce484222325
for c in body.encode():
    h = ((h ^ c) * 0x100000001b3) & 0xffffffffffffffff
open(sys.argv[2], "w").write(lines[0] + "\n" + body + ',"check":"%016x"}\n' % h)
PY
"$NASC" search "${ARGS[@]}" --out "$TMP/c" --resume >"$TMP/c.out" 2>"$TMP/c.err"
rc=$?
check "--resume after rank 0 died before its first state save exits 0 (rc $rc: $(tail -3 "$TMP/c.err"))" '[ $rc -eq 0 ]'
like_reference "$TMP/c" "the run resumed after rank 0 died before its first save"

# --- 3. a worker that stops answering ------------------------------------
# Rank 1 is stopped (SIGSTOP) once 2 trials are in: after --worker-timeout
# (30 s: well above a child's training, also under ASan on a loaded
# machine, or rank 2 would be given up too) its child fails and rank 2
# trains the rest. It is continued once the
# search has given it up, as a stalled process or a healed partition comes
# back: the job then ends normally (one that never comes back ends with
# MPI_Abort 10 s after the final training; not tested, as Open MPI's own
# exit status at that point is not nasc's).
"${MPIRUN[@]}" -np 3 "$NASC" search "${ARGS[@]}" --worker-timeout 30 --out "$TMP/h" >"$TMP/h.out" 2>"$TMP/h.err" &
mp=$!
wait_trials "$TMP/h/journal.jsonl" 2 || bad "no 2 trials in $TMP/h within 2 minutes"
pid=$(rank_pid "$TMP/h" 1)
if [ -n "$pid" ]; then kill -STOP "$pid"; else bad "rank 1 of $TMP/h not found"; fi
for i in $(seq 1200); do grep -q "gave no answer" "$TMP/h/journal.jsonl" && break; sleep 0.1; done
[ -n "$pid" ] && kill -CONT "$pid"
wait $mp
rc=$?
check "with a stalled worker the search completes and exits 0 (rc $rc: $(tail -3 "$TMP/h.err"))" '[ $rc -eq 0 ]'
check "the stalled worker's child failed, saying why" \
    '[ $(grep -c "rank 1 gave no answer within 30 s" "$TMP/h/journal.jsonl") -eq 1 ]'
check "rank 0 said so" 'grep -q "rank 1 gave no answer within 30 s" "$TMP/h.err"'
check "the journal holds the budget" '[ $(($(wc -l <"$TMP/h/journal.jsonl") - 1)) -eq $BUDGET ]'
check "every trial and proposal once" 'numbering "$TMP/h/journal.jsonl" $BUDGET'
check "the other worker trained the rest" '[ $(grep -c "\"rank\":2" "$TMP/h/journal.jsonl") -ge 5 ]'
check "the best was trained and exported" '[ -s "$TMP/h/best.onnx" ]'
check "the worker that came back stopped normally (no MPI_Abort)" '! grep -q "MPI_Abort" "$TMP/h.err"'

# --- 4. reinforce with controller replicas ------------------------------
"${MPIRUN[@]}" -np 4 "$NASC" search --space nasrl --layers 2 --strategy reinforce --replicas 2 \
    --children-per-replica 2 --budget 12 --synthetic 0.05 --out "$TMP/r" >"$TMP/r.out" 2>"$TMP/r.err"
rc=$?
check "reinforce with 2 replicas on 3 workers exits 0 (rc $rc: $(tail -3 "$TMP/r.err"))" '[ $rc -eq 0 ]'
check "each replica round sends a gradient (6 for 12 children of 2)" \
    '[ $(grep -c "controller: replica [01]: gradient of proposals" "$TMP/r.out") -eq 6 ]'
check "a gradient computed on an older copy says so" 'grep -q "staleness [1-9]" "$TMP/r.out"'
check "the gradients are in RUN/controller.log too" \
    '[ $(grep -c "^replica [01]: gradient of proposals" "$TMP/r/controller.log") -eq 6 ]'
check "the replica run has every trial once" 'numbering "$TMP/r/journal.jsonl" 12'
check "the replicas are in config.txt" 'grep -q "^replicas = 2$" "$TMP/r/config.txt"'

# --- 5. what does not run distributed ------------------------------------
"${MPIRUN[@]}" -np 2 "$NASC" search --space enas-micro --strategy enas --out "$TMP/e" >"$TMP/e.out" 2>"$TMP/e.err"
rc=$?
check "enas under mpirun -np 2 fails (rc $rc)" '[ $rc -ne 0 ]'
check "and says it runs in one process" 'grep -q "enas trains its shared weights in one process" "$TMP/e.err"'
check "nothing was written for it" '[ ! -e "$TMP/e/config.txt" ]'
"$NASC" search --space nasrl --strategy evolution --replicas 2 --budget 2 --out "$TMP/x" >/dev/null 2>"$TMP/x.err"
rc=$?
check "--replicas with evolution is a usage error (rc $rc)" '[ $rc -eq 2 ] && grep -q "for --strategy reinforce" "$TMP/x.err"'

echo "test_distributed: $pass passed, $fail failed"
[ $fail -eq 0 ]
