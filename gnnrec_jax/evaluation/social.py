"""Social recommendation: friendship splits, neighbourhood baselines, friend-ranking evaluation.

Two tasks use the trust network of a dataset (`Dataset.social`, [m, 2] undirected user pairs):

Items with social edges: the same model trained with `Config(social=True)`, i.e. the friendships
as user–user edges of the same propagation graph (`gnnrec_jax.graph.build.build_graph(social=...)`).
Nothing here is needed for that beyond `train.run`; see benchmarks/lastfm_social.py.

Friend recommendation (user–user link prediction): the friendships are split into disjoint
train / valid / test pairs (`split_friendships`); a model sees only the train pairs (in its graph,
`with_friendships`); every user with a held-out friend ranks ALL users, itself and its train
friends excluded (valid friends too at test time), exactly like full-ranking item evaluation
with "items" = users (`evaluate_friends` calls `gnnrec_jax.evaluation.evaluate.evaluate_full_ranking`).

Scorers:
  * common neighbours, score(a, b) = |N(a) ∩ N(b)| over the train friendships, and Adamic–Adar,
    sum over common neighbours c of 1 / log|N(c)| (Liben-Nowell & Kleinberg 2007): the classic
    link-prediction baselines, as `neighbour_scores` (rows of A, then A W A).
  * a recommender's final user vectors, score(a, b) = final_a . final_b
    (`evaluate_friend_embeddings`). The objective we use for them is the ITEM model's own BPR: no
    friendship loss. Trained on a graph with the train friendships as edges, a user's final
    vector mixes in its friends' vectors (and friends of friends), so friends of friends score
    high without a separate link-prediction loss, and one model serves both tasks. The
    comparison against the item-graph-only model (social=False) measures what the edges add.

The neighbour scorers hold one dense [U, U] matrix (Last.fm: 1,878 users, 14 MB), fine up to
~20k users.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.splits import split_counts
from gnnrec_jax.data.types import Dataset, Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax.models.embedding import dot_scores

NEIGHBOUR_METHODS = ("common_neighbours", "adamic_adar")


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


def as_interactions(pairs: np.ndarray) -> Interactions:
  """Both directions of each pair as (user, "item" = friend) rows, for full-ranking evaluation."""
  p = np.asarray(pairs, np.int64).reshape(-1, 2)
  return Interactions(np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]]))


def friend_matrix(pairs: np.ndarray, num_users: int) -> sp.csr_matrix:
  """The symmetric binary [U, U] friendship adjacency (zero diagonal)."""
  p = canonical_pairs(pairs, num_users)
  rows = np.concatenate([p[:, 0], p[:, 1]])
  cols = np.concatenate([p[:, 1], p[:, 0]])
  return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                       shape=(num_users, num_users))


def neighbour_score_params(train_pairs: np.ndarray, num_users: int, *,
                           method: str = "common_neighbours") -> tuple[jax.Array, jax.Array]:
  """Arrays for `neighbour_scores`: (A [U, U] float32, w [U] per-neighbour weights).

  common_neighbours: w = 1, so (A W A)[a, b] = |N(a) ∩ N(b)|.
  adamic_adar: w_c = 1 / log|N(c)| (0 for degree <= 1: such a c is no one's common neighbour
  twice, and log 1 = 0 would divide by zero).
  """
  if method not in NEIGHBOUR_METHODS:
    raise ConfigError(f"unknown neighbour method {method!r}; choose one of "
                      f"{', '.join(NEIGHBOUR_METHODS)}")
  adj = friend_matrix(train_pairs, num_users)
  deg = np.asarray(adj.sum(axis=1)).ravel()
  if method == "common_neighbours":
    w = np.ones(num_users)
  else:
    w = np.zeros(num_users)
    np.divide(1.0, np.log(np.maximum(deg, 1.0)), out=w, where=deg > 1)
  return jnp.asarray(adj.toarray()), jnp.asarray(w, jnp.float32)


def neighbour_scores(params: tuple[jax.Array, jax.Array], users: jax.Array) -> jax.Array:
  """Weighted common-neighbour counts of a batch of users against every user.

  Args:
    params: (A [U, U], w [U]) from `neighbour_score_params`.
    users: [B] int32 user indices.

  Returns:
    [B, U] scores, score[b, v] = sum_c A[users[b], c] w_c A[c, v].
  """
  adj, w = params
  return (adj[users] * w[None, :]) @ adj


def with_friendships(dataset: Dataset, pairs: np.ndarray) -> Dataset:
  """The dataset with `social` replaced by `pairs` (e.g. only the train friendships)."""
  return dataclasses.replace(dataset, social=canonical_pairs(pairs, dataset.num_users))


def evaluate_friends(score_fn, params, *, num_users: int, train: np.ndarray,
                     target: np.ndarray, also_exclude: Sequence[np.ndarray] = (),
                     ks: Sequence[int] = (20,), batch_size: int = 256) -> dict[str, float]:
  """Full-ranking friend recommendation metrics (Recall@K, NDCG@K, ... as for items).

  Args:
    score_fn: `score_fn(params, users [B]) -> [B, U]`, a module-level function (static under
      jit), e.g. `neighbour_scores` or `gnnrec_jax.models.embedding.dot_scores`.
    params: its arrays.
    num_users: U.
    train: [m, 2] the friendships the scorer was built on: never ranked.
    target: [t, 2] held-out friendships to find (valid or test); each pair counts for both users.
    also_exclude: more pairs never ranked (the valid friendships at test time).
    ks: cut-offs.
    batch_size: users per ranking step.

  Returns:
    `evaluate_full_ranking`'s dict ("recall@20", "ndcg@20", ..., "num_users").
  """
  me = np.arange(num_users)
  exclude = [Interactions(me, me), as_interactions(train),
             *(as_interactions(p) for p in also_exclude)]
  return evaluate.evaluate_full_ranking(
      score_fn, params, num_users=num_users, num_items=num_users, exclude=exclude,
      target=as_interactions(target), ks=tuple(ks), batch_size=batch_size)


def evaluate_friend_embeddings(user_emb, **kwargs) -> dict[str, float]:
  """`evaluate_friends` with score(a, b) = user_emb[a] . user_emb[b] ([U, d] final vectors)."""
  user_emb = jnp.asarray(user_emb)
  return evaluate_friends(dot_scores, (user_emb, user_emb),
                          num_users=int(user_emb.shape[0]), **kwargs)
