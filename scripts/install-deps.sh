#!/bin/sh
# Install what nasc needs on Debian 12. Quick when all is there.
set -eu
# libomp-dev: OpenMP for clang builds (make test builds with gcc and clang).
# fortunes: the default text corpus of the character language models.
# libopenmpi-dev, openmpi-bin: the distributed search (mpirun ... nasc search);
# openssh-client: mpirun looks for its remote launcher even on one machine.
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libomp-dev
libyaml-dev libcmocka-dev zlib1g-dev libdnnl-dev libprotobuf-c-dev
protobuf-c-compiler libonnx-dev dataset-fashion-mnist python3-onnx
libonnx-testdata graphviz fortunes libopenmpi-dev openmpi-bin
openssh-client"
# Node.js runs ONNX Runtime in the ONNX export tests; Debian's nodejs/npm
# unless a node is already on PATH.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS="$PKGS nodejs npm"
fi
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# onnxruntime-node (version pinned in package.json, package-lock.json) into
# node_modules/ of the source tree, for scripts/ort_run.js. --ignore-scripts:
# its install script only fetches GPU extras; the CPU library ships in the
# package. Skipped when the pinned version is already there.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
want=$(cd "$ROOT" && node -p "require('./package.json').dependencies['onnxruntime-node']")
have=$(cd "$ROOT" && node -p "try { require('./node_modules/onnxruntime-node/package.json').version } catch (e) { '' }")
if [ "$want" != "$have" ]; then
  echo "install-deps: npm: onnxruntime-node $want"
  (cd "$ROOT" && npm ci --ignore-scripts --no-audit --no-fund)
fi
