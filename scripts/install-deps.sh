#!/bin/sh
# Install what nasc needs on Debian 12 (DESIGN.md). Quick when all is there.
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libyaml-dev libcmocka-dev zlib1g-dev libdnnl-dev libprotobuf-c-dev
protobuf-c-compiler libonnx-dev dataset-fashion-mnist python3-onnx
libonnx-testdata graphviz"
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
