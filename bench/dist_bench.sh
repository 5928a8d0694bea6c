#!/usr/bin/env bash
# The distributed search's machinery measured (docs/distributed.md).
#
#   bench/dist_bench.sh [--nasc NASC] synthetic [NP...]   (default NP: 2 3 5 9 17 33)
#     mpirun -np NP with the synthetic evaluator (a child sleeps --child
#     seconds, default 0.5; the reward comes from its hash): trials per
#     second against the ideal (workers / child seconds), rank 0's time per
#     trial (and how much of it is the journal and the strategy state), the
#     bytes of a task and of a result message. Ranks beyond the cores are
#     oversubscribed; sleeping children leave the cores to rank 0.
#   bench/dist_bench.sh [--nasc NASC] speedup
#     a CPU-bound search (random on nasrl, real training, one thread per
#     worker) with 1 and then 2 worker ranks: wall time and the speed-up.
#     Run it on a quiet machine; 2 cores suffice, as rank 0 mostly sleeps.
#
# Options: --nasc NASC (default build/nasc), --budget N, --child SEC,
# --strategy S (synthetic: random, reinforce, evolution; default random).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NASC=$ROOT/build/nasc
BUDGET=
CHILD=0.5
STRATEGY=random
while [ $# -gt 0 ]; do
    case $1 in
    --nasc) NASC=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --child) CHILD=$2; shift 2 ;;
    --strategy) STRATEGY=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
    esac
done
MODE=${1:-synthetic}
shift || true
command -v mpirun >/dev/null || { echo "dist_bench: mpirun not found (openmpi-bin)" >&2; exit 1; }
"$NASC" search --help | grep -q "^This nasc: built with" || { echo "dist_bench: $NASC has no MPI" >&2; exit 1; }
MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
TMP=$(mktemp -d /tmp/nasc-dist-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$NASC" search --help | grep '^This nasc' | sed 's/^This nasc: //')"

if [ "$MODE" = synthetic ]; then
    NPS=("$@")
    [ ${#NPS[@]} -eq 0 ] && NPS=(2 3 5 9 17 33)
    EXTRA=()
    [ "$STRATEGY" = reinforce ] && EXTRA=(--replicas 4 --children-per-replica 2)
    printf "%4s %7s %7s %9s %9s %8s %13s %12s %8s %8s\n" np workers trials "trials/s" "ideal/s" "ratio" "rank0 ms/tr" "journal+state" "task B" "result B"
    for np in "${NPS[@]}"; do
        w=$((np - 1))
        b=${BUDGET:-$((w * 20 > 40 ? w * 20 : 40))}
        out=$TMP/s$np
        "${MPIRUN[@]}" -np "$np" "$NASC" search --space nasrl --layers 4 --strategy "$STRATEGY" "${EXTRA[@]}" \
            --budget "$b" --synthetic "$CHILD" --out "$out" >"$out.out" 2>"$out.err" ||
            { echo "np $np failed: $(tail -3 "$out.err")" >&2; continue; }
        line=$(grep '^distributed:' "$out.out")
        # distributed: N ranks, W workers x T threads (L given up); K trials in S s = R trials/s; rank 0 busy
        # B ms per trial (J ms of it journal and strategy state); messages: task X bytes, result Y bytes ...
        /usr/bin/python3 - "$line" "$w" "$CHILD" <<'PY'
import re, sys
line, w, child = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
g = lambda pat: re.search(pat, line).group(1)
rate, busy, rec = float(g(r"= ([0-9.]+) trials/s")), float(g(r"busy ([0-9.]+) ms")), float(g(r"\(([0-9.]+) ms of it"))
trials = int(g(r"; ([0-9]+) trials in"))
task, res = int(g(r"task ([0-9]+) bytes")), int(g(r"result ([0-9]+) bytes"))
ideal = w / child
print("%4d %7d %7d %9.2f %9.2f %8.3f %13.2f %12.2f %8d %8d" % (w + 1, w, trials, rate, ideal, rate / ideal, busy, rec, task, res))
PY
    done
    exit 0
fi

if [ "$MODE" = speedup ]; then
    b=${BUDGET:-16}
    ARGS=(--space nasrl --layers 3 --strategy random --budget "$b" --epochs-per-trial 1 --train-subset 2000
          --val-size 1000 --final-epochs 1 --threads 1 --seed 5 --set channels=16)
    echo "search: ${ARGS[*]}"
    declare -A wall
    for np in 2 3; do
        out=$TMP/p$np
        t0=$(date +%s.%N)
        "${MPIRUN[@]}" -np "$np" "$NASC" search "${ARGS[@]}" --out "$out" >"$out.out" 2>"$out.err" ||
            { echo "np $np failed: $(tail -3 "$out.err")" >&2; exit 1; }
        t1=$(date +%s.%N)
        line=$(grep '^distributed:' "$out.out")
        s=$(echo "$line" | sed -n 's/.* trials in \([0-9.]*\) s .*/\1/p')
        wall[$np]=$s
        echo "np $np ($((np - 1)) worker rank$([ $np -gt 2 ] && echo s), 1 thread each): the $b trials in $s s (whole run with the final training $(/usr/bin/python3 -c "print(round($t1 - $t0, 1))") s)"
    done
    echo "speed-up of the trials, 1 -> 2 worker ranks: $(/usr/bin/python3 -c "print(round(${wall[2]} / ${wall[3]}, 3))")x"
    # the same architectures and rewards either way
    for np in 2 3; do
        /usr/bin/python3 -c '
import json, sys
rows = sorted("%s %r" % (r["decisions"], r["reward"]) for r in map(json.loads, open(sys.argv[1]).read().splitlines()[1:]))
print("\n".join(rows))' "$TMP/p$np/journal.jsonl" >"$TMP/p$np.trials"
    done
    cmp -s "$TMP/p2.trials" "$TMP/p3.trials" && echo "both runs trained the same architectures to the same rewards" ||
        echo "warning: the two runs' trials differ"
    exit 0
fi
echo "dist_bench: unknown mode '$MODE' (synthetic or speedup)" >&2
exit 2
