#!/usr/bin/env bash
# nasc built without MPI (-DNASC_MPI=OFF; `make test` builds one in
# build-matrix/gcc-Release-nompi): its help says so, a search runs in one
# process, and started as one of several mpirun ranks it refuses with a
# clear error before writing anything. Usage: check_nompi.sh NASC
set -u -o pipefail
NASC=${1:?usage: check_nompi.sh NASC}
TMP=$(mktemp -d /tmp/nasc-nompi-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }

"$NASC" search --help >"$TMP/help"
check "search --help says the build has no MPI" 'grep -q "^This nasc: built without MPI" "$TMP/help"'
ARGS=(--space nasrl --layers 2 --strategy random --budget 3 --synthetic 0.01)
"$NASC" search "${ARGS[@]}" --out "$TMP/one" >"$TMP/one.out" 2>"$TMP/one.err"
rc=$?
check "a search in one process works (rc $rc: $(tail -2 "$TMP/one.err"))" '[ $rc -eq 0 ] && [ $(wc -l <"$TMP/one/journal.jsonl") -eq 4 ]'
# as mpirun starts each rank: its environment says there are 3
OMPI_COMM_WORLD_SIZE=3 OMPI_COMM_WORLD_RANK=1 "$NASC" search "${ARGS[@]}" --out "$TMP/r" >"$TMP/r.out" 2>"$TMP/r.err"
rc=$?
check "as one of 3 ranks it fails (rc $rc)" '[ $rc -eq 1 ]'
check "saying a distributed search needs nasc built with Open MPI ($(cat "$TMP/r.err"))" \
    'grep -q "built without MPI: a distributed search needs nasc built with Open MPI" "$TMP/r.err"'
check "and writing nothing" '[ ! -e "$TMP/r" ]'
if command -v mpirun >/dev/null 2>&1; then
    MPIRUN=(mpirun --oversubscribe)
    [ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
    "${MPIRUN[@]}" -np 2 "$NASC" search "${ARGS[@]}" --out "$TMP/m" >"$TMP/m.out" 2>"$TMP/m.err"
    rc=$?
    check "under mpirun -np 2 it fails (rc $rc)" '[ $rc -ne 0 ]'
    check "every rank says why" '[ $(grep -c "built without MPI: a distributed search" "$TMP/m.err") -eq 2 ]'
    check "and nothing was written" '[ ! -e "$TMP/m" ]'
fi
echo "check_nompi: $pass passed, $fail failed"
[ $fail -eq 0 ]
