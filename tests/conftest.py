"""Suite-wide settings: exact float32 matmuls on every platform, and a CPU-device fixture.

`jax_default_matmul_precision="highest"`: the tests compare against NumPy/scipy references at
1e-5-1e-6; on GPUs a float32 matmul defaults to TF32 (errors ~1e-4) and on TPUs to bfloat16
passes. The library's own policy (gnnrec_jax/precision.py) is tested with this pin lifted
(tests/test_precision.py).
"""
from __future__ import annotations

import jax
import pytest

jax.config.update("jax_default_matmul_precision", "highest")


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
