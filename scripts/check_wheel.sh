#!/usr/bin/env bash
# Checks the wheel a user gets from `pip install .` / `pip install git+...`: built from a clean
# copy of the tree, installed non-editable into a fresh venv, then used from outside the tree.
#
#   VENV=.venv-ci bash scripts/check_wheel.sh     # .ci/run does this; default VENV=.venv
#
# 1. The wheel holds every module and every other file git tracks under gnnrec_jax/ (the C++
#    kernel source, py.typed): a file pyproject's package-data misses fails here by name.
# 2. A fresh venv (no pip, nothing of $VENV's gnnrec-jax) gets the wheel with `pip --no-deps`; the
#    dependencies are $VENV's, seen through a plain path line in a .pth file, so $VENV's
#    editable-install hook never runs. Installing them from PyPI again would take minutes and
#    check pip's resolver, not our wheel; that the versions $VENV holds satisfy the wheel's
#    declared requirements is checked instead.
# 3. From a temporary folder, without PYTHONPATH: gnnrec_jax imports from the fresh venv, the
#    native kernels compile from the wheel's own source into an empty cache, load, agree with
#    scipy on a small product, and propagation backend 'auto' resolves to them ("csr") on CPU.
#    With no C++ compiler on the machine this prints a note and checks the fallback instead.
# 4. The same install with the compiler hidden (PATH without it): 'auto' resolves to scipy and
#    the warning says why, so a machine without a compiler is told, not silently slowed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$REPO/$VENV" ;; esac  # later steps run from other folders
start=$(date +%s)
W=$(mktemp -d /tmp/gnnrec-wheel-XXXXXX)
trap 'rm -rf "$W"' EXIT

# A clean copy (tracked and untracked-not-ignored files), so no stale build/ or egg-info of the
# working tree can leak into the wheel.
mkdir "$W/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | (cd "$REPO" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _) \
    | tar -C "$REPO" --null -T - -cf - | tar -C "$W/src" -xf -
else
  tar -C "$REPO" --exclude='./.venv*' --exclude=./build --exclude='*.egg-info' -cf - . \
    | tar -C "$W/src" -xf -
fi
"$VENV/bin/python" -m pip wheel -q --no-deps --disable-pip-version-check -w "$W/dist" "$W/src"
wheel=$(ls "$W"/dist/gnnrec_jax-*.whl)
echo "built $(basename "$wheel") ($(( $(date +%s) - start )) s)"

# 1. The wheel's file list against the package's tracked files.
(cd "$W/src" && "$VENV/bin/python" - "$wheel" <<'EOF'
import pathlib, sys, zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
# The clean copy holds exactly the tree's files, so every file under its gnnrec_jax/ must ship.
tracked = sorted(str(p) for p in pathlib.Path("gnnrec_jax").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)
missing = sorted(f for f in tracked if f not in names)
if missing:
  sys.exit("check_wheel: the wheel lacks " + ", ".join(missing)
           + " (pyproject.toml [tool.setuptools.package-data] / packages.find)")
data = sorted(f for f in tracked if not f.endswith(".py"))
if not any(f.endswith(".cc") for f in data):
  sys.exit("check_wheel: no C++ kernel source found under gnnrec_jax/")
print(f"wheel holds all {len(tracked)} package files; data files: {', '.join(data)}")
EOF
)

# 2. A fresh venv: the wheel itself, the dependencies of $VENV behind it.
base_python=$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')
"$base_python" -m venv --without-pip "$W/venv"
deps=$("$VENV/bin/python" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' | sort -u)
own=$("$W/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$deps" >"$own/zz_deps_of_ci_venv.pth"
"$VENV/bin/python" -m pip --python "$W/venv/bin/python" install -q --no-deps \
  --disable-pip-version-check "$wheel"
echo "installed into a fresh venv ($(( $(date +%s) - start )) s)"

# 3. and 4.: from outside the tree, with an empty kernel cache.
cat >"$W/check.py" <<'EOF'
import importlib.metadata as md
import pathlib
import sys
import sysconfig
import warnings

from packaging.requirements import Requirement

import numpy as np
import scipy.sparse as sp

import gnnrec_jax
from gnnrec_jax.graph import kernels, propagate

mode = sys.argv[1]
site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
root = pathlib.Path(gnnrec_jax.__file__).resolve().parent
assert root.parent == site, f"gnnrec_jax imported from {root}, not the wheel's venv {site}"
dist = md.distribution("gnnrec-jax")
assert pathlib.Path(dist.locate_file("gnnrec_jax")).resolve() == root, dist.locate_file("")
assert kernels.SOURCE.is_file() and kernels.SOURCE.resolve().is_relative_to(root), kernels.SOURCE
if mode == "native":
  for req in map(Requirement, dist.requires or ()):
    if req.marker is None or req.marker.evaluate({"extra": ""}):
      have = md.version(req.name)
      assert req.specifier.contains(have, prereleases=True), f"{req}: found {have}"
  print(f"gnnrec_jax {dist.version} from {root} (not editable; requirements met)")

compiler = kernels._compiler()
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  ok = kernels.available()
backend = propagate.resolve_backend("auto", 100, platform="cpu")
if compiler is None:
  reason = kernels.unavailable_reason() or ""
  assert not ok and "no C++ compiler" in reason, reason
  assert backend == "scipy", backend
  assert any("no C++ compiler" in str(w.message) for w in caught), [str(w.message) for w in caught]
  if mode == "native":
    print("NOTE: no C++ compiler on this machine ($CXX, g++, c++, clang++): the native kernels "
          "were not built; checked instead that the wheel ships their source and that 'auto' "
          "falls back to scipy with a warning")
  else:
    print(f"without a compiler: 'auto' -> scipy, warned: {caught[0].message}")
  sys.exit(0)
assert mode == "native", "the compiler was meant to be hidden"
assert ok, f"native kernels did not load: {kernels.unavailable_reason()}"
assert backend == "csr", f"CPU backend 'auto' resolved to {backend!r}, not the native 'csr'"
lib = kernels.library_path(compiler)
assert lib.is_file(), lib
# The kernel really runs: A x against scipy on a small random graph (edges sorted by receiver).
rng = np.random.default_rng(0)
n, e = 50, 400
r, s = np.sort(rng.integers(0, n, e)), rng.integers(0, n, e)
w = rng.random((e, 1), dtype=np.float32)
x = rng.standard_normal((n, 8), dtype=np.float32)
got = np.asarray(kernels.spmm(r, s, w, x))
want = sp.csr_matrix((w[:, 0], (r, s)), shape=(n, n)) @ x
np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
print(f"native kernels built from the wheel's source with {compiler}, loaded from {lib}; "
      f"spmm matches scipy; CPU propagation backend 'auto' -> {backend!r}")
EOF
run() { (cd "$W" && env -u PYTHONPATH JAX_PLATFORMS=cpu GNNREC_JAX_CACHE="$W/cache" "$@"); }
run "$W/venv/bin/python" "$W/check.py" native
run "$W/venv/bin/gnnrec-jax" --help >/dev/null
echo "console script gnnrec-jax runs"
rm -rf "$W/cache"
run env PATH="$W/venv/bin" CXX= "$W/venv/bin/python" "$W/check.py" no-compiler
echo "wheel check passed ($(( $(date +%s) - start )) s)"
