#!/usr/bin/env bash
# Creates benchmarks/_peers/recbole-venv: RecBole 1.2.1 on a CPU-only torch, the peer that
# benchmarks/peers/recbole_runner.py runs inside. Idempotent: exits at once when the venv already
# imports the pinned versions.
#
#   bash benchmarks/peers/setup_recbole_venv.sh          # PYTHON=python3.11 to pick the interpreter
#
# Measured on the 2-core dev machine (wheels from the local caches): ~45 s, 1.5 GiB on disk
# (torch alone is 0.75 GiB).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
venv="${RECBOLE_VENV:-${repo}/benchmarks/_peers/recbole-venv}"
python="${PYTHON:-python3}"

# The exact set this script was tested with (pip freeze of a working venv). Why the odd pins:
# - torch==2.13.0+cpu: the local-version tag only matches the CPU wheel on this machine's disk;
#   a plain `torch` would pull several GB of CUDA wheels from PyPI, so fail instead.
# - numpy 1.x: RecBole 1.2.1 aliases np.float_ etc. in its Config, which numpy 2 removed.
# - scipy<=1.12: LightGCN/NGCF build the adjacency with dok_matrix._update, gone in scipy 1.13.
# - pandas 2.x: untested with pandas 3.
# - setuptools<81: ray 2.6.3 imports pkg_resources, removed in setuptools 81.
# - ray<=2.6.3: RecBole's own cap; `recbole.quick_start` imports ray.tune at module level.
# - recbole itself is installed with --no-deps so plotly and tabulate (hyper-parameter tuning
#   only) are left out; everything the trainer and evaluator import is listed here.
pins=(
  torch==2.13.0+cpu
  numpy==1.26.4
  scipy==1.12.0
  pandas==2.3.3
  scikit-learn==1.9.1
  tqdm==4.70.1
  colorlog==4.7.2
  colorama==0.4.4
  PyYAML==6.0.4
  tensorboard==2.21.0
  texttable==1.7.2
  psutil==7.2.2
  thop==0.1.1.post2209072238
  ray==2.6.3
  "setuptools<81"
  protobuf==7.36.2
  grpcio==1.85.3
)
recbole_pin=recbole==1.2.1

check='
import warnings; warnings.simplefilter("ignore")
import numpy, torch, recbole
from recbole.quick_start import run_recbole
from recbole.model.general_recommender import LightGCN, NGCF, BPR
assert torch.__version__ == "2.13.0+cpu", torch.__version__
assert recbole.__version__ == "1.2.1", recbole.__version__
assert numpy.__version__.startswith("1."), numpy.__version__
import scipy.sparse
assert hasattr(scipy.sparse.dok_matrix, "_update"), "scipy too new for RecBole"
'

if [[ -x "${venv}/bin/python" ]] && "${venv}/bin/python" -c "${check}" 2>/dev/null; then
  echo "recbole venv ok: ${venv}"
  exit 0
fi

start=${SECONDS}
"${python}" - <<'EOF'
import sys
# torch 2.13.0+cpu on this machine's disk is a cp311 wheel.
if sys.version_info[:2] != (3, 11):
  sys.exit(f"setup_recbole_venv.sh: need Python 3.11 (got {sys.version.split()[0]}); set PYTHON=")
EOF
rm -rf "${venv}"
mkdir -p "$(dirname "${venv}")"
"${python}" -m venv "${venv}"
pip=("${venv}/bin/python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install "${pins[@]}"
"${pip[@]}" install --no-deps "${recbole_pin}"

if ! "${venv}/bin/python" -c "${check}"; then
  echo "setup_recbole_venv.sh: venv at ${venv} was built but does not import RecBole" >&2
  exit 1
fi
echo "recbole venv built in $((SECONDS - start)) s: ${venv} ($(du -sh "${venv}" | cut -f1))"
