#!/usr/bin/env bash
# ONNX's own node test cases through `nasc test-onnx` (import, oneDNN
# inference, every output compared with rtol 1e-3 / atol 1e-5): every case
# of tests/onnx/cases.txt (found in Debian's libonnx-testdata, or in
# $NASC_ONNX_NODE_DIR), then the extra cases of tests/onnx/extra.txt
# (tests/onnx/cases/, made by tests/onnx/make_cases.py). Passes only when
# the last line of each run says that every case passed. Without
# libonnx-testdata it prints "SKIP: <reason>" and exits 77.
#
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
NODE_DIR=${NASC_ONNX_NODE_DIR:-/usr/share/libonnx-testdata/data/node}
START=$SECONDS

die() {
    echo "test_onnx_cases: FAIL: $*" >&2
    exit 1
}
[ -x "$NASC_BIN" ] || die "NASC_BIN=$NASC_BIN is not an executable"
. "$NASC_SOURCE_DIR/tests/prereq.sh"
need_dir "$NODE_DIR" "libonnx-testdata, or set NASC_ONNX_NODE_DIR"

# run LIST DIR: test-onnx on every case named in LIST (comments skipped), under DIR
run() {
    local list=$1 dir=$2 out n
    local cases=()
    while IFS= read -r line; do
        line=${line%%#*}
        line=${line//[[:space:]]/}
        [ -n "$line" ] && cases+=("$dir/$line")
    done <"$list"
    n=${#cases[@]}
    [ "$n" -gt 0 ] || die "$list names no case"
    out=$("$NASC_BIN" test-onnx "${cases[@]}" 2>&1)
    local rc=$?
    echo "$out"
    local last
    last=$(printf '%s\n' "$out" | tail -n 1)
    [ "$last" = "$n passed, 0 failed" ] || die "$list: expected '$n passed, 0 failed', got '$last' (exit $rc)"
    [ "$rc" -eq 0 ] || die "$list: all passed but the exit status is $rc"
}

run "$NASC_SOURCE_DIR/tests/onnx/cases.txt" "$NODE_DIR"
run "$NASC_SOURCE_DIR/tests/onnx/extra.txt" "$NASC_SOURCE_DIR/tests/onnx/cases"

# a failing case must say FAIL and make the run fail
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_onnx.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp -r "$NODE_DIR/test_relu" "$TMP/broken_relu"
cp "$NODE_DIR/test_sigmoid/test_data_set_0/output_0.pb" "$TMP/broken_relu/test_data_set_0/output_0.pb"
out=$("$NASC_BIN" test-onnx "$NODE_DIR/test_tanh" "$TMP/broken_relu" "$NODE_DIR/test_maxpool_3d_default" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -q '^FAIL broken_relu: .*element' || die "a wrong output was not reported: $out"
printf '%s\n' "$out" | grep -q "^FAIL test_maxpool_3d_default: .*rank 5" || die "an unsupported case was not reported: $out"
[ "$(printf '%s\n' "$out" | tail -n 1)" = "1 passed, 2 failed" ] || die "wrong summary: $out"
[ "$rc" -eq 1 ] || die "failing cases gave exit status $rc, expected 1"

echo "test_onnx_cases: PASS ($((SECONDS - START)) s)"
