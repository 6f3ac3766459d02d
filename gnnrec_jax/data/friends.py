"""Friendships of a dataset's social network, and their train / valid / test split.

`Dataset.social` holds the trust network as [m, 2] undirected user pairs. A run that reads it
(friendship edges in the graph with `social=true`, the friendship objective with
`social_weight > 0`, friend recommendation) uses only its TRAIN part: the pairs are split once
per experiment (`split_friendships`, ratios `config.friend_split`, seed `config.seed`), so that
held-out friendships can be found again by friend-ranking evaluation
(`gnnrec_jax.evaluation.social`) without ever having been an edge or a positive.

Kept in `data/` beside `splits.py`: the experiment (`gnnrec_jax.experiment.prepare`) makes this
split as it makes the interaction split, before any model exists.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from gnnrec_jax.data.splits import split_counts
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class FriendSplit:
  """Disjoint train / valid / test friendships, each [m_k, 2] int32 canonical pairs."""

  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

  def all_pairs(self) -> np.ndarray:
    """Every friendship of the three parts, [m, 2] canonical."""
    return canonical_pairs(np.concatenate([self.train, self.valid, self.test]))


def canonical_pairs(pairs: np.ndarray, num_users: int | None = None) -> np.ndarray:
  """Distinct undirected pairs as [m, 2] int32 (smaller index first, sorted).

  Raises:
    DataError: a self-pair, a negative index, or one >= num_users (when given).
  """
  p = np.asarray(pairs, np.int64).reshape(-1, 2)
  bad = (p[:, 0] == p[:, 1]) | (p.min(axis=1, initial=0) < 0)
  if num_users is not None:
    bad |= p.max(axis=1, initial=0) >= num_users
  if bad.any():
    a, b = p[np.flatnonzero(bad)[0]]
    raise DataError(f"friendship ({a}, {b}) is a self-pair or out of range [0, {num_users})")
  lo, hi = np.minimum(p[:, 0], p[:, 1]), np.maximum(p[:, 0], p[:, 1])
  if not len(p):
    return np.zeros((0, 2), np.int32)
  return np.unique(np.stack([lo, hi], 1), axis=0).astype(np.int32)


def split_friendships(pairs: np.ndarray, *, ratios: Sequence[float] = (0.8, 0.1, 0.1),
                      seed: int = 2020) -> tuple[np.ndarray, ...]:
  """Splits undirected friendships into disjoint parts (one per ratio), seeded.

  A pair goes to one part as a whole (both directions), so no held-out friendship leaks into
  the train graph. Part sizes follow `gnnrec_jax.data.splits.split_counts` (RecBole's rounding).

  Args:
    pairs: [m, 2] user pairs (either order, duplicates merged).
    ratios: e.g. (0.8, 0.1, 0.1) for train/valid/test or (0.9, 0.1) for train/test.
    seed: permutation seed.

  Returns:
    One [m_k, 2] int32 array per ratio, each canonical (smaller index first, sorted).
  """
  if len(ratios) < 2 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
    raise ConfigError(f"friendship split ratios must be >= 2 non-negative numbers, got {ratios}")
  p = canonical_pairs(pairs)
  order = np.random.default_rng(seed).permutation(len(p))
  bounds = np.cumsum([0, *split_counts(len(p), ratios)])
  return tuple(canonical_pairs(p[order[s:e]]) for s, e in zip(bounds[:-1], bounds[1:]))


def friend_split(dataset: Dataset, ratios: Sequence[float], seed: int) -> FriendSplit | None:
  """The experiment's `FriendSplit` of `dataset.social`, or None without a social network."""
  if dataset.social is None or not len(dataset.social):
    return None
  pairs = canonical_pairs(dataset.social, dataset.num_users)
  return FriendSplit(*split_friendships(pairs, ratios=tuple(ratios), seed=seed))
