#!/usr/bin/env bash
# Makes the real Fashion-MNIST available for `make train` and `make test`: Debian's package
# dataset-fashion-mnist where apt can install it, else a checked download into the user's cache.
# Usage: scripts/get_data.sh PYTHON
set -euo pipefail
PY=${1:-python3}
if ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  echo "installing Debian's dataset-fashion-mnist" >&2
  $SUDO apt-get update -qq || true
  if $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; then
    exit 0
  fi
fi
echo "dataset-fashion-mnist is not installable here; downloading Fashion-MNIST into ~/.cache/cnn_tf" >&2
"$PY" -m cnn_tf.data.fetch --dataset=fashion_mnist
