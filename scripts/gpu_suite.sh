#!/usr/bin/env bash
# On a GPU machine, in under 10 minutes: the whole test suite, then gnnrec-jax and PyG's LightGCN
# side by side on Gowalla (issue 13's table: train epoch and full evaluation), logged.
#
#   bash scripts/gpu_suite.sh [LOG]          # default LOG: runs/gpu_suite_<date>.log
#
# Environment:
#   PYTHON        the Python with gnnrec-jax and a CUDA jax (default: python)
#   PEER_PYTHON   a Python with torch (CUDA) and torch_geometric (default: $PYTHON; the GPU image
#                 of issue 13 had both in one environment); the PyG step is skipped without them
#   GOWALLA_DIR   LightGCN's train.txt/test.txt (default ../shared/data/gowalla beside the repo)
#   TEST_LIMIT    seconds for the test suite (default 420)
#
# Steps (each under `timeout`; a failing step is logged and the suite goes on):
#   0. jax must see a GPU (else: pip install jax[cuda13] of the installed version, once);
#      nvidia-smi and the versions go to the log.
#   1. pytest, the whole suite (pytest-xdist's -n 6 when installed), notebook and text tests
#      included; the summary line is kept for the table.                          ~3-5 min
#   2. gnnrec-jax: benchmarks/bench_train.py on Gowalla, `segment` backend, one whole epoch x 2
#      rounds and 2 full evaluations (batch 2048, d 64, 3 layers, BPR).           ~1 min
#   3. PyG: benchmarks/peers/pyg_lightgcn.py, the same setting, 2 epochs and 2 evaluations. ~1 min
#   4. The table: both lines (epoch s, evaluation s, ratio) from the two JSON lines.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PEER=${PEER_PYTHON:-$PY}
GOWALLA_DIR=${GOWALLA_DIR:-$(cd .. && pwd)/shared/data/gowalla}
TEST_LIMIT=${TEST_LIMIT:-420}
mkdir -p runs
LOG=${1:-runs/gpu_suite_$(date +%Y%m%d_%H%M%S).log}
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
OURS=runs/gpu_suite_ours.json
PEER_JSON=runs/gpu_suite_pyg.json
rm -f "$OURS" "$PEER_JSON"

echo "=== gpu_suite $(date -u +%FT%TZ) on $(hostname), git $(git rev-parse --short HEAD 2>/dev/null)"
if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  version=$("$PY" -c "import jax; print(jax.__version__)")
  echo "=== jax $version sees no GPU: pip install jax[cuda13]==$version"
  "$PY" -m pip install -q "jax[cuda13]==$version" || echo "=== pip install failed"
  if ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
    echo "=== still no GPU backend: stopping"
    exit 2
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
"$PY" -c "import jax, jaxlib, flax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__,
  'flax', flax.__version__, jax.devices())"

echo "=== [$(( $(date +%s) - START )) s] 1. test suite (limit ${TEST_LIMIT} s)"
XDIST=""
if "$PY" -c "import xdist" 2>/dev/null; then XDIST="-n 6"; fi
timeout "$TEST_LIMIT" "$PY" -m pytest -q $XDIST -p no:cacheprovider 2>&1 | tee runs/gpu_suite_pytest.log \
  | tail -25
SUITE=$(grep -E "(passed|failed|error)" runs/gpu_suite_pytest.log | tail -1)
echo "=== suite: ${SUITE:-no summary (timed out?)}"

if [ -f "$GOWALLA_DIR/train.txt" ]; then
  echo "=== [$(( $(date +%s) - START )) s] 2. gnnrec-jax Gowalla epoch and evaluation"
  timeout 150 "$PY" benchmarks/bench_train.py --datasets gowalla --data-dir "$GOWALLA_DIR" \
    --backends segment --steps 0 --repeats 2 --eval-repeats 2 --no-memory | tee runs/gpu_suite_ours.log
  grep '^{' runs/gpu_suite_ours.log | tail -1 > "$OURS"
  echo "=== [$(( $(date +%s) - START )) s] 3. PyG LightGCN, same setting"
  if "$PEER" -c "import torch, torch_geometric, sys; sys.exit(not torch.cuda.is_available())"; then
    timeout 150 "$PEER" benchmarks/peers/pyg_lightgcn.py --data-dir "$GOWALLA_DIR" --epochs 2 \
      --eval-repeats 2 | tee runs/gpu_suite_pyg.log
    grep '^{' runs/gpu_suite_pyg.log | tail -1 > "$PEER_JSON"
  else
    echo "=== $PEER has no CUDA torch + torch_geometric: PyG step skipped"
  fi
else
  echo "=== no $GOWALLA_DIR/train.txt: Gowalla steps skipped"
fi

echo "=== [$(( $(date +%s) - START )) s] 4. table"
"$PY" - "$OURS" "$PEER_JSON" "${SUITE:-}" <<'EOF'
import json, os, sys
ours_path, peer_path, suite = sys.argv[1:4]
load = lambda p: json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
ours, peer = load(ours_path), load(peer_path)
row = ours["rows"][0] if ours else None
fmt = lambda x: "–" if x is None else f"{x:.2f} s"
ratio = lambda a, b: "–" if a is None or b is None else f"{b / a:.1f}×"
ep, ev = (row["epoch_s_median"], row["eval_s_median"]) if row else (None, None)
pep, pev = (peer["train_epoch_s"], peer["eval_s"]) if peer else (None, None)
print(f"test suite: {suite or 'no summary'}")
print("| | gnnrec-jax (`segment`) | PyG `LightGCN` (its example's protocol) | ratio |")
print("|---|---:|---:|---:|")
ms = f" ({row['ms_per_step_median']:.2f} ms/step)" if row else ""
print(f"| Gowalla LightGCN BPR train epoch (batch 2048, d 64, 3 layers) | {fmt(ep)}{ms} | "
      f"{fmt(pep)} | {ratio(ep, pep)} |")
print(f"| Gowalla full-ranking evaluation (29,858 users × 40,981 items) | {fmt(ev)} | "
      f"{fmt(pev)} | {ratio(ev, pev)} |")
EOF
echo "=== done in $(( $(date +%s) - START )) s; log: $LOG"
