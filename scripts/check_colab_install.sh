#!/usr/bin/env bash
# Checks the notebooks' Colab install cell: in a fresh venv whose jax was installed first, the
# cell (run as a plain `python` command with GNNREC_INSTALL=1, as Colab would run it) installs
# gnnrec-jax from this repository and jax keeps its version.
#
#   bash scripts/check_colab_install.sh [JAX_VERSION]   # default: the newest jax pip finds
#
# Needs network access to PyPI (the cell installs the dependencies the venv lacks). Prints
# "jax kept: X" and exits 0, or names what changed and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
JAX=${1:-}
V=$(mktemp -d /tmp/gnnrec-colab-XXXXXX)
"$PYTHON" -m venv "$V"
"$V/bin/python" -m pip install -q --upgrade pip
"$V/bin/python" -m pip install -q "jax${JAX:+==$JAX}"
versions() { "$V/bin/python" -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda[^ ]*) ' | tr -s ' '; }
before=$(versions)
echo "before: $before" | tr '\n' ' '; echo
# What a plain `pip install <repo>` would do to this venv (not done):
"$V/bin/python" -m pip install --dry-run -q --report - "$REPO" 2>/dev/null \
  | "$V/bin/python" -c "import json, sys; r = json.load(sys.stdin); print('a plain pip install would install:', ', '.join(i['metadata']['name'] + '==' + i['metadata']['version'] for i in r['install'] if i['metadata']['name'].lower().startswith('jax')) or 'no jax')" \
  || echo "(dry run unavailable)"
"$V/bin/python" -c "import json; nb = json.load(open('notebooks/01_quickstart.ipynb')); \
cell = next(c for c in nb['cells'] if c['cell_type'] == 'code'); print(''.join(cell['source']))" \
  > "$V/colab_cell.py"
(cd "$V" && GNNREC_INSTALL=1 GNNREC_SOURCE="$REPO" "$V/bin/python" colab_cell.py)
after=$(versions)
(cd "$V" && "$V/bin/python" -c "import gnnrec_jax, jraph, flax, optax; print('gnnrec_jax imports from', gnnrec_jax.__file__)")
if [ "$before" = "$after" ]; then
  echo "jax kept: $before" | tr '\n' ' '; echo; rm -rf "$V"
else
  echo "jax CHANGED: before [$before] after [$after] (venv kept: $V)"; exit 1
fi
