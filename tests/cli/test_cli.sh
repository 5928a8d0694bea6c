#!/usr/bin/env bash
# The nasc command against the model zoo: exit codes, help, check reports,
# text IR round trips through files, DOT output and --set overrides.
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
# Without graphviz's `dot` everything else runs, and then the test prints
# "SKIP: <reason>" and exits 77 (not run in full), unless something failed.
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
if [ ! -x "$NASC_BIN" ]; then
    echo "test_cli: FAIL: NASC_BIN=$NASC_BIN is not an executable" >&2
    exit 1
fi

have_dot=1
command -v dot >/dev/null || have_dot=0

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# run EXPECTED_RC DESCRIPTION CMD...: run CMD (stdout to $TMP/out, stderr to
# $TMP/err) and check its exit code.
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

# check that file $1 contains the fixed string $2
contains() {
    if grep -qF -- "$2" "$1"; then ok; else
        bad "$3: expected to find '$2'"
        sed 's/^/    got: /' "$1" | head -10 >&2
    fi
}

# The total params and macs of a `check --json` report, as "PARAMS MACS".
totals() {
    sed -n 's/.*"total":{"params":\([0-9-]*\),"macs":\([0-9-]*\).*/\1 \2/p' "$1"
}

# ------------------------------------------------------------------ #
# Command line basics                                                 #
# ------------------------------------------------------------------ #

run 0 "--version" "$NASC_BIN" --version && contains "$TMP/out" "nasc " "--version output"
run 0 "--help" "$NASC_BIN" --help && contains "$TMP/out" "usage: nasc" "--help output"
run 0 "help" "$NASC_BIN" help
for verb in check dump; do
    run 0 "help $verb" "$NASC_BIN" help "$verb" && contains "$TMP/out" "usage: nasc $verb" "help $verb"
    run 0 "$verb --help" "$NASC_BIN" "$verb" --help && contains "$TMP/out" "usage: nasc $verb" "$verb --help"
done
run 2 "no verb" "$NASC_BIN"
run 2 "unknown verb" "$NASC_BIN" frobnicate && contains "$TMP/err" "unknown verb" "unknown verb message"
run 2 "help of an unknown verb" "$NASC_BIN" help frobnicate
run 2 "unknown global option" "$NASC_BIN" --frobnicate
run 2 "unknown check option" "$NASC_BIN" check --frobnicate x.yaml && contains "$TMP/err" "unknown option" "unknown option message"
run 2 "unknown dump option" "$NASC_BIN" dump x.yaml --frobnicate
run 2 "check without a model" "$NASC_BIN" check
run 2 "dump without a model" "$NASC_BIN" dump
run 2 "--level without its value" "$NASC_BIN" dump x.yaml --level
run 2 "bad --level" "$NASC_BIN" dump x.yaml --level bogus
run 2 "bad --format" "$NASC_BIN" dump x.yaml --format png
run 2 "unknown pass" "$NASC_BIN" dump x.yaml --after bogus
run 2 "--set without =" "$NASC_BIN" check x.yaml --set input
run 2 "two models" "$NASC_BIN" check a.yaml b.yaml
run 0 "dump --after help" "$NASC_BIN" dump --after help &&
    contains "$TMP/out" "frontend" "pass list" && contains "$TMP/out" "lower" "pass list"
run 1 "missing model file" "$NASC_BIN" check "$TMP/does-not-exist.yaml" &&
    contains "$TMP/err" "$TMP/does-not-exist.yaml" "missing file message"

# ------------------------------------------------------------------ #
# The model zoo                                                       #
# ------------------------------------------------------------------ #

shopt -s nullglob
models=("$NASC_SOURCE_DIR"/models/*.yaml)
if [ ${#models[@]} -eq 0 ]; then
    bad "no models in $NASC_SOURCE_DIR/models/*.yaml"
fi
# and conv with a dilation per axis and channel groups (SMASH's settings)
DG="$NASC_SOURCE_DIR"/tests/export/conv-dilation-groups.yaml
models+=("$DG")
if run 0 "dump --level prim conv-dilation-groups" "$NASC_BIN" dump --level prim "$DG"; then
    for want in 'c1.conv = conv .*{kernel=3x5, stride=1x1, pad=2,2,2,2, dilation=2x1, groups=1}' \
        'c2.conv = conv .*{kernel=5x3, stride=2x2, pad=2,3,2,3, dilation=1x3, groups=4}' \
        'c3.conv = conv .*{kernel=3x3, stride=1x1, pad=2,2,2,2, dilation=2x2, groups=8}' \
        'param %body.c3.conv.w : f32\[32,4,3,3\]'; do
        grep -q "$want" "$TMP/out" && ok || bad "conv-dilation-groups: no '$want' in the prim dump"
    done
fi

for model in "${models[@]}"; do
    name=$(basename "$model" .yaml)
    d="$TMP/$name"
    mkdir -p "$d"

    run 0 "check $name" "$NASC_BIN" check "$model" || continue
    contains "$TMP/out" "hash" "check $name report"
    run 0 "check --json $name" "$NASC_BIN" check --json "$model" || continue
    cp "$TMP/out" "$d/check.json"
    base=$(totals "$d/check.json")
    if [ -z "$base" ]; then bad "check --json $name: no total in $(cat "$d/check.json")"; continue; fi
    recurrent=0
    grep -qF '"kind":"recurrent"' "$d/check.json" && recurrent=1

    # Arch text round trip through a file.
    run 0 "dump $name" "$NASC_BIN" dump --level arch "$model" -o "$d/arch.nir" || continue
    run 0 "dump $name to stdout" "$NASC_BIN" dump "$model" &&
        { cmp -s "$TMP/out" "$d/arch.nir" && ok || bad "dump $name: -o and stdout differ"; }
    run 0 "dump $name.nir" "$NASC_BIN" dump "$d/arch.nir" -o "$d/arch2.nir" &&
        { cmp -s "$d/arch.nir" "$d/arch2.nir" && ok ||
            { bad "dump of $name.nir does not give the same bytes"; diff "$d/arch.nir" "$d/arch2.nir" | head -20 >&2; }; }
    run 0 "check $name.nir" "$NASC_BIN" check --json "$d/arch.nir" &&
        { [ "$(totals "$TMP/out")" = "$base" ] && ok || bad "check of $name.nir: totals $(totals "$TMP/out") != $base"; }

    # DOT of the cells renders.
    if [ "$have_dot" = 0 ]; then :; elif "$NASC_BIN" dump --format dot "$model" >"$d/arch.dot" 2>"$TMP/err" &&
        dot -Tsvg "$d/arch.dot" -o "$d/arch.svg" 2>>"$TMP/err"; then ok; else
        bad "dump --format dot $name | dot -Tsvg"
        head -5 "$TMP/err" >&2
    fi

    # --set input changes the cost (pick an input the model does not have).
    if [ "$recurrent" = 1 ]; then
        cur=$(sed -n 's/.*"input":\[\([0-9]*\),.*/\1/p' "$d/check.json")
        newin=$((cur + 8))
    else
        newin=3x32x32
        grep -qF '"input":[3,32,32]' "$d/check.json" && newin=1x28x28
    fi
    if run 0 "check $name --set input=$newin" "$NASC_BIN" check --json "$model" --set "input=$newin"; then
        changed=$(totals "$TMP/out")
        read -r p0 m0 <<<"$base"
        read -r p1 m1 <<<"$changed"
        if [ "$recurrent" = 1 ]; then
            [ "$p0" != "$p1" ] && ok || bad "$name: --set input=$newin left params at $p0"
        else
            [ "$m0" != "$m1" ] && ok || bad "$name: --set input=$newin left macs at $m0"
            # the stem's input channels change (1 <-> 3), so its weights do
            [ "$p0" != "$p1" ] && ok || bad "$name: --set input=$newin left params at $p0"
        fi
    fi
    run 1 "check $name --set bogus=1" "$NASC_BIN" check "$model" --set bogus=1 &&
        contains "$TMP/err" "bogus" "--set bogus=1 message"
    run 1 "dump $name --set bogus=1" "$NASC_BIN" dump "$model" --set bogus=1

    # Prim level: from the YAML and from its arch .nir, the same bytes.
    if [ "$recurrent" = 1 ]; then
        # unrolled over the default 35 steps: the same parameters, 35 times
        # the multiply-adds of a step
        run 0 "dump --level prim of recurrent $name" "$NASC_BIN" dump --level prim "$model" -o "$d/prim.nir" || continue
        run 0 "dump of $name prim .nir" "$NASC_BIN" dump "$d/prim.nir" -o "$d/prim3.nir" &&
            { cmp -s "$d/prim.nir" "$d/prim3.nir" && ok || bad "prim .nir of $name does not round-trip"; }
        grep -q 'input %x : f32\[N,35\]' "$d/prim.nir" && ok || bad "$name: the prim module does not read 35 tokens"
        if run 0 "check of $name prim .nir" "$NASC_BIN" check --json "$d/prim.nir"; then
            read -r p0 m0 <<<"$base"
            read -r p1 m1 <<<"$(totals "$TMP/out")"
            [ "$p1" = "$p0" ] && ok || bad "$name: the unrolled net has $p1 parameters, the cell's report $p0"
            [ "$m1" = "$((35 * m0))" ] && ok || bad "$name: the unrolled net does $m1 multiply-adds, not 35 x $m0"
        fi
        continue
    fi
    run 0 "dump --level prim $name" "$NASC_BIN" dump --level prim "$model" -o "$d/prim.nir" || continue
    run 0 "dump --after lower $name.nir" "$NASC_BIN" dump --after lower "$d/arch.nir" -o "$d/prim2.nir" &&
        { cmp -s "$d/prim.nir" "$d/prim2.nir" && ok || bad "prim dump of $name and of its .nir differ"; }
    # The prim text round-trips and can be checked; its cost is the model's.
    run 0 "dump of $name prim .nir" "$NASC_BIN" dump "$d/prim.nir" -o "$d/prim3.nir" &&
        { cmp -s "$d/prim.nir" "$d/prim3.nir" && ok || bad "prim .nir of $name does not round-trip"; }
    run 1 "dump --level arch of a prim .nir ($name)" "$NASC_BIN" dump --level arch "$d/prim.nir"
    run 0 "check of $name prim .nir" "$NASC_BIN" check --json "$d/prim.nir" &&
        { [ "$(totals "$TMP/out")" = "$base" ] && ok || bad "check of $name prim .nir: totals $(totals "$TMP/out") != $base"; }
    if [ "$have_dot" = 0 ]; then :; elif "$NASC_BIN" dump --level prim --format dot "$model" 2>"$TMP/err" |
        dot -Tsvg -o "$d/prim.svg" 2>>"$TMP/err" && [ -s "$d/prim.svg" ]; then ok; else
        bad "dump --level prim --format dot $name | dot -Tsvg"
        head -5 "$TMP/err" >&2
    fi
done

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
if [ "$have_dot" = 0 ]; then
    echo "SKIP: dot is not on PATH (graphviz; run \`make deps\`): the DOT output was not rendered"
    exit 77
fi
