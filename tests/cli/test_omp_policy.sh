#!/usr/bin/env bash
# The nasc command's default OpenMP wait policy (cli/omp_policy.c): with
# neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT in its environment, nasc sets
# the variable cli/omp_policy.h names and executes itself once more; a value
# the user set is left alone; nasc never executes itself twice.
# What is observed is the OpenMP runtime's own report: with
# OMP_DISPLAY_ENV=verbose, GNU OpenMP prints the settings it read, once per
# process image it initializes, so an exec shows as a second report and the
# last report holds the policy nasc runs with. No code in nasc is there for
# this test. Exits 77 (skip) when the runtime is not GNU OpenMP (no
# GOMP_SPINCOUNT in its report).
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
if [ ! -x "$NASC_BIN" ]; then
    echo "test_omp_policy: FAIL: NASC_BIN=$NASC_BIN is not an executable" >&2
    exit 1
fi

# The chosen setting, from the header that defines it.
H=$NASC_SOURCE_DIR/cli/omp_policy.h
VAR=$(sed -n 's/^#define NASC_CLI_OMP_POLICY_VAR "\(.*\)"$/\1/p' "$H")
VALUE=$(sed -n 's/^#define NASC_CLI_OMP_POLICY_VALUE "\(.*\)"$/\1/p' "$H")
if [ -z "$VAR" ] || [ -z "$VALUE" ]; then
    echo "test_omp_policy: FAIL: no NASC_CLI_OMP_POLICY_VAR/VALUE in $H" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_omp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# nasc_env DESC WANT_RC [VAR=VALUE...] -- ARGS...: run nasc with the OpenMP
# variables removed from the environment, then the given ones added, and
# the runtime's report on (stdout to $TMP/out, stderr to $TMP/err). A
# timeout stops an exec loop.
nasc_env() {
    local desc=$1 want=$2
    shift 2
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose "${envs[@]}" \
        timeout 60 "$NASC_BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        bad "$desc: exit $rc, expected $want"
        sed 's/^/    stderr: /' "$TMP/err" | grep -v "^    stderr:   [A-Z_]* = " | head -10 >&2
        return 1
    fi
    ok
}
# the number of runtime reports in $TMP/err
reports() { grep -c "OPENMP DISPLAY ENVIRONMENT BEGIN" "$TMP/err"; }
# the value of NAME in the last report: "  NAME = 'VALUE'"
last_value() {
    awk -v name="$1" '/OPENMP DISPLAY ENVIRONMENT BEGIN/ { v = "" }
        $1 == name && $2 == "=" { v = $3; gsub(/\047/, "", v) } END { print v }' "$TMP/err"
}
# expect DESC WANT_REPORTS NAME WANT_VALUE
expect() {
    local n
    n=$(reports)
    if [ "$n" = "$2" ]; then ok; else bad "$1: $n runtime reports, expected $2"; fi
    local v
    v=$(last_value "$3")
    if [ "$v" = "$4" ]; then ok; else bad "$1: the runtime runs with $3=$v, expected $4"; fi
}

# The runtime's report, without nasc: GNU OpenMP or a skip.
nasc_env "report" 0 GOMP_SPINCOUNT=300000 -- --version || exit 1
if ! grep -q "^ *GOMP_SPINCOUNT = " "$TMP/err"; then
    echo "SKIP: the OpenMP runtime nasc loads is not GNU OpenMP (OMP_DISPLAY_ENV=verbose reports no GOMP_SPINCOUNT)"
    exit 77
fi

# 1. Neither variable set: one exec, and the runtime of the second image
#    runs with the chosen setting; the command's output is there once.
if nasc_env "default" 0 -- --version; then
    expect "default" 2 "$VAR" "$(echo "$VALUE" | tr a-z A-Z)"
    if [ "$(grep -c . "$TMP/out")" = 1 ] && grep -q "^nasc " "$TMP/out"; then ok; else
        bad "default: --version printed '$(cat "$TMP/out")', expected one 'nasc VERSION' line"
    fi
fi
# the exit code and message of a failing command come through the exec
if nasc_env "default, unknown verb" 2 -- no-such-verb; then
    n=$(grep -c "unknown verb 'no-such-verb'" "$TMP/err")
    [ "$n" = 1 ] && ok || bad "default, unknown verb: the message printed $n times, expected once"
    [ "$(reports)" = 2 ] && ok || bad "default, unknown verb: $(reports) runtime reports, expected 2"
fi

# 2. The user's setting wins, whatever it is: no exec, the runtime runs
#    with it.
nasc_env "OMP_WAIT_POLICY=active" 0 OMP_WAIT_POLICY=active -- --version &&
    expect "OMP_WAIT_POLICY=active" 1 OMP_WAIT_POLICY ACTIVE
nasc_env "OMP_WAIT_POLICY=passive" 0 OMP_WAIT_POLICY=passive -- --version &&
    expect "OMP_WAIT_POLICY=passive" 1 OMP_WAIT_POLICY PASSIVE
nasc_env "GOMP_SPINCOUNT=12345" 0 GOMP_SPINCOUNT=12345 -- --version &&
    expect "GOMP_SPINCOUNT=12345" 1 GOMP_SPINCOUNT 12345
# set but empty is set: the runtime's default, as the user asked
nasc_env "OMP_WAIT_POLICY empty" 0 OMP_WAIT_POLICY= -- --version &&
    expect "OMP_WAIT_POLICY empty" 1 GOMP_SPINCOUNT 300000

# 2b. Threads bound to places: no exec (the runtime bound the first thread
#     before main; a second image would inherit that one place as its CPU
#     set), and the runtime's default spin.
nasc_env "OMP_PROC_BIND=true" 0 OMP_PROC_BIND=true -- --version &&
    expect "OMP_PROC_BIND=true" 1 GOMP_SPINCOUNT 300000
nasc_env "OMP_PLACES=threads" 0 OMP_PLACES=threads -- --version &&
    expect "OMP_PLACES=threads" 1 GOMP_SPINCOUNT 300000
# unbound (OMP_PROC_BIND=false) is the default case: one exec
nasc_env "OMP_PROC_BIND=false" 0 OMP_PROC_BIND=false -- --version &&
    expect "OMP_PROC_BIND=false" 2 "$VAR" "$(echo "$VALUE" | tr a-z A-Z)"

# 3. Started by the dynamic loader named on the command line,
#    /proc/self/exe is the loader: nasc must not execute it (it would run
#    something else), and runs on with the runtime's default.
interp=$(readelf -l "$NASC_BIN" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
if [ -n "$interp" ] && [ -x "$interp" ]; then
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose \
        timeout 60 "$interp" "$NASC_BIN" --version >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" = 0 ] && grep -q "^nasc " "$TMP/out"; then ok; else
        bad "run by $interp: exit $rc, output '$(head -1 "$TMP/out")'"
    fi
    expect "run by $interp" 1 GOMP_SPINCOUNT 300000
else
    echo "note: no program interpreter found with readelf; the run through the loader was not checked"
fi

echo "test_omp_policy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
