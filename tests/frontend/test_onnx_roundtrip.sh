#!/usr/bin/env bash
# Export -> import round trip: every CNN model of the zoo (models/*.yaml;
# the recurrent ones are left out: ONNX import does not read an unrolled
# language model back into nasc's embedding ops) is exported with
# `nasc export M -o m.onnx`; then `nasc dump m.onnx --level prim` must
# equal `nasc dump M --level prim` but for the `group` lines (ONNX has no
# cost-report groups: imported ops are all in group "onnx";
# docs/onnx-import.md). With Debian's python (onnx, numpy) it also runs
# both on one random input with `nasc run` (the same fresh weights: the
# export writes the default-seed weights that `nasc run M` makes) and the
# outputs must be byte for byte the same. Without them the structural
# checks still run, and then the test prints "SKIP: <reason>" and exits 77
# (not run in full), unless something failed.
#
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
PY=/usr/bin/python3
START=$SECONDS
die() {
    echo "test_onnx_roundtrip: FAIL: $*" >&2
    exit 1
}
[ -x "$NASC_BIN" ] || die "NASC_BIN=$NASC_BIN is not an executable"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_roundtrip.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

numeric=0
if [ -x "$PY" ] && "$PY" -c 'import onnx, numpy' 2>/dev/null; then
    numeric=1
else
    echo "test_onnx_roundtrip: note: $PY cannot import onnx and numpy; the numeric comparison will not run"
fi

n=0
for m in "$NASC_SOURCE_DIR"/models/*.yaml; do
    b=$(basename "$m" .yaml)
    grep -q '^kind: recurrent' "$m" && continue
    "$NASC_BIN" export "$m" -o "$TMP/$b.onnx" >"$TMP/log" 2>&1 || die "$b: nasc export failed: $(cat "$TMP/log")"
    "$NASC_BIN" dump "$m" --level prim >"$TMP/$b.ref.nir" 2>"$TMP/log" || die "$b: dump of the model: $(cat "$TMP/log")"
    "$NASC_BIN" dump "$TMP/$b.onnx" --level prim >"$TMP/$b.onnx.nir" 2>"$TMP/log" ||
        die "$b: dump of the ONNX file: $(cat "$TMP/log")"
    if ! diff <(grep -v '^  group' "$TMP/$b.ref.nir") <(grep -v '^  group' "$TMP/$b.onnx.nir") >"$TMP/diff"; then
        head -40 "$TMP/diff" >&2
        die "$b: the imported prim module differs from the model's"
    fi
    # the re-imported text parses and prints back the same
    "$NASC_BIN" dump "$TMP/$b.onnx.nir" --level prim >"$TMP/$b.again.nir" 2>"$TMP/log" || die "$b: $(cat "$TMP/log")"
    cmp -s "$TMP/$b.onnx.nir" "$TMP/$b.again.nir" || die "$b: the imported module's text does not round-trip"
    if [ "$numeric" = 1 ]; then
        shape=$(grep -m1 '^  input ' "$TMP/$b.ref.nir" | sed 's/.*\[N,\(.*\)\]/\1/')
        "$PY" - "$shape" "$TMP/in.pb" <<'PYEOF' || die "$b: cannot write the input"
import sys
import numpy as np
from onnx import numpy_helper
dims = [2] + [int(d) for d in sys.argv[1].split(",")]
x = np.random.RandomState(7).randn(*dims).astype(np.float32)
open(sys.argv[2], "wb").write(numpy_helper.from_array(x, "x").SerializeToString())
PYEOF
        "$NASC_BIN" run "$m" --input "$TMP/in.pb" --output "$TMP/a.pb" >"$TMP/log" 2>&1 || die "$b: nasc run M: $(cat "$TMP/log")"
        "$NASC_BIN" run "$TMP/$b.onnx" --input "$TMP/in.pb" --output "$TMP/b.pb" >"$TMP/log" 2>&1 ||
            die "$b: nasc run m.onnx: $(cat "$TMP/log")"
        cmp -s "$TMP/a.pb" "$TMP/b.pb" || die "$b: nasc run gives other outputs for the model and its ONNX export"
    fi
    echo "ok $b"
    n=$((n + 1))
done
[ "$n" -ge 5 ] || die "only $n models were checked"
if [ "$numeric" = 0 ]; then
    echo "SKIP: $PY cannot import onnx and numpy (python3-onnx, python3-numpy; run \`make deps\`): the $n models" \
        "round-trip, but nasc run was not compared on the model and its export"
    exit 77
fi
echo "test_onnx_roundtrip: PASS ($n models, $((SECONDS - START)) s)"
