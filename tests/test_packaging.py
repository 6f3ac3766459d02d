"""The package data a wheel must carry (pyproject.toml), and the message when it does not.

scripts/check_wheel.sh (run by .ci/run) builds and installs a real wheel; these checks are the
seconds-long part of it that every test run repeats.
"""
import fnmatch
import pathlib

import pytest

from gnnrec_jax.graph import kernels

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_package_data_covers_every_non_module_file():
  data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
  pkg = ROOT / "gnnrec_jax"
  files = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
           if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
  assert "graph/kernels/csr_kernels.cc" in files and "py.typed" in files
  patterns = data["gnnrec_jax"]
  # setuptools' "**/" also matches files at any depth below the package.
  unshipped = [f for f in files if not any(fnmatch.fnmatch(f, g) or fnmatch.fnmatch(f, g[3:])
                                           for g in patterns)]
  assert not unshipped, f"add to [tool.setuptools.package-data]: {unshipped}"


def test_missing_kernel_source_is_named(monkeypatch, tmp_path):
  monkeypatch.setattr(kernels, "SOURCE", tmp_path / "csr_kernels.cc")
  with pytest.raises(RuntimeError, match="csr_kernels.cc is missing from this installation"):
    kernels.build()
