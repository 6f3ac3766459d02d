"""The float32 matmul precision policy: exact where a number is compared, fast where it is not.

On GPUs a float32 matmul runs in TF32 by default (a 10-bit mantissa, relative errors ~1e-3 per
product, ~1e-4 after accumulation), and on TPUs in bfloat16 passes; on CPUs it is always exact.
The policy:

  * Exact (`Precision.HIGHEST`, `EXACT`) where exactness matters and the cost is small:
    - every score matmul of evaluation and ranking (`models.embedding.dot_scores`, the closed-form
      and baseline score functions, all run by `evaluation.evaluate` under `exact()`): metrics
      and top-K lists then agree across CPU and GPU to float32 rounding, and a TF32 error never
      flips a near-tie at rank K. Evaluation is a small part of a run (Gowalla: 0.10 s of a
      0.69 s epoch on an H200), so the 2-4x slower exact matmul costs little.
    - the `dense` propagation backend and `edge_dot`'s dense product (`graph.propagate`): they
      exist as the cross-check of the sparse backends, so they must be as exact as those (which
      use no matmul: gathers, scatter-adds and the native kernels are exact on every platform).
  * The platform default where speed matters: training steps (the model's projections in
    GAT/NGCF/query-key layers, the loss's score products). Config field `matmul_precision`
    ("default" | "high" | "highest") chooses it for training; "default" leaves the platform's
    choice (TF32 on recent NVIDIA GPUs), "highest" makes GPU training follow the CPU numbers.
    SGD noise dwarfs TF32's error, so the default is "default".

The test suite pins "highest" for everything it runs (tests/conftest.py), so comparisons against
NumPy references hold on any platform; tests/test_precision.py checks, with the pin lifted, that
the lowered programs carry `precision=HIGHEST` exactly where this policy says.
"""
from __future__ import annotations

import contextlib

import jax

from gnnrec_jax.errors import ConfigError

EXACT = jax.lax.Precision.HIGHEST
PRECISIONS = ("default", "high", "highest")


def exact():
  """Context: every float32 matmul traced inside it without an explicit precision is exact."""
  return jax.default_matmul_precision("highest")


def training(name: str):
  """Context for tracing a train step at the configured `matmul_precision`.

  "default" changes nothing (the platform's default, or whatever an enclosing context set).
  """
  if name not in PRECISIONS:
    raise ConfigError(f"unknown matmul_precision {name!r}; choose one of {', '.join(PRECISIONS)}")
  if name == "default":
    return contextlib.nullcontext()
  return jax.default_matmul_precision(name)
