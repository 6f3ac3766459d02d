"""The readout of an embedding model: layer outputs combined into final vectors, and the score
space those vectors live in (score(u, i) = final_u . final_i for every choice of `score`).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from gnnrec_jax.errors import ConfigError

COMBINES = ("mean", "sum", "last", "concat")


def combine_layers(hs: Sequence[jax.Array], how: str) -> jax.Array:
  """Combines layer outputs h^0..h^L ([N, d] each): mean | sum | last | concat ([N, d (L+1)])."""
  if how == "mean":
    return jnp.mean(jnp.stack(hs), axis=0)
  if how == "sum":
    return jnp.sum(jnp.stack(hs), axis=0)
  if how == "last":
    return hs[-1]
  if how == "concat":
    return jnp.concatenate(hs, axis=-1)
  raise ConfigError(f"unknown layer_combine {how!r}; choose one of {', '.join(COMBINES)}")


SCORES = ("dot", "cosine", "pearson")


def check_score(score: str) -> None:
  if score not in SCORES:
    raise ConfigError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")


def score_space(final: jax.Array, score: str) -> jax.Array:
  """The vectors whose dot products are the scores, so that training, ranking and
  recommendation all score by `score` without knowing it.

  dot: `final` itself. cosine: `final` scaled to unit length (a zero vector stays zero).
  pearson: each vector centred on its own mean over the d coordinates, then scaled to unit
  length, so that x . y = Pearson's r between the coordinates of the two final vectors,
  r = sum_k (x_k - mean x)(y_k - mean y) / (|x - mean x| |y - mean y|); a constant vector
  (zero after centring) stays zero.

  Args:
    final: [..., d] vectors.
    score: one of SCORES.
  """
  check_score(score)
  if score == "dot":
    return final
  if score == "pearson":
    final = final - jnp.mean(final, axis=-1, keepdims=True)
  sq = jnp.sum(jnp.square(final), axis=-1, keepdims=True)
  return final * jnp.where(sq > 0, jax.lax.rsqrt(jnp.maximum(sq, 1e-30)), 0.0)
