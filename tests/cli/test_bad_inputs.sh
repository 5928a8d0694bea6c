#!/usr/bin/env bash
# Every file of the bad-input corpus must be rejected with exit code 1 and a
# diagnostic at the place its first line names:
#
#   # expect: LINE:COL: SUBSTRING
#
# means stderr of `nasc check FILE` has a line that starts with
# `FILE:LINE:COL: error: ` and contains SUBSTRING. A crash, a signal, a
# sanitizer report (ASan, LeakSanitizer, UBSan) or exit code 0/2 is a failure.
# CTest sets NASC_BIN and NASC_SOURCE_DIR.
set -u

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
MIN_FILES=30

cd "$NASC_SOURCE_DIR" || { echo "test_bad_inputs: FAIL: cannot cd to $NASC_SOURCE_DIR" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_bad.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

shopt -s nullglob
files=(tests/bad/yaml/*.yaml tests/bad/text/*.nir)
passed=0
failed=0

report() {
    local file=$1 why=$2 expected=$3
    failed=$((failed + 1))
    {
        echo "FAIL: $file: $why"
        echo "    expected: exit 1 and a stderr line starting with '$expected'"
        echo "    actual exit code: $rc"
        if [ -s "$TMP/err" ]; then sed 's/^/    stderr: /' "$TMP/err" | head -30; else echo "    stderr: (empty)"; fi
    } >&2
}

for f in "${files[@]}"; do
    header=$(head -n 1 "$f")
    rc="(not run)"
    if [[ ! "$header" =~ ^#\ expect:\ ([0-9]+):([0-9]+):\ (.+)$ ]]; then
        : >"$TMP/err"
        report "$f" "first line is not '# expect: LINE:COL: SUBSTRING' (got '$header')" "?"
        continue
    fi
    line=${BASH_REMATCH[1]}
    col=${BASH_REMATCH[2]}
    want=${BASH_REMATCH[3]}
    prefix="$f:$line:$col: error: "

    "$NASC_BIN" check "$f" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -ge 128 ]; then
        report "$f" "killed by a signal or a sanitizer abort" "$prefix... $want"
        continue
    fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$TMP/err"; then
        report "$f" "sanitizer report" "$prefix... $want"
        continue
    fi
    if [ "$rc" -ne 1 ]; then
        report "$f" "exit code $rc, expected 1" "$prefix... $want"
        continue
    fi
    if ! PREFIX="$prefix" WANT="$want" awk '
        index($0, ENVIRON["PREFIX"]) == 1 && index(substr($0, length(ENVIRON["PREFIX"]) + 1), ENVIRON["WANT"]) > 0 { found = 1 }
        END { exit found ? 0 : 1 }' "$TMP/err"; then
        report "$f" "no matching diagnostic" "$prefix... $want"
        continue
    fi
    passed=$((passed + 1))
done

echo "test_bad_inputs: $passed passed, $failed failed (${#files[@]} files)"
if [ "${#files[@]}" -lt "$MIN_FILES" ]; then
    echo "FAIL: the bad-input corpus has ${#files[@]} files, at least $MIN_FILES are required" >&2
    exit 1
fi
[ "$failed" -eq 0 ]
