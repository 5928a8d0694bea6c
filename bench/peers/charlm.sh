#!/usr/bin/env bash
# A character LSTM, nasc against PyTorch, one after the other on the same
# machine: the same model (models/lstm.yaml: embedding 128, 256 units, 256
# byte classes), text (Debian's fortunes), split, batching (64 streams, 35
# characters per step), recipe (Adam 0.002, one epoch's cosine schedule,
# gradient norm clipped to 5) and number of steps; prints each one's
# training characters per second and validation bits per character after
# those steps, and the speed ratio.
#
#   bench/peers/charlm.sh [BUILD_DIR] [--steps N] [--threads K]
#
# BUILD_DIR defaults to build/, N to 300, K to 2. PyTorch is Debian's
# python3-torch (bench/peers/charlm.py); without it only nasc runs. Its
# LSTM multiplies matrices through libblas.so.3: install Debian's
# libopenblas0-pthread, or it runs on the reference BLAS (about 2 GFLOP/s;
# charlm.py warns). Run it on a quiet machine.
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=$REPO/build
STEPS=300
THREADS=2
while [ $# -gt 0 ]; do
    case $1 in
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) BUILD=$1; shift ;;
    esac
done
NASC=$BUILD/nasc
[ -x "$NASC" ] || { echo "charlm: $NASC is not built" >&2; exit 1; }
TMP=$(mktemp -d /tmp/nasc-charlm-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

"$NASC" train "$REPO/models/lstm.yaml" --epochs 1 --max-steps "$STEPS" --threads "$THREADS" --out "$TMP/run" \
    >"$TMP/nasc.out" 2>"$TMP/nasc.err" || { cat "$TMP/nasc.err" >&2; exit 1; }
nasc_cps=$(sed -n 's/^epochs .* s, \([0-9]*\) characters\/s$/\1/p' "$TMP/nasc.out")
nasc_bpc=$(sed -n 's/^validation \([0-9.]*\) bits per character.*/\1/p' "$TMP/nasc.out")
params=$(sed -n 's/^.*lstm.yaml: \([0-9,]*\) parameters.*/\1/p' "$TMP/nasc.err")
echo "nasc $("$NASC" --version | sed 's/^nasc //'): $params parameters, $STEPS steps, $nasc_cps characters/s, validation $nasc_bpc bits per character"
torch_line=$(/usr/bin/python3 "$HERE/charlm.py" --steps "$STEPS" --threads "$THREADS")
echo "$torch_line"
torch_cps=$(sed -n 's/.*steps, \([0-9]*\) characters\/s.*/\1/p' <<<"$torch_line")
if [ -n "$torch_cps" ] && [ -n "$nasc_cps" ]; then
    awk -v a="$nasc_cps" -v b="$torch_cps" 'BEGIN { printf "training speed: nasc / PyTorch = %.2fx\n", a / b }'
fi
