#!/usr/bin/env bash
# Runs the text-encoder tests again beside the *other* major version of transformers.
#
#   VENV=.venv-ci bash scripts/text_matrix.sh
#
# $VENV (made by scripts/install.sh) holds whatever transformers pip chose (5.x today). The
# matrix venv gets the other major (<5 if $VENV has 5, else >=5) with the Hugging Face libraries
# that version pins (tokenizers, huggingface_hub, safetensors), every other shared dependency at
# $VENV's version, and nothing else: after pip has run, a .pth file appends $VENV's site-packages
# (jax, flax, scipy, pytest, gnnrec-jax, the MiniLM weights) behind its own. Installing only
# transformers keeps this to seconds, and pip never sees, so never changes, $VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
MATRIX_VENV="${MATRIX_VENV:-.venv-transformers-matrix}"
start=$(date +%s)
other=$("$VENV/bin/python" -c '
import importlib.metadata as m
major = int(m.version("transformers").split(".")[0])
print("transformers>=4.50,<5" if major >= 5 else "transformers>=5")')
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$VENV/bin/python" -m pip freeze --exclude-editable \
  | grep -v -i -E '^(transformers|tokenizers|huggingface[-_]hub|safetensors)==' \
  | grep '==' >"$constraints" || true
rm -rf "$MATRIX_VENV"
python3 -m venv "$MATRIX_VENV"
"$MATRIX_VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" "$other"
base=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
own=$("$MATRIX_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$base')" >"$own/zz_base_venv.pth"
versions=$("$MATRIX_VENV/bin/python" -c '
import importlib.metadata as m
names = ("transformers", "tokenizers", "huggingface_hub", "safetensors", "jax", "flax")
print(", ".join(f"{p} {m.version(p)}" for p in names))')
echo "text tests with $versions (set up in $(( $(date +%s) - start )) s)"
"$MATRIX_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_text.py
echo "transformers matrix: $(( $(date +%s) - start )) s in all"
