"""Negative sampling on device.

`sample_negatives` draws items uniformly with `jax.random` inside the jitted train step, and does
NOT reject items the user interacted with (false negatives). Rejection is what LightGCN's official
code and RecBole do, but on the host, per user, in Python. On ml-100k the mean density is ~5%
(80k of 943 x 1,682), so roughly 5% of uniform negatives are false (more for heavy users, who also
fill more batch rows): mild label noise. When that matters, `resample_if_seen` redraws the
negatives that hit the user's training items a fixed number of times, looking them up in a CSR
layout (`train_csr`) passed as jit arguments; a negative still seen after `num_retries` rounds
(probability density^(retries + 1)) is kept.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.data.types import Interactions


def sample_negatives(rng: jax.Array, *, batch_users: jax.Array, num_items: int,
                     num_negatives: int) -> jax.Array:
  """Uniform item indices in [0, num_items), without rejecting the user's seen items.

  Args:
    rng: a PRNG key (fold in the step for per-step randomness).
    batch_users: [B] user indices (only the batch size is read).
    num_items: I, static.
    num_negatives: K, static.

  Returns:
    [B, K] int32 item indices (item space, not node space: add U for node indices).
  """
  return jax.random.randint(rng, (batch_users.shape[0], num_negatives), 0, num_items,
                            dtype=jnp.int32)


def train_csr(train: Interactions, *, num_users: int, num_items: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
  """Host-side CSR of the training items per user: (indptr [U + 1], indices [nnz]) int32.

  Duplicates are removed and each row's items are sorted, as `is_seen` binary-searches them.
  """
  key = np.unique(train.user.astype(np.int64) * num_items + train.item.astype(np.int64))
  users, items = key // num_items, key % num_items
  indptr = np.zeros(num_users + 1, np.int64)
  np.cumsum(np.bincount(users, minlength=num_users), out=indptr[1:])
  return indptr.astype(np.int32), items.astype(np.int32)


def is_seen(users: jax.Array, items: jax.Array, *, indptr: jax.Array,
            indices: jax.Array) -> jax.Array:
  """Whether items[b, k] is among user users[b]'s training items (vectorised binary search).

  Args:
    users: [B] user indices.
    items: [B, K] item indices.
    indptr, indices: the user's sorted items are indices[indptr[u]:indptr[u + 1]] (`train_csr`).

  Returns:
    [B, K] bool.
  """
  lo = jnp.broadcast_to(indptr[users][:, None], items.shape)
  hi = jnp.broadcast_to(indptr[users + 1][:, None], items.shape)
  nnz = indices.shape[0]
  # Every row has at most nnz entries, so ceil(log2(nnz + 1)) halvings always suffice; the count
  # is static (from the array's shape), so the loop unrolls into a fixed-size program.
  steps = max(1, math.ceil(math.log2(nnz + 1)))

  def body(_, state):
    lo, hi = state
    mid = (lo + hi) // 2
    go_right = indices[jnp.clip(mid, 0, max(nnz - 1, 0))] < items
    active = lo < hi
    lo = jnp.where(active & go_right, mid + 1, lo)
    hi = jnp.where(active & ~go_right, mid, hi)
    return lo, hi

  lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
  row_end = indptr[users + 1][:, None]
  found = indices[jnp.clip(lo, 0, max(nnz - 1, 0))] == items
  return (lo < row_end) & found


def resample_if_seen(rng: jax.Array, negatives: jax.Array, *, batch_users: jax.Array,
                     num_items: int, indptr: jax.Array, indices: jax.Array,
                     num_retries: int = 3, pool: jax.Array | None = None) -> jax.Array:
  """Redraws negatives that are among the user's training items, `num_retries` times.

  Args:
    rng: a PRNG key.
    negatives: [B, K] int32 draws from `sample_negatives`: item indices, or positions in `pool`.
    batch_users: [B] user indices.
    num_items: I, static: the number of items drawn from (the pool's length with a pool).
    indptr, indices: `train_csr` arrays (pass them as jit arguments, never close over them).
    num_retries: rounds of redrawing (static); leftovers stay (see the module docstring).
    pool: [P] int32 item indices the draws index into (the items with train interactions, when
      some have none, e.g. items seen only in valid/test of a random split); None: the draws
      are items.

  Returns:
    [B, K] int32 draws (items, or positions in `pool`), each redrawn uniformly while its item was
    seen.
  """
  for key in jax.random.split(rng, num_retries):
    items = negatives if pool is None else pool[negatives]
    seen = is_seen(batch_users, items, indptr=indptr, indices=indices)
    fresh = jax.random.randint(key, negatives.shape, 0, num_items, dtype=negatives.dtype)
    negatives = jnp.where(seen, fresh, negatives)
  return negatives
