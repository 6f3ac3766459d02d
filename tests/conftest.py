"""Suite-wide settings: exact float32 matmuls on every platform, and a CPU-device fixture.

`jax_default_matmul_precision="highest"`: the tests compare against NumPy/scipy references at
1e-5-1e-6; on GPUs a float32 matmul defaults to TF32 (errors ~1e-4) and on TPUs to bfloat16
passes. The library's own policy (gnnrec_jax/precision.py) is tested with this pin lifted
(tests/test_precision.py).

One JAX persistent compilation cache per test session: a new empty folder that this process and
every process a test starts (CLI runs, the 8-device children, notebook kernels: they inherit
`os.environ`) share, removed when the session ends. Many tests compile the same programs again
(the same small model in another process, or a model built again in this one); they now load
them. Nothing is kept across sessions, so a fresh clone pays every first compile, as before.
A test that sets its own cache (tests/test_resume.py) keeps it. With pytest-xdist the workers
share the controller's folder.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile

import jax
import pytest

from gnnrec_jax import cli

jax.config.update("jax_default_matmul_precision", "highest")

_OWN_CACHE = "PYTEST_XDIST_WORKER" not in os.environ
if _OWN_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gnnrec-tests-xla-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # cache every program
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def pytest_unconfigure(config):
  del config
  if _OWN_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def run_cli(*argv):
  """`gnnrec-jax ARGV` in this process: (exit code, stdout, stderr); asserts no traceback."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main([str(a) for a in argv])
  assert "Traceback" not in err.getvalue()
  return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cpu_device():
  """Runs the test with `jax.default_device` set to the CPU, so that the CPU-only propagation
  backends (`csr`: native kernels, `scipy`: a host callback) resolve to themselves and run even
  on a GPU/TPU host (there they otherwise mean `segment`). Skipped only where JAX has no CPU
  device at all (JAX_PLATFORMS naming accelerators only)."""
  try:
    cpu = jax.devices("cpu")[0]
  except RuntimeError as e:
    pytest.skip(f"no CPU device in this JAX process ({e}): the CPU backends cannot run")
  with jax.default_device(cpu):
    yield cpu
