#!/usr/bin/env bash
# Quick start on a fresh Debian-like machine (run as root; needs only the Debian and PyPI package registries):
# installs Fashion-MNIST from the Debian package dataset-fashion-mnist, sets up .venv with elsjax, and draws
# class-conditional bbELS samples (one per class) with the published FashionMNIST_ResNet_zeros_conditional
# schedule into runs/quickstart (samples.png, samples.npz, record.json). Extra arguments go to `elsjax sample`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/elsjax sample --config experiments/configs/sample_fmnist_bbels.py \
  --out-dir runs/quickstart --overwrite "$@"
