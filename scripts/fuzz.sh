#!/usr/bin/env bash
# Run every libFuzzer target of a fuzz build for a while.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS
#
# Each BUILD_DIR/fuzz_<name> runs for SECONDS (-max_total_time) on a copy of
# its seed corpus fuzz/corpus/<name>/ kept in BUILD_DIR/fuzz-corpus/<name>/
# (the repository is never written). A crash, leak, timeout or out-of-memory
# fails the script; the input that caused it is in BUILD_DIR/fuzz-artifacts/.
set -u -o pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
BUILD=$1
SECONDS_EACH=$2
case "$SECONDS_EACH" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a positive integer, got '$SECONDS_EACH'" >&2; exit 2 ;;
esac
REPO=$(cd "$(dirname "$0")/.." && pwd)

shopt -s nullglob
targets=()
for exe in "$BUILD"/fuzz_*; do
    [ -f "$exe" ] && [ -x "$exe" ] && targets+=("$exe")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz.sh: FAIL: no fuzz_* executable in $BUILD" >&2
    echo "fuzz.sh: configure with CC=clang cmake -DNASC_FUZZ=ON (make fuzz-build) and add fuzz/fuzz_*.c" >&2
    exit 1
fi

mkdir -p "$BUILD/fuzz-corpus" "$BUILD/fuzz-artifacts" "$BUILD/fuzz-logs"
summary=()
failed=0
for exe in "${targets[@]}"; do
    target=$(basename "$exe")
    name=${target#fuzz_}
    seeds="$REPO/fuzz/corpus/$name"
    corpus="$BUILD/fuzz-corpus/$name"
    artifacts="$BUILD/fuzz-artifacts/$name/"
    log="$BUILD/fuzz-logs/$name.log"
    rm -rf "$artifacts" # reproducers listed below are from this run only
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$seeds" ]; then
        cp -R "$seeds"/. "$corpus"/
    else
        echo "fuzz.sh: warning: no seed corpus $seeds for $target; starting from nothing" >&2
    fi
    nseeds=$(find "$corpus" -type f | wc -l)
    echo "fuzz.sh: $target for ${SECONDS_EACH}s on $nseeds inputs (log: $log)"
    "$exe" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        summary+=("FAIL  $target  exit $rc  (${runs:-?} runs)")
        echo "fuzz.sh: FAIL: $target exited with $rc; last lines of $log:" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
        for a in "$artifacts"*; do echo "fuzz.sh: reproducer: $a (run: $exe $a)" >&2; done
    else
        summary+=("ok    $target  ${runs:-?} runs, corpus $(find "$corpus" -type f | wc -l) inputs")
    fi
done

echo "fuzz.sh: summary (${SECONDS_EACH}s per target)"
for line in "${summary[@]}"; do echo "  $line"; done
echo "fuzz.sh: $(( ${#targets[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
