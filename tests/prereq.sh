# prereq.sh - sourced by the shell tests for what they need from outside
# the tree. A test whose prerequisite is missing prints "SKIP: <reason>" and
# exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77): never as
# passed, never as failed. `make deps` (scripts/install-deps.sh) installs
# every one of them. Needs NASC_SOURCE_DIR.

# skip REASON...: this test cannot run here.
skip() {
    echo "SKIP: $*"
    exit 77
}

# need_python [MODULE...]: Debian's /usr/bin/python3 (the python3 first on
# PATH may be another one) importing every MODULE (default: onnx numpy).
need_python() {
    local py=/usr/bin/python3 mods=${*:-onnx numpy} pkgs="Debian's python3"
    [ -x "$py" ] || skip "$py is missing ($pkgs; run \`make deps\`)"
    case " $mods " in *" onnx "* | *" numpy "*) pkgs="python3-onnx, python3-numpy" ;; esac
    "$py" -c "import ${mods// /, }" 2>/dev/null || skip "$py cannot import ${mods// /, } ($pkgs; run \`make deps\`)"
}

# need_ort: node and onnxruntime-node in the source tree's node_modules, the
# way scripts/ort_run.js loads it.
need_ort() {
    command -v node >/dev/null || skip "node is not on PATH (nodejs; run \`make deps\`)"
    [ -d "$NASC_SOURCE_DIR/node_modules/onnxruntime-node" ] ||
        skip "$NASC_SOURCE_DIR/node_modules/onnxruntime-node is missing (run \`make deps\`: npm install --ignore-scripts)"
    (cd "$NASC_SOURCE_DIR" && node -e "require('onnxruntime-node')") >/dev/null 2>&1 ||
        skip "node cannot load onnxruntime-node from $NASC_SOURCE_DIR/node_modules (run \`make deps\`)"
}

# need_cmd COMMAND PACKAGE: a program on PATH.
need_cmd() {
    command -v "$1" >/dev/null || skip "$1 is not on PATH ($2; run \`make deps\`)"
}

# need_dir DIR PACKAGE: a directory of data.
need_dir() {
    [ -d "$1" ] || skip "$1 is missing ($2; run \`make deps\`)"
}
