"""Top-k recommendation for one user, with seen items excluded.

Ties rank the lower item index first, as in `gnnrec_jax.evaluation.metrics` (the same `rank_topk`).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.evaluation.metrics import rank_topk
from gnnrec_jax.precision import EXACT


def recommend(
    query: np.ndarray | jax.Array,
    item_emb: np.ndarray | jax.Array | None = None,
    *,
    exclude_items: Sequence[int] | np.ndarray = (),
    k: int,
    item_mask: np.ndarray | None = None,
    cosine: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """The k best unseen items for one user.

  Args:
    query: the user's vector [d] (with `item_emb`) or precomputed scores [I] (without).
    item_emb: [I, d] item embeddings, or None when `query` already holds scores.
    exclude_items: item indices never to recommend (the user's seen items).
    k: number of items to return.
    item_mask: optional [I] bool, the recommendable items.
    cosine: score by cosine similarity (both sides L2-normalised) instead of the dot product.

  Returns:
    items: [k] int32 item indices, best first.
    scores: [k] float32 their scores.

  Raises:
    ConfigError: k is not positive or exceeds the number of rankable items (both named), a
      shape mismatch, or `cosine` without embeddings.
  """
  query = jnp.asarray(query, jnp.float32)
  if item_emb is None:
    if cosine:
      raise ConfigError("cosine=True needs a user vector and item embeddings, not scores")
    if query.ndim != 1:
      raise ConfigError(f"scores must have shape [I], got {tuple(query.shape)}")
    num_items = query.shape[0]
  else:
    item_emb = jnp.asarray(item_emb, jnp.float32)
    if query.ndim != 1 or item_emb.ndim != 2 or item_emb.shape[1] != query.shape[0]:
      raise ConfigError(f"user vector {tuple(query.shape)} and item embeddings "
                        f"{tuple(item_emb.shape)} do not match ([d] and [I, d] expected)")
    num_items = item_emb.shape[0]

  rankable = np.ones(num_items, bool) if item_mask is None else np.array(item_mask, bool)
  if rankable.shape != (num_items,):
    raise ConfigError(f"item_mask has shape {rankable.shape}, expected ({num_items},)")
  exclude = np.asarray(exclude_items, np.int64).reshape(-1)
  bad = (exclude < 0) | (exclude >= num_items)
  if bad.any():
    raise ConfigError(f"excluded item {int(exclude[bad][0])} out of range [0, {num_items})")
  rankable[exclude] = False
  num_rankable = int(rankable.sum())
  if k < 1 or k > num_rankable:
    raise ConfigError(f"cannot recommend k={k} items: only {num_rankable} of {num_items} items "
                      f"are rankable for this user (after exclusions and item_mask)")

  if item_emb is None:
    items, scores = _topk_scores(query, jnp.asarray(rankable), k=k)
  else:
    items, scores = _topk_embeddings(query, item_emb, jnp.asarray(rankable), k=k, cosine=cosine)
  return np.asarray(items, np.int32), np.asarray(scores, np.float32)


@functools.partial(jax.jit, static_argnames=("k",))
def _topk_scores(scores, rankable, *, k):
  items, top = rank_topk(scores[None, :], rankable[None, :], k)
  return items[0], top[0]


@functools.partial(jax.jit, static_argnames=("k", "cosine"))
def _topk_embeddings(user_vec, item_emb, rankable, *, k, cosine):
  if cosine:
    # eps keeps an all-zero vector at score 0 instead of NaN.
    user_vec = user_vec / jnp.maximum(jnp.linalg.norm(user_vec), 1e-12)
    item_emb = item_emb / jnp.maximum(jnp.linalg.norm(item_emb, axis=1, keepdims=True), 1e-12)
  scores = jnp.matmul(item_emb, user_vec, precision=EXACT)  # [I], exact (gnnrec_jax/precision.py)
  return _topk_scores(scores, rankable, k=k)
