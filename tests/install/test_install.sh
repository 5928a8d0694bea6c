#!/usr/bin/env bash
# What a user gets from `cmake --install`: the build under test is installed
# into a temporary prefix, and examples/train_export.c is compiled against
# that tree with nothing but `pkg-config --cflags --libs nasc` (so the
# installed public headers must be complete on their own), once linked to
# libnasc.so and once, with --static, to libnasc.a. Each program trains
# tests/install/tiny-cnn.yaml for a few steps on Fashion-MNIST and writes an
# ONNX file, which must be non-empty and pass onnx.checker (when
# /usr/bin/python3 has the onnx module).
#
# CTest sets NASC_BIN (the nasc executable; its directory is the build
# directory) and NASC_SOURCE_DIR (the repo). The example is compiled with
# the build's compiler, with the sanitizer flags when the build has
# NASC_SANITIZE or NASC_FUZZ on (libnasc then needs their runtime), and with
# -Werror when it has NASC_WERROR on. Exits 77 (skipped) when
# dataset-fashion-mnist is not installed.
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
SRC=$NASC_SOURCE_DIR
BUILD=$(cd "$(dirname "$NASC_BIN")" && pwd)
CACHE=$BUILD/CMakeCache.txt
DATA=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3

die() {
    echo "test_install: FAIL: $*" >&2
    exit 1
}
[ -f "$CACHE" ] || die "$CACHE is missing: NASC_BIN=$NASC_BIN is not in a CMake build directory"
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    echo "test_install: SKIP: Fashion-MNIST is not in $DATA: install dataset-fashion-mnist (\`make deps\`)" >&2
    exit 77
fi
command -v pkg-config >/dev/null || die "pkg-config is not on PATH"

# cache VAR: the value of VAR in the build's CMakeCache.txt ("" when unset)
cache() { sed -n "s/^$1:[A-Z]*=//p" "$CACHE" | head -n 1; }
is_on() { case "$1" in ON | on | TRUE | true | YES | yes | 1) return 0 ;; *) return 1 ;; esac; }
CMAKE=$(cache CMAKE_COMMAND)
CC=$(cache CMAKE_C_COMPILER)
VERSION=$(cache CMAKE_PROJECT_VERSION)
[ -x "$CMAKE" ] || die "CMAKE_COMMAND '$CMAKE' from $CACHE is not an executable"
[ -x "$CC" ] || die "CMAKE_C_COMPILER '$CC' from $CACHE is not an executable"
CFLAGS=(-std=c11 -Wall -Wextra)
if is_on "$(cache NASC_WERROR)"; then CFLAGS+=(-Werror); fi
if is_on "$(cache NASC_SANITIZE)" || is_on "$(cache NASC_FUZZ)"; then
    CFLAGS+=(-fsanitize=address,undefined -fno-omit-frame-pointer -g)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nasc_test_install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix

# 1. Install, and look at what arrived.
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 ||
    { cat "$TMP/install.log" >&2; die "cmake --install $BUILD --prefix $PREFIX failed"; }
PC=$(find "$PREFIX" -name nasc.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$PC" ] || die "no pkgconfig/nasc.pc under $PREFIX"
LIBDIR=$(dirname "$(dirname "$PC")")
[ -x "$PREFIX/bin/nasc" ] || die "$PREFIX/bin/nasc is missing"
[ -f "$LIBDIR/libnasc.a" ] || die "$LIBDIR/libnasc.a is missing"
[ -e "$LIBDIR/libnasc.so" ] || die "$LIBDIR/libnasc.so is missing"
soname=$(readelf -d "$LIBDIR/libnasc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] || die "libnasc.so has no SONAME"
[ -e "$LIBDIR/$soname" ] || die "$LIBDIR/$soname (the SONAME of libnasc.so) is missing"
for h in nasc_ir.h nasc_frontend.h nasc_export.h nasc_backend.h nasc_search.h; do
    [ -f "$PREFIX/include/nasc/$h" ] || die "$PREFIX/include/nasc/$h is missing"
done
got=$("$PREFIX/bin/nasc" --version 2>&1) || die "installed nasc --version failed: $got"
[ "$got" = "nasc $VERSION" ] || die "installed nasc --version says '$got', the build is version $VERSION"

# 2. What pkg-config says.
export PKG_CONFIG_PATH=$(dirname "$PC")
pcver=$(pkg-config --modversion nasc) || die "pkg-config cannot read $PC"
[ "$pcver" = "$VERSION" ] || die "nasc.pc says version '$pcver', the build is version $VERSION"
s=$(pkg-config --cflags nasc) || die "pkg-config --cflags nasc failed"
read -r -a PC_CFLAGS <<<"$s"
s=$(pkg-config --libs nasc) || die "pkg-config --libs nasc failed"
read -r -a PC_LIBS <<<"$s"
s=$(pkg-config --static --libs nasc) || die "pkg-config --static --libs nasc failed"
read -r -a PC_STATIC <<<"$s"
# -lnasc would take libnasc.so, which sits beside libnasc.a: name the archive.
for i in "${!PC_STATIC[@]}"; do [ "${PC_STATIC[$i]}" = -lnasc ] && PC_STATIC[$i]=-l:libnasc.a; done
echo "cflags: ${PC_CFLAGS[*]}"
echo "libs: ${PC_LIBS[*]}"
echo "static libs: ${PC_STATIC[*]}"

MODEL=$SRC/tests/install/tiny-cnn.yaml
EXAMPLE=$SRC/examples/train_export.c

# check_run NAME [VAR=VALUE...]: run $TMP/NAME on the tiny model, then check
# the ONNX file it wrote.
check_run() {
    local name=$1 out=$TMP/$1.onnx rc
    shift
    env "$@" "$TMP/$name" "$MODEL" "$out" >"$TMP/$name.log" 2>&1
    rc=$?
    [ "$rc" = 0 ] || { cat "$TMP/$name.log" >&2; die "$name: the example failed (exit $rc)"; }
    grep -q "^wrote $out" "$TMP/$name.log" || { cat "$TMP/$name.log" >&2; die "$name: no 'wrote $out' line"; }
    [ -s "$out" ] || die "$name: $out is missing or empty"
    if "$PY" -c 'import onnx' 2>/dev/null; then
        "$PY" -c 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$out" ||
            die "$name: onnx.checker rejects $out"
    else
        echo "note: $PY has no onnx module (python3-onnx): $out not checked" >&2
    fi
    echo "$name: ok ($(stat -c %s "$out") bytes of ONNX)"
}

# 3. Linked to libnasc.so, found through LD_LIBRARY_PATH in the install tree.
"$CC" "${CFLAGS[@]}" "$EXAMPLE" -o "$TMP/shared" "${PC_CFLAGS[@]}" "${PC_LIBS[@]}" ||
    die "the example does not compile and link against libnasc.so with: ${PC_CFLAGS[*]} ${PC_LIBS[*]}"
# (outputs are read whole before grep: `cmd | grep -q` under pipefail fails
# whenever grep exits first and cmd dies of SIGPIPE, which load makes likely)
dyn=$(readelf -d "$TMP/shared") || die "readelf -d $TMP/shared failed"
grep -q "NEEDED.*\[$soname\]" <<<"$dyn" || die "the shared example does not need $soname"
deps=$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$TMP/shared") ||
    die "ldd $TMP/shared failed"
grep -q "$soname => $LIBDIR/" <<<"$deps" || die "the shared example does not load $soname from $LIBDIR"
check_run shared LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 4. Linked to libnasc.a and what `pkg-config --static` adds.
"$CC" "${CFLAGS[@]}" "$EXAMPLE" -o "$TMP/static" "${PC_CFLAGS[@]}" "${PC_STATIC[@]}" ||
    die "the example does not compile and link against libnasc.a with: ${PC_CFLAGS[*]} ${PC_STATIC[*]}"
dyn=$(readelf -d "$TMP/static") || die "readelf -d $TMP/static failed"
if grep -q "NEEDED.*libnasc" <<<"$dyn"; then die "the static example still needs libnasc.so"; fi
check_run static

echo "test_install: all passed"
